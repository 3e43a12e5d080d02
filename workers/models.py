from django.db import models

from ticks.models import BrokerAccount


class FeedPlan(models.Model):
    """One version of the fleet's token assignment. The newest row is the plan in force."""

    version = models.PositiveIntegerField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    desired_tokens = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"plan v{self.version}"


class FeedAssignment(models.Model):
    """token -> (account, connection, primary?) within one plan."""

    plan = models.ForeignKey(FeedPlan, on_delete=models.CASCADE, related_name="assignments")
    account = models.ForeignKey(BrokerAccount, on_delete=models.CASCADE, related_name="feed_assignments")
    connection = models.PositiveSmallIntegerField()
    instrument_token = models.BigIntegerField()
    primary = models.BooleanField(default=True)
    mode = models.CharField(max_length=8)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "account", "connection", "instrument_token"],
                name="assignment_once_per_connection",
            ),
        ]
        indexes = [models.Index(fields=["plan", "account"], name="assignment_plan_account")]

    def __str__(self) -> str:
        return f"{self.instrument_token} -> {self.account_id}/{self.connection}"
