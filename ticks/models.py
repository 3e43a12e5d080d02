from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

from ticks.encrypted_fields import EncryptedTextField


class BrokerAccount(models.Model):
    """A Kite Connect app + user whose daily access token lets us stream and trade."""

    class Health(models.TextChoices):
        OK = "ok", "OK"
        TOKEN_EXPIRED = "token_expired", "Token expired"
        FAILING = "failing", "Failing"

    name = models.SlugField(max_length=64, unique=True)
    api_key = EncryptedTextField()
    api_secret = EncryptedTextField()
    access_token = EncryptedTextField(blank=True, default="")
    token_issued_at = models.DateTimeField(null=True, blank=True)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.OK)
    health_reason = models.CharField(max_length=255, blank=True, default="")
    health_changed_at = models.DateTimeField(null=True, blank=True)
    max_connections = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(3)]
    )
    tokens_per_connection = models.PositiveIntegerField(
        default=3000, validators=[MinValueValidator(1), MaxValueValidator(3000)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:  # never the secrets: this string reaches logs and admin
        return self.name

    def __repr__(self) -> str:
        return f"<BrokerAccount {self.name}>"

    @property
    def capacity(self) -> int:
        return self.max_connections * self.tokens_per_connection


class Instrument(models.Model):
    """One row of Kite's instruments dump, keyed by (exchange, tradingsymbol).

    Kite reuses instrument tokens after expiry, so the token is indexed but not unique.
    """

    class Type(models.TextChoices):
        CE = "CE"
        PE = "PE"
        FUT = "FUT"
        EQ = "EQ"

    instrument_token = models.BigIntegerField(db_index=True)
    exchange_token = models.BigIntegerField()
    tradingsymbol = models.CharField(max_length=64)
    name = models.CharField(max_length=64, blank=True, default="")
    last_price = models.DecimalField(max_digits=14, decimal_places=4, default=0)
    expiry = models.DateField(null=True, blank=True)
    strike = models.DecimalField(max_digits=14, decimal_places=4, default=0)
    tick_size = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    lot_size = models.PositiveIntegerField(default=0)
    instrument_type = models.CharField(max_length=8, choices=Type.choices)
    segment = models.CharField(max_length=16)
    exchange = models.CharField(max_length=8)
    is_active = models.BooleanField(default=True)
    loaded_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["exchange", "tradingsymbol"], name="instrument_exchange_symbol"),
        ]
        indexes = [
            models.Index(fields=["name", "expiry", "strike", "instrument_type"], name="instrument_chain"),
            models.Index(fields=["exchange", "loaded_at"], name="instrument_exchange_load"),
        ]
        ordering = ["exchange", "tradingsymbol"]

    def __str__(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"


class WatchSpec(models.Model):
    """Which option chains to stream: an underlying, its nearest expiries, strikes around ATM."""

    class ExpiryKind(models.TextChoices):
        ANY = "any", "Weekly and monthly"
        WEEKLY = "weekly", "Weekly only"
        MONTHLY = "monthly", "Monthly only"

    class Mode(models.TextChoices):
        LTP = "ltp"
        QUOTE = "quote"
        FULL = "full"

    underlying = models.CharField(max_length=64, unique=True, help_text="Kite's name, e.g. NIFTY")
    expiry_kind = models.CharField(max_length=8, choices=ExpiryKind.choices, default=ExpiryKind.ANY)
    expiry_count = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(12)], help_text="nearest N expiries"
    )
    strikes_around_atm = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(200)], help_text="±N strikes"
    )
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.FULL)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["underlying"]

    def __str__(self) -> str:
        return self.underlying

    def clean(self) -> None:
        # Local import: selectors import models.
        from ticks.selectors import underlying_exists

        if self.underlying and not underlying_exists(underlying=self.underlying):
            raise ValidationError({"underlying": f"No active options for underlying {self.underlying!r}."})


class ClientApiKeyManager(BaseAPIKeyManager):
    def get_usable_keys(self) -> models.QuerySet["ClientApiKey"]:
        return super().get_usable_keys().select_related("user")  # one query per authenticated request


class ClientApiKey(AbstractAPIKey):
    """A REST client's key (stored hashed), owned by the user it acts as, within its scope.

    ``read`` keys may only read (GET, HEAD, OPTIONS); ``trade`` keys may also write: place, modify and
    cancel orders, save preferences (tickerproject.permissions).
    """

    class Scope(models.TextChoices):
        READ = "read", "Read"
        TRADE = "trade", "Trade"

    objects = ClientApiKeyManager()

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    # Every issuing path names the scope (issue_api_key --scope, the admin form); the default is for keys
    # issued before scopes existed, which could all trade, and for ORM callers (tests, benches).
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.TRADE)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "client API key"
        verbose_name_plural = "client API keys"


class Bar(models.Model):
    """One OHLCV bar of one instrument: built live from the feed, or Kite's own candle.

    Keyed by the instrument token (not a foreign key): bars outlive instrument reloads, and index
    tokens stream before any dump row exists. ``start`` is the bar's first instant (aware, exchange
    time); ``interval`` uses Kite's names (``minute``, ``3minute``, ..., ``day``). A live bar is
    ``settled`` once Kite's own candle for the same minute replaced it (ticks.bars.settlement);
    ``ticks`` counts the feed ticks a live bar was built from (0 for Kite's candles).
    """

    class Source(models.TextChoices):
        LIVE = "live"
        KITE = "kite"

    instrument_token = models.BigIntegerField()
    interval = models.CharField(max_length=16)
    start = models.DateTimeField()
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.BigIntegerField(default=0)
    oi = models.BigIntegerField(default=0)
    ticks = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.LIVE)
    settled = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["instrument_token", "interval", "start"], name="bar_token_interval_start"
            ),
        ]
        ordering = ["instrument_token", "interval", "start"]

    def __str__(self) -> str:
        return f"{self.instrument_token} {self.interval} @ {self.start:%Y-%m-%d %H:%M}"


# The dashboard's leg columns, outermost (far from the strike) first: the page mirrors this order on the
# put side, so OI sits at both edges and the prices meet at the strike, as on Zerodha's own chain.
DASHBOARD_COLUMNS: tuple[str, ...] = (
    "oi", "oi_change", "volume", "vega", "theta", "gamma",
    "delta", "iv", "bid", "ask", "change", "last_price",
)  # fmt: skip
DASHBOARD_DEFAULT_COLUMNS: tuple[str, ...] = (
    "oi", "oi_change", "volume", "delta", "iv", "bid", "ask", "change", "last_price",
)  # fmt: skip
DASHBOARD_STRIKE_RANGE_DEFAULT = 10
# ±5 is the least that still shows a smile; ±30 is about what a fleet streams around ATM.
DASHBOARD_STRIKE_RANGE_MIN = 5
DASHBOARD_STRIKE_RANGE_MAX = 30


def dashboard_default_columns() -> list[str]:
    return list(DASHBOARD_DEFAULT_COLUMNS)


class DashboardPreferences(models.Model):
    """One user's dashboard layout: the leg columns shown and the strikes shown each side of ATM.

    Written only through ``ticks.services.dashboard_preferences_save``, which keeps ``columns`` a
    non-empty list of known names in DASHBOARD_COLUMNS order; a user without a row gets the defaults.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dashboard_preferences"
    )
    columns = models.JSONField(default=dashboard_default_columns)
    strike_range = models.PositiveSmallIntegerField(
        default=DASHBOARD_STRIKE_RANGE_DEFAULT,
        validators=[
            MinValueValidator(DASHBOARD_STRIKE_RANGE_MIN),
            MaxValueValidator(DASHBOARD_STRIKE_RANGE_MAX),
        ],
        help_text="±N strikes around ATM",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    strike_range__gte=DASHBOARD_STRIKE_RANGE_MIN, strike_range__lte=DASHBOARD_STRIKE_RANGE_MAX
                ),
                name="dashboard_preferences_strike_range",
            ),
        ]
        verbose_name_plural = "dashboard preferences"

    def __str__(self) -> str:
        return f"dashboard preferences of {self.user}"
