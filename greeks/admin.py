from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from greeks.models import GreeksSnapshot


@admin.register(GreeksSnapshot)
class GreeksSnapshotAdmin(admin.ModelAdmin):
    """Read-only: rows are written by the greeks.snapshot task. The changelist shows the conventions."""

    list_display = [
        "taken_at",
        "underlying",
        "expiry",
        "strike",
        "option_type",
        "last_price",
        "iv",
        "delta",
        "status",
        "forward",
        "forward_source",
    ]
    list_filter = ["underlying", "expiry", "option_type", "status", "forward_source"]
    search_fields = ["=instrument_token"]
    date_hierarchy = "taken_at"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: GreeksSnapshot | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: GreeksSnapshot | None = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        conventions = {
            "rate": settings.GREEKS_RATE,
            "model": settings.GREEKS_MODEL,
            "backend": settings.GREEKS_BACKEND,
        }
        return super().changelist_view(request, {**(extra_context or {}), "greeks_conventions": conventions})
