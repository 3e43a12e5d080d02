from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from orders.states import OrderStatus
from orders.validation import EXCHANGES, ORDER_TYPES, PRODUCTS, TRANSACTION_TYPES, VALIDITIES, VARIETIES
from ticks.models import BrokerAccount, Instrument


def _choices(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(value, value) for value in values]


class TradingPermission(models.Model):
    """A client (the user its API keys act as) may place orders on this broker account."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="trading_permissions"
    )
    account = models.ForeignKey(BrokerAccount, on_delete=models.CASCADE, related_name="trading_permissions")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "account"], name="trading_permission_user_account")
        ]
        ordering = ["account__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} may trade on {self.account}"


class Order(models.Model):
    """One order to Kite. Auto-sliced requests become several rows: the first carries the idempotency
    key and the others point at it through ``parent``."""

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    account = models.ForeignKey(BrokerAccount, on_delete=models.PROTECT, related_name="orders")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="orders")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="slices")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    kite_tag = models.CharField(max_length=20, unique=True, help_text="our unique tag on the Kite order")
    tag = models.CharField(max_length=20, blank=True, default="", help_text="the client's own label")

    exchange = models.CharField(max_length=8, choices=_choices(EXCHANGES))
    tradingsymbol = models.CharField(max_length=64)
    variety = models.CharField(max_length=8, choices=_choices(VARIETIES))
    transaction_type = models.CharField(max_length=4, choices=_choices(TRANSACTION_TYPES))
    order_type = models.CharField(max_length=8, choices=_choices(ORDER_TYPES))
    product = models.CharField(max_length=4, choices=_choices(PRODUCTS))
    validity = models.CharField(max_length=4, choices=_choices(VALIDITIES), default="DAY")
    validity_ttl = models.PositiveSmallIntegerField(null=True, blank=True)
    quantity = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    trigger_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    iceberg_legs = models.PositiveSmallIntegerField(null=True, blank=True)
    iceberg_quantity = models.PositiveIntegerField(null=True, blank=True)

    status = models.CharField(
        max_length=12, choices=_choices(tuple(OrderStatus)), default=OrderStatus.PENDING
    )
    status_message = models.TextField(blank=True, default="")
    broker_order_id = models.CharField(max_length=32, null=True, blank=True)
    kite_status = models.CharField(max_length=32, blank=True, default="")
    filled_quantity = models.PositiveIntegerField(default=0)
    pending_quantity = models.PositiveIntegerField(default=0)
    average_price = models.DecimalField(max_digits=14, decimal_places=4, default=0)
    kite_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="Kite's time of the last update applied"
    )
    modification_count = models.PositiveSmallIntegerField(default=0)

    # Submission bookkeeping (orders.submission): the lease, attempts and when to try next.
    placement_attempts = models.PositiveSmallIntegerField(default=0)
    claim_token = models.CharField(max_length=32, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(default=timezone.now)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    placed_at = models.DateTimeField(null=True, blank=True, help_text="when Kite first acknowledged it")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["client", "idempotency_key"], name="order_client_idempotency_key"
            ),
            models.UniqueConstraint(
                fields=["account", "broker_order_id"],
                condition=Q(broker_order_id__isnull=False),
                name="order_account_broker_order_id",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="order_status_due"),
            models.Index(fields=["client", "created_at"], name="order_client_created"),
            models.Index(fields=["account", "status"], name="order_account_status"),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.transaction_type} {self.quantity} {self.exchange}:{self.tradingsymbol} {self.status}"


class OrderEvent(models.Model):
    """Append-only history: every status change of an order, and what caused it."""

    class Source(models.TextChoices):
        API = "api", "API"
        ADMIN = "admin", "Admin"
        WORKER = "worker", "Submission worker"
        KITE_RESPONSE = "kite_response", "Kite response"
        WEBSOCKET = "websocket", "WebSocket update"
        RECONCILE = "reconcile", "Reconcile"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=16, choices=Source.choices)
    status_from = models.CharField(max_length=12, blank=True, default="")
    status_to = models.CharField(max_length=12)
    kite_status = models.CharField(max_length=32, blank=True, default="")
    message = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.status_from or '-'} -> {self.status_to} ({self.source})"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Order events are append-only.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError("Order events are append-only.")
