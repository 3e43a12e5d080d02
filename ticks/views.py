"""The dashboard page: the live option chain. Its data arrives over /ws/stream/ and the REST API."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ticks.models import WatchSpec

DEFAULT_UNDERLYING = "NIFTY"  # selected first when watched: the index most traders open


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    watched = WatchSpec.objects.filter(enabled=True).values_list("underlying", flat=True)
    underlyings = sorted(watched, key=lambda name: (name != DEFAULT_UNDERLYING, name))
    return render(request, "dashboard.html", {"underlyings": underlyings})
