"""Feed plans for operators: read-only, since only the control plane writes them."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from workers.models import FeedAssignment, FeedPlan
from workers.selectors import ConnectionCoverage, PlanOverview, feed_assignment_list, feed_plan_overview
from workers.services import redis_client


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False


def _assignments_url(plan: FeedPlan) -> str:
    return f"{reverse('admin:workers_feedassignment_changelist')}?in_plan={plan.version}"


class InPlanFilter(admin.SimpleListFilter):
    """The rows in force at a version (a version stores only the rows it placed and retired)."""

    title = "in force at"
    parameter_name = "in_plan"
    VERSIONS_LISTED = 20

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        versions = FeedPlan.objects.order_by("-version").values_list("version", flat=True)
        return [(str(version), f"v{version}") for version in versions[: self.VERSIONS_LISTED]]

    def queryset(self, request: HttpRequest, queryset: QuerySet[FeedAssignment]) -> QuerySet[FeedAssignment]:
        if self.value() is None:
            return queryset
        plan = FeedPlan.objects.filter(version=int(self.value())).first() if self.value().isdigit() else None
        return queryset.in_plan(plan) if plan is not None else queryset.none()


@admin.register(FeedPlan)
class FeedPlanAdmin(ReadOnlyAdmin):
    list_display = [
        "version",
        "created_at",
        "reason",
        "desired_tokens",
        "added_tokens",
        "removed_tokens",
        "moved_tokens",
        "error_count",
        "assignments_link",
    ]
    fields = [
        "version",
        "created_at",
        "reason",
        "desired_tokens",
        "added_tokens",
        "removed_tokens",
        "moved_tokens",
        "errors",
        "assignments_link",
        "subscribed_vs_planned",
    ]
    readonly_fields = fields
    search_fields = ["reason"]

    @admin.display(description="errors")
    def error_count(self, plan: FeedPlan) -> int:
        return len(plan.errors)

    @admin.display(description="tokens")
    def assignments_link(self, plan: FeedPlan) -> SafeString:
        return format_html('<a href="{}">assignments of v{}</a>', _assignments_url(plan), plan.version)

    @admin.display(description="subscribed vs planned")
    def subscribed_vs_planned(self, plan: FeedPlan) -> SafeString:
        client = redis_client()
        try:
            overview = feed_plan_overview(client=client)
        finally:
            client.close()
        if overview.plan is None or overview.plan.pk != plan.pk:
            in_force = f"v{overview.plan.version}" if overview.plan else "none"
            return format_html("Only for the plan in force ({}).", in_force)
        return format_html(
            "{}<p>Last drift fixed: {}</p>", _coverage_table(overview.connections), _drift_text(overview)
        )


def _coverage_table(rows: tuple[ConnectionCoverage, ...]) -> SafeString:
    if not rows:
        return format_html("<p>{}</p>", "No connection planned or reported.")
    titles = [
        "account",
        "connection",
        "feed on plan",
        "planned",
        "subscribed",
        "planned, not subscribed",
        "subscribed, not planned",
    ]
    head = format_html_join("", "<th>{}</th>", ((title,) for title in titles))
    body = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                row.account,
                row.connection,
                "no report" if row.reported_plan_version is None else f"v{row.reported_plan_version}",
                row.tokens.planned,
                row.tokens.subscribed,
                _sample(row.tokens.missing_count, row.tokens.missing),
                _sample(row.tokens.unplanned_count, row.tokens.unplanned),
            )
            for row in rows
        ),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


def _sample(count: int, tokens: tuple[int, ...]) -> str:
    if not count:
        return "0"
    more = f", … {count - len(tokens)} more" if count > len(tokens) else ""
    return f"{count}: {', '.join(map(str, tokens))}{more}"


def _drift_text(overview: PlanOverview) -> str:
    fix = overview.last_drift
    if fix is None:
        return "none recorded"
    drifted = [d for d in fix.drifts if d.planned != d.reported or d.stale_version]
    accounts = "; ".join(
        f"account {d.account_id}: planned {d.planned}, reported {d.reported}"
        + (", on an older plan" if d.stale_version else "")
        for d in drifted
    )
    return f"{fix.at:%Y-%m-%d %H:%M:%S} UTC on v{fix.plan_version}: {accounts or 'no drift'}"


@admin.register(FeedAssignment)
class FeedAssignmentAdmin(ReadOnlyAdmin):
    list_display = [
        "instrument_token",
        "tradingsymbol",
        "group",
        "underlying",
        "expiry",
        "strike",
        "strike_offset",
        "role",
        "copy",
        "account",
        "connection",
        "mode",
        "plan",
        "retired_in",
    ]
    list_filter = [InPlanFilter, "account", "connection", "role", "underlying", "primary"]
    search_fields = ["=instrument_token", "=underlying"]
    ordering = ["-plan__version", "account__name", "connection", "instrument_token"]
    show_full_result_count = False
    list_per_page = 200

    def get_queryset(self, request: HttpRequest) -> QuerySet[FeedAssignment]:
        return feed_assignment_list()

    @admin.display(description="tradingsymbol")
    def tradingsymbol(self, row: FeedAssignment) -> str:
        return row.tradingsymbol or "—"  # annotated by feed_assignment_list

    @admin.display(description="copy", ordering="primary")
    def copy(self, row: FeedAssignment) -> str:
        return "primary" if row.primary else "companion"
