from django.db import models
from django.db.models import Q

from ticks.models import BrokerAccount


class FeedPlan(models.Model):
    """One version of the fleet's token assignment. The newest row is the plan in force.

    A version stores only its change: the assignment rows it placed and the rows it retired (a
    re-centre touches a few dozen of 30,000), so a fleet re-plan writes what moved, not a copy.
    """

    version = models.PositiveIntegerField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Why this version was made ("rebalance NIFTY:2026-12-08 24800→24850", "expiry roll", ...).
    reason = models.CharField(max_length=300, blank=True)
    desired_tokens = models.PositiveIntegerField(default=0)
    # Against the previous version: tokens new to the fleet, gone from it, and moved to another connection.
    added_tokens = models.PositiveIntegerField(default=0)
    removed_tokens = models.PositiveIntegerField(default=0)
    moved_tokens = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"plan v{self.version}"

    @property
    def assignments(self) -> "models.QuerySet[FeedAssignment]":
        """Every row in force at this version."""
        return FeedAssignment.objects.in_plan(self)


class FeedAssignmentQuerySet(models.QuerySet):
    def in_plan(self, plan: FeedPlan) -> "FeedAssignmentQuerySet":
        """The rows in force at ``plan``: placed at or before it, not retired by then."""
        retired_later = Q(retired_in__isnull=True) | Q(retired_in__version__gt=plan.version)
        return self.filter(retired_later, plan__version__lte=plan.version)

    def in_force(self) -> "FeedAssignmentQuerySet":
        return self.filter(retired_in__isnull=True)


class FeedAssignment(models.Model):
    """token -> (account, connection, primary?) from the version that placed it (``plan``) until the
    version that retired it (``retired_in``; null while in force), with why the token is wanted."""

    class Role(models.TextChoices):
        OPTION = "option", "option"
        INDEX = "index", "index"
        FUTURE = "future", "future"

    plan = models.ForeignKey(FeedPlan, on_delete=models.CASCADE, related_name="placed")
    retired_in = models.ForeignKey(
        FeedPlan, on_delete=models.CASCADE, null=True, blank=True, related_name="retired"
    )
    account = models.ForeignKey(BrokerAccount, on_delete=models.CASCADE, related_name="feed_assignments")
    connection = models.PositiveSmallIntegerField()
    instrument_token = models.BigIntegerField()
    primary = models.BooleanField(default=True)
    mode = models.CharField(max_length=8)
    group = models.CharField(max_length=96, blank=True)  # the watched chain slice, "NIFTY:2026-12-08"
    underlying = models.CharField(max_length=64, blank=True)
    expiry = models.DateField(null=True, blank=True)
    strike = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    # Listed strikes from the window's centre: 0 at the centre, negative below it.
    strike_offset = models.SmallIntegerField(null=True, blank=True)
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.OPTION)

    objects = FeedAssignmentQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "account", "connection", "instrument_token"],
                name="assignment_once_per_connection",
            ),
            models.UniqueConstraint(
                fields=["account", "connection", "instrument_token"],
                condition=Q(retired_in__isnull=True),
                name="assignment_in_force_once_per_connection",
            ),
        ]
        indexes = [
            models.Index(fields=["plan", "account"], name="assignment_plan_account"),
            models.Index(fields=["retired_in", "account"], name="assignment_retired_account"),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_token} -> {self.account_id}/{self.connection}"
