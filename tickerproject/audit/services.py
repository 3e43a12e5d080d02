from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from tickerproject.audit.models import AuditEvent
from tickerproject.audit.selectors import Actor, current_actor

TARGET_REPR_MAX = 200
USERNAME_MAX = 150


def audit_event_record(
    *,
    action: AuditEvent.Action,
    target: models.Model | None = None,
    details: dict[str, Any] | None = None,
    target_id: str | None = None,
    actor: Actor | None = None,
) -> AuditEvent:
    """Append one event. ``details`` must hold names and public values only, never a secret;
    ``target_id`` replaces a primary key that must not be copied (an API key's embeds its hash)."""
    actor = actor or current_actor()
    event = AuditEvent(
        action=action,
        actor=actor.user,
        actor_username=actor.user.get_username()[:USERNAME_MAX] if actor.user is not None else "",
        actor_process=actor.process,
        client_ip=actor.client_ip,
        details=details or {},
    )
    if target is not None:
        event.target_type = ContentType.objects.get_for_model(target)
        event.target_id = target_id if target_id is not None else str(target.pk)
        event.target_repr = str(target)[:TARGET_REPR_MAX]
    event.save()
    return event
