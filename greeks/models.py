from django.db import models


class GreeksSnapshot(models.Model):
    """One option of one chain at one minute of market time, as the tick path last computed it.

    One row per option per minute, the chain's forward and ATM strike repeated on each, so that the
    two reads are index range scans: the history at one strike over a day (``greeks_strike_history``:
    ~375 minutes x 2 legs) and a whole chain at one minute (``greeks_chain_minute``). A JSON column per
    chain would make the history read load and parse every strike of every minute to keep one.
    ``taken_at`` is exchange time (the chain's latest market time, floored to the minute), not the
    host clock: a replayed or closed market does not add rows, and a re-run in the same minute inserts
    nothing (the unique constraint, with ignore_conflicts).
    """

    class OptionType(models.TextChoices):
        CE = "CE"
        PE = "PE"

    class ForwardSource(models.TextChoices):
        NONE = "none"
        FUTURE = "future"
        PARITY = "parity"
        INDEX = "index"

    underlying = models.CharField(max_length=64)
    expiry = models.DateField()
    taken_at = models.DateTimeField()
    forward = models.FloatField(null=True)
    forward_source = models.CharField(max_length=8, choices=ForwardSource.choices)
    atm_strike = models.DecimalField(max_digits=14, decimal_places=4, null=True)
    t_years = models.FloatField(null=True)
    strike = models.DecimalField(max_digits=14, decimal_places=4)
    option_type = models.CharField(max_length=2, choices=OptionType.choices)
    instrument_token = models.BigIntegerField()
    last_price = models.FloatField(null=True)
    bid = models.FloatField(null=True)
    ask = models.FloatField(null=True)
    oi = models.BigIntegerField(null=True)
    volume = models.BigIntegerField(null=True)
    iv = models.FloatField(null=True)
    iv_mid = models.FloatField(null=True)
    delta = models.FloatField(null=True)
    gamma = models.FloatField(null=True)
    theta = models.FloatField(null=True)
    vega = models.FloatField(null=True)
    rho = models.FloatField(null=True)
    status = models.CharField(max_length=24)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["underlying", "expiry", "taken_at", "strike", "option_type"],
                name="greeks_snapshot_minute_option",
            ),
        ]
        indexes = [
            models.Index(
                fields=["underlying", "expiry", "strike", "taken_at"], name="greeks_snapshot_strike"
            ),
        ]
        ordering = ["underlying", "expiry", "-taken_at", "strike", "option_type"]

    def __str__(self) -> str:
        return f"{self.underlying} {self.expiry} {self.strike} {self.option_type} @ {self.taken_at:%Y-%m-%d %H:%M}"
