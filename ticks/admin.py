from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from rest_framework_api_key.admin import APIKeyModelAdmin

from orders.redis_io import orders_redis
from tickerproject.exceptions import BACKEND_UNAVAILABLE
from ticks.clocks import market_now
from ticks.kite_login import kite_login_start, token_state
from ticks.models import BrokerAccount, ClientApiKey, DashboardPreferences, Instrument, WatchSpec
from ticks.selectors import feed_capacity_report
from ticks.services import broker_account_log_in
from ticks.views import kite_login_failed

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
    change_form_template = "ticks/kite_login_change_form.html"  # adds "Log in to Kite" to the tools
    list_display = ["name", "enabled", "health", "health_reason", "token", "capacity"]
    list_filter = ["enabled", "health"]
    search_fields = ["name"]
    readonly_fields = ["token_issued_at", "token_expires_at", "health", "health_reason", "health_changed_at"]

    def get_list_display(self, request: HttpRequest) -> list[str]:
        login = ["kite_login"] if self.has_change_permission(request) else []
        return [*self.list_display, *login]

    def get_urls(self) -> list[URLPattern]:
        login = path(
            "<path:object_id>/kite-login/",
            self.admin_site.admin_view(self.kite_login_view),
            name="ticks_brokeraccount_kite_login",
        )
        return [login, *super().get_urls()]

    @admin.display(description="token", ordering="token_expires_at")
    def token(self, obj: BrokerAccount) -> str:
        return token_state(obj.token_expires_at, now=market_now())

    @admin.display(description="Kite")
    def kite_login(self, obj: BrokerAccount) -> str:
        url = reverse("admin:ticks_brokeraccount_kite_login", args=[obj.pk])
        link = '<a class="button kite-login" href="{}" style="white-space: nowrap">Log in to Kite</a>'
        return format_html(link, url)

    def kite_login_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Off to the account's Kite login page, with a state only this user can complete.

        A GET link (the list's rows sit inside the actions form, where a form cannot nest): all it
        does is remember a nonce and redirect; nothing is stored until Kite's redirect comes back.
        """
        account = self.get_object(request, object_id)
        if account is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        try:
            url = kite_login_start(account=account, user_id=request.user.pk, client=orders_redis())
        except BACKEND_UNAVAILABLE:
            return kite_login_failed(request, "Redis is unreachable, so no login can start; try again.", 503)
        return HttpResponseRedirect(url)

    def save_model(self, request: HttpRequest, obj: BrokerAccount, form: Any, change: bool) -> None:
        token_changed = "access_token" in form.changed_data and form.cleaned_data["access_token"]
        super().save_model(request, obj, form, change)
        if token_changed:
            # Kite stamps the token on its clock (kitesim's in the demo): it dies at the next 06:00 IST there.
            broker_account_log_in(account=obj, access_token=obj.access_token, issued_at=market_now())


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
    list_display = [*APIKeyModelAdmin.list_display, "user", "scope"]
    list_filter = [*APIKeyModelAdmin.list_filter, "scope"]
    search_fields = [*APIKeyModelAdmin.search_fields, "user__username"]
    radio_fields = {"scope": admin.HORIZONTAL}

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        # A new key starts at read: trading is chosen, never inherited (the model's default, trade, is
        # for the keys issued before scopes existed).
        return {"scope": ClientApiKey.Scope.READ, **super().get_changeform_initial_data(request)}


@admin.register(DashboardPreferences)
class DashboardPreferencesAdmin(admin.ModelAdmin):
    list_display = ["user", "strike_range", "columns", "updated_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # Each user saves their own from the dashboard (dashboard_preferences_save checks them).

    def has_change_permission(self, request: HttpRequest, obj: DashboardPreferences | None = None) -> bool:
        return False
