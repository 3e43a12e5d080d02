"""The dashboard page (the live option chain; its data arrives over /ws/stream/ and the REST API) and
the Kite login's redirect URL."""

from urllib.parse import parse_qs

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from orders.redis_io import orders_redis
from tickerproject.exceptions import BACKEND_UNAVAILABLE, ApplicationError
from ticks.clocks import market_now
from ticks.kite_login import STATE_PARAM, kite_login_complete, token_state
from ticks.models import DASHBOARD_COLUMNS, WatchSpec
from ticks.selectors import dashboard_preferences

DEFAULT_UNDERLYING = "NIFTY"  # selected first when watched: the index most traders open


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    watched = WatchSpec.objects.filter(enabled=True).values_list("underlying", flat=True)
    underlyings = sorted(watched, key=lambda name: (name != DEFAULT_UNDERLYING, name))
    config = {
        "columns": list(DASHBOARD_COLUMNS),
        "preferences": dashboard_preferences(user=request.user),
        "stale_price_s": settings.DASHBOARD_STALE_PRICE_S,
    }
    return render(request, "dashboard.html", {"underlyings": underlyings, "dashboard_config": config})


@never_cache
@require_GET
def kite_callback(request: HttpRequest) -> HttpResponse:
    """The redirect URL registered with Kite: ``?request_token=…&status=success&state=…``."""
    user = request.user
    if not (user.is_active and user.is_staff):
        return kite_login_failed(
            request, "Log in to admin first, then start the Kite login again from the account list.", 403
        )
    if not user.has_perm("ticks.change_brokeraccount"):
        return kite_login_failed(request, "You may not change broker accounts.", 403)
    try:
        account = kite_login_complete(
            user_id=user.pk,
            state=_state(request.GET),
            kite_status=request.GET.get("status", ""),
            request_token=request.GET.get("request_token", ""),
            client=orders_redis(),
        )
    except ApplicationError as error:
        return kite_login_failed(request, error.message, error.http_status)
    except BACKEND_UNAVAILABLE:
        return kite_login_failed(
            request, "Redis is unreachable, so the login cannot be checked; try again.", 503
        )
    token = token_state(account.token_expires_at, now=market_now())
    messages.success(request, f"{account.name} is logged in to Kite: token {token}.")
    return redirect("admin:ticks_brokeraccount_changelist")


def _state(query: QueryDict) -> str:
    # Kite hands redirect_params back as its own pairs (?state=…); a raw echo (?redirect_params=state%3D…)
    # is read too, so a change in how Kite returns them does not break the morning login.
    if query.get(STATE_PARAM):
        return query[STATE_PARAM]
    echoed = parse_qs(query.get("redirect_params", ""))
    return echoed.get(STATE_PARAM, [""])[0]


def kite_login_failed(request: HttpRequest, message: str, status: int) -> HttpResponse:
    """A login that cannot go on: what happened and the way back, in admin's look."""
    context = {**admin.site.each_context(request), "title": "Kite login failed", "message": message}
    return render(request, "ticks/kite_login_failed.html", context, status=status)
