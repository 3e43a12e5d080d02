from typing import Any, NoReturn

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.functions import Now


class AppendOnlyError(ValueError):
    """An audit event was about to be changed or deleted through the ORM."""


def _refuse(what: str) -> NoReturn:
    raise AppendOnlyError(f"Audit events are append-only: {what} is refused.")


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        _refuse("update()")

    def delete(self) -> NoReturn:
        _refuse("delete()")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> NoReturn:
        _refuse("bulk_update()")


class AuditEvent(models.Model):
    """One security-relevant change: who (user, process, address), when, what, to which object.

    Append-only: the ORM refuses changes here, and a database trigger (migration 0002) refuses UPDATE and
    DELETE, save for the NULLs Django writes when a referenced user or content type is deleted.
    """

    class Action(models.TextChoices):
        API_KEY_ISSUED = "api_key.issued"
        API_KEY_REVOKED = "api_key.revoked"
        API_KEY_SCOPE_CHANGED = "api_key.scope_changed"
        API_KEY_CHANGED = "api_key.changed"  # its name or expiry date
        API_KEY_DELETED = "api_key.deleted"
        TRADING_PERMISSION_GRANTED = "trading_permission.granted"
        TRADING_PERMISSION_REVOKED = "trading_permission.revoked"
        BROKER_ACCOUNT_CREATED = "broker_account.created"
        BROKER_ACCOUNT_CREDENTIALS_SAVED = "broker_account.credentials_saved"
        BROKER_ACCOUNT_TOKEN_SAVED = "broker_account.token_saved"  # noqa: S105 (an action name)
        BROKER_ACCOUNT_DELETED = "broker_account.deleted"
        WATCH_SPEC_CREATED = "watch_spec.created"
        WATCH_SPEC_CHANGED = "watch_spec.changed"
        WATCH_SPEC_DELETED = "watch_spec.deleted"
        LOGIN_SUCCEEDED = "login.succeeded"
        LOGIN_FAILED = "login.failed"
        LOGOUT = "logout"
        LOGIN_LOCKED_OUT = "login.locked_out"

    at = models.DateTimeField(db_default=Now(), db_index=True)
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Copied, so the events of a deleted user still say who it was.
    actor_username = models.CharField(max_length=150, blank=True, default="", db_index=True)
    actor_process = models.CharField(
        max_length=200, help_text="web, command:<name>, task:<name> or system", db_index=True
    )
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    target_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_id = models.CharField(max_length=150, blank=True, default="")
    target_repr = models.CharField(max_length=200, blank=True, default="")
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        who = self.actor_username or self.actor_process
        return (
            f"{self.action} by {who}: {self.target_repr}" if self.target_repr else f"{self.action} by {who}"
        )

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None or not self._state.adding:
            _refuse("saving an existing event")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("delete()")
