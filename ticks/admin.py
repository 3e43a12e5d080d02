from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from rest_framework_api_key.admin import APIKeyModelAdmin

from ticks.clocks import market_now
from ticks.models import BrokerAccount, ClientApiKey, DashboardPreferences, Instrument, WatchSpec
from ticks.selectors import feed_capacity_report
from ticks.services import broker_account_set_token

SECRET_FIELDS = ("api_key", "api_secret", "access_token")


class BrokerAccountForm(forms.ModelForm):
    """Secrets are write-only: the form never renders them; a blank input keeps the stored value."""

    api_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    api_secret = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    access_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Today's access token; it expires at the next 06:00 IST.",
    )

    class Meta:
        model = BrokerAccount
        fields = [
            "name",
            *SECRET_FIELDS,
            "enabled",
            "max_connections",
            "tokens_per_connection",
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for field in SECRET_FIELDS:
            if not cleaned.get(field):
                if self.instance.pk is None and field != "access_token":
                    self.add_error(field, "Required for a new account.")
                cleaned[field] = getattr(self.instance, field, "")
        return cleaned


@admin.register(BrokerAccount)
class BrokerAccountAdmin(admin.ModelAdmin):
    form = BrokerAccountForm
    list_display = ["name", "enabled", "health", "health_reason", "token_expires_at", "capacity"]
    list_filter = ["enabled", "health"]
    search_fields = ["name"]
    readonly_fields = ["token_issued_at", "token_expires_at", "health", "health_reason", "health_changed_at"]

    def save_model(self, request: HttpRequest, obj: BrokerAccount, form: Any, change: bool) -> None:
        token_changed = "access_token" in form.changed_data and form.cleaned_data["access_token"]
        super().save_model(request, obj, form, change)
        if token_changed:
            # Kite stamps the token on its clock (kitesim's in the demo): it dies at the next 06:00 IST there.
            broker_account_set_token(account=obj, access_token=obj.access_token, issued_at=market_now())


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = [
        "tradingsymbol",
        "exchange",
        "name",
        "instrument_type",
        "expiry",
        "strike",
        "lot_size",
        "tick_size",
        "instrument_token",
        "is_active",
    ]
    list_filter = ["exchange", "instrument_type", "is_active"]
    search_fields = ["tradingsymbol", "name", "=instrument_token"]
    date_hierarchy = "expiry"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # Instruments come from Kite's dump (instruments_load), never by hand.

    def has_change_permission(self, request: HttpRequest, obj: Instrument | None = None) -> bool:
        return False


@admin.register(WatchSpec)
class WatchSpecAdmin(admin.ModelAdmin):
    list_display = ["underlying", "expiry_kind", "expiry_count", "strikes_around_atm", "mode", "enabled"]
    list_filter = ["enabled", "mode"]
    list_editable = ["enabled"]
    actions = ["check_capacity"]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {"capacity_report": feed_capacity_report(), **(extra_context or {})}
        return super().changelist_view(request, extra_context=context)

    @admin.action(description="Check capacity with the selected specs enabled")
    def check_capacity(self, request: HttpRequest, queryset: QuerySet[WatchSpec]) -> None:
        selected = list(queryset.values_list("pk", flat=True))
        report = feed_capacity_report(with_enabled=selected)
        level = messages.WARNING if report.not_streamed else messages.INFO
        self.message_user(request, f"With the {len(selected)} selected enabled, {report.message()}", level)


@admin.register(ClientApiKey)
class ClientApiKeyAdmin(APIKeyModelAdmin):
    list_display = [*APIKeyModelAdmin.list_display, "user"]
    search_fields = [*APIKeyModelAdmin.search_fields, "user__username"]


@admin.register(DashboardPreferences)
class DashboardPreferencesAdmin(admin.ModelAdmin):
    list_display = ["user", "strike_range", "columns", "updated_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # Each user saves their own from the dashboard (dashboard_preferences_save checks them).

    def has_change_permission(self, request: HttpRequest, obj: DashboardPreferences | None = None) -> bool:
        return False
