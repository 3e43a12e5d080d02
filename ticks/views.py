"""The dashboard page: the live option chain. Its data arrives over /ws/stream/ and the REST API."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

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
