from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from orders.models import Order, OrderEvent, TradingPermission
from orders.services import order_cancel
from tickerproject.exceptions import ApplicationError


class OrderEventInline(admin.TabularInline):
    model = OrderEvent
    fields = ["at", "source", "status_from", "status_to", "kite_status", "message", "data"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["id"]

    def has_add_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "id", "account", "client", "transaction_type", "quantity", "exchange", "tradingsymbol",
        "order_type", "price", "status", "kite_status", "filled_quantity", "broker_order_id", "created_at",
    ]  # fmt: skip
    list_filter = [
        "status",
        "account",
        "variety",
        "order_type",
        "transaction_type",
        "product",
        "exchange",
        "created_at",
    ]
    list_select_related = ["account", "client"]
    search_fields = ["tradingsymbol", "broker_order_id", "kite_tag", "tag", "idempotency_key"]
    date_hierarchy = "created_at"
    inlines = [OrderEventInline]
    actions = ["cancel_orders"]

    def get_readonly_fields(self, request: HttpRequest, obj: Order | None = None) -> list[str]:
        # Orders change only through services (API, workers, Kite updates), never by hand.
        return [field.name for field in Order._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False

    @admin.action(description="Cancel selected orders", permissions=["change"])
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        for order in queryset.select_related("account"):
            try:
                done = order_cancel(order=order, source=OrderEvent.Source.ADMIN)
            except ApplicationError as error:
                self.message_user(request, f"Order {order.pk}: {error.message}", messages.WARNING)
                continue
            outcome = "cancelled" if done else "cancel requested at Kite"
            self.message_user(request, f"Order {order.pk}: {outcome}.", messages.SUCCESS)


@admin.register(TradingPermission)
class TradingPermissionAdmin(admin.ModelAdmin):
    list_display = ["user", "account", "created_at"]
    list_filter = ["account"]
    list_select_related = ["user", "account"]
    search_fields = ["user__username", "account__name"]
    autocomplete_fields = ["user"]
