from django.contrib import admin
from django.http import HttpRequest

from tickerproject.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: nobody adds, changes or deletes an event here (the model and a trigger refuse it too)."""

    list_display = ["at", "action", "actor_username", "actor_process", "client_ip", "target_repr"]
    list_filter = ["action", "actor_username", "actor_process", "at"]
    search_fields = ["actor_username", "target_repr", "target_id", "client_ip"]
    date_hierarchy = "at"
    show_full_result_count = False
    fields = [
        "at", "action", "actor", "actor_username", "actor_process", "client_ip",
        "target_type", "target_id", "target_repr", "details",
    ]  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
