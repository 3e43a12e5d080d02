"""Other apps' saves, deletes and logins, turned into audit events through Django's signals.

A change is measured against the stored row in pre_save and recorded in post_save, so a save that fails
records nothing, and an event written inside a transaction rolls back with it. Updates through
QuerySet.update() and bulk writes send no signals: the audited models change through forms, commands
and services that call save().
"""

from functools import partial
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import models
from django.db.models.signals import post_delete, post_save, pre_save
from django.http import HttpRequest

from orders.models import TradingPermission
from tickerproject.audit.models import AuditEvent
from tickerproject.audit.selectors import Actor, current_actor, parse_ip, request_client_ip, request_user
from tickerproject.audit.services import USERNAME_MAX, audit_event_record
from ticks.models import BrokerAccount, ClientApiKey, WatchSpec

Action = AuditEvent.Action
CHANGES_ATTR = "_audit_changes"
API_KEY_FIELDS = ("revoked", "expiry_date", "name", "scope")
BROKER_CREDENTIALS = ("api_key", "api_secret")
BROKER_SECRETS = (*BROKER_CREDENTIALS, "access_token")
PERMISSION_FIELDS = ("user", "account")
WATCH_SPEC_FIELDS = ("underlying", "expiry_kind", "expiry_count", "strikes_around_atm", "mode", "enabled")


def connect_receivers() -> None:
    audited = {
        ClientApiKey: API_KEY_FIELDS,
        BrokerAccount: BROKER_SECRETS,
        TradingPermission: PERMISSION_FIELDS,
        WatchSpec: WATCH_SPEC_FIELDS,
    }
    for model, fields in audited.items():
        pre_save.connect(
            partial(_stash_changes, fields=fields),
            sender=model,
            weak=False,
            dispatch_uid=f"audit-{model.__name__}",
        )
    for model, saved, deleted in (
        (ClientApiKey, _api_key_saved, _api_key_deleted),
        (BrokerAccount, _broker_account_saved, _broker_account_deleted),
        (TradingPermission, _permission_saved, _permission_deleted),
        (WatchSpec, _watch_spec_saved, _watch_spec_deleted),
    ):
        post_save.connect(saved, sender=model, dispatch_uid=f"audit-{model.__name__}")
        post_delete.connect(deleted, sender=model, dispatch_uid=f"audit-{model.__name__}")
    post_delete.connect(_user_deleted, sender=get_user_model(), dispatch_uid="audit-user")
    user_logged_in.connect(_logged_in, dispatch_uid="audit")
    user_logged_out.connect(_logged_out, dispatch_uid="audit")
    user_login_failed.connect(_login_failed, dispatch_uid="audit")
    if apps.is_installed("axes"):
        from axes.signals import user_locked_out  # imports axes' models: only once the app is installed

        user_locked_out.connect(_locked_out, dispatch_uid="audit")


# --- Changes against the stored row ---------------------------------------------------------------


def _stash_changes(
    sender: type[models.Model],
    instance: models.Model,
    fields: tuple[str, ...],
    update_fields: frozenset[str] | None = None,
    **kwargs: Any,
) -> None:
    setattr(instance, CHANGES_ATTR, _stored_changes(instance, fields, update_fields))


def _stored_changes(
    instance: models.Model, names: tuple[str, ...], update_fields: frozenset[str] | None
) -> dict[str, tuple[Any, Any]]:
    """{field: (stored, new)} for the named fields this save writes and changes."""
    if instance._state.adding:
        return {}
    fields = [
        instance._meta.get_field(name) for name in names if update_fields is None or name in update_fields
    ]
    if not fields:
        return {}
    stored = (
        type(instance)
        ._base_manager.filter(pk=instance.pk)
        .values_list(*(field.attname for field in fields))
        .first()
    )
    if stored is None:
        return {}
    new = [getattr(instance, field.attname) for field in fields]
    return {
        field.name: (old, value)
        for field, old, value in zip(fields, stored, new, strict=True)
        if old != value
    }


def _saved_changes(instance: models.Model) -> dict[str, tuple[Any, Any]]:
    return instance.__dict__.pop(CHANGES_ATTR, {})


# --- API keys --------------------------------------------------------------------------------------


def _api_key_details(key: ClientApiKey) -> dict[str, Any]:
    details = {"prefix": key.prefix, "name": key.name, "user": key.user.get_username()}
    details["expiry_date"] = key.expiry_date
    if hasattr(key, "scope"):
        details["scope"] = key.scope
    return details


def _api_key_record(action: AuditEvent.Action, key: ClientApiKey, details: dict[str, Any]) -> None:
    # The primary key embeds the key's hash: the event names the key by its public prefix.
    audit_event_record(action=action, target=key, target_id=key.prefix, details=details)


def _api_key_saved(sender: type[ClientApiKey], instance: ClientApiKey, created: bool, **kwargs: Any) -> None:
    changes = _saved_changes(instance)
    if created:
        _api_key_record(Action.API_KEY_ISSUED, instance, _api_key_details(instance))
        return
    revoked = changes.pop("revoked", None)
    if revoked is not None and revoked[1]:
        _api_key_record(Action.API_KEY_REVOKED, instance, _api_key_details(instance))
    scope = changes.pop("scope", None)
    if scope is not None:
        _api_key_record(
            Action.API_KEY_SCOPE_CHANGED,
            instance,
            {"prefix": instance.prefix, "from": scope[0], "to": scope[1]},
        )
    if changes:
        _api_key_record(
            Action.API_KEY_CHANGED, instance, {"prefix": instance.prefix, "changes": _pairs(changes)}
        )


def _api_key_deleted(sender: type[ClientApiKey], instance: ClientApiKey, **kwargs: Any) -> None:
    _api_key_record(Action.API_KEY_DELETED, instance, _api_key_details(instance))


def _pairs(changes: dict[str, tuple[Any, Any]]) -> dict[str, list[Any]]:
    return {name: list(pair) for name, pair in changes.items()}


# --- Broker accounts: secret field NAMES only, never a value ---------------------------------------


def _broker_account_saved(
    sender: type[BrokerAccount], instance: BrokerAccount, created: bool, **kwargs: Any
) -> None:
    changed = set(_saved_changes(instance))
    if created:
        present = [name for name in BROKER_SECRETS if getattr(instance, name)]
        audit_event_record(action=Action.BROKER_ACCOUNT_CREATED, target=instance, details={"fields": present})
        return
    credentials = [name for name in BROKER_CREDENTIALS if name in changed]
    if credentials:
        audit_event_record(
            action=Action.BROKER_ACCOUNT_CREDENTIALS_SAVED, target=instance, details={"fields": credentials}
        )
    if "access_token" in changed:
        audit_event_record(
            action=Action.BROKER_ACCOUNT_TOKEN_SAVED,
            target=instance,
            details={"fields": ["access_token"], "cleared": not instance.access_token},
        )


def _broker_account_deleted(sender: type[BrokerAccount], instance: BrokerAccount, **kwargs: Any) -> None:
    audit_event_record(action=Action.BROKER_ACCOUNT_DELETED, target=instance)


# --- Trading permissions ---------------------------------------------------------------------------


def _permission_details(user_id: int, account_id: int) -> dict[str, Any]:
    username_field = get_user_model().USERNAME_FIELD
    user = get_user_model()._base_manager.filter(pk=user_id).values_list(username_field, flat=True).first()
    account = BrokerAccount._base_manager.filter(pk=account_id).values_list("name", flat=True).first()
    return {"user": user, "account": account}


def _permission_saved(
    sender: type[TradingPermission], instance: TradingPermission, created: bool, **kwargs: Any
) -> None:
    changes = _saved_changes(instance)
    if not created and not changes:
        return
    if changes:  # the admin moved the permission to another user or account: the old pair is revoked
        stored = {name: pair[0] for name, pair in changes.items()}
        audit_event_record(
            action=Action.TRADING_PERMISSION_REVOKED,
            target=instance,
            details=_permission_details(
                stored.get("user", instance.user_id), stored.get("account", instance.account_id)
            ),
        )
    audit_event_record(
        action=Action.TRADING_PERMISSION_GRANTED,
        target=instance,
        details=_permission_details(instance.user_id, instance.account_id),
    )


def _permission_deleted(sender: type[TradingPermission], instance: TradingPermission, **kwargs: Any) -> None:
    audit_event_record(
        action=Action.TRADING_PERMISSION_REVOKED,
        target=instance,
        details=_permission_details(instance.user_id, instance.account_id),
    )


# --- Watch specs -----------------------------------------------------------------------------------


def _watch_spec_values(spec: WatchSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in WATCH_SPEC_FIELDS}


def _watch_spec_saved(sender: type[WatchSpec], instance: WatchSpec, created: bool, **kwargs: Any) -> None:
    changes = _saved_changes(instance)
    if created:
        audit_event_record(
            action=Action.WATCH_SPEC_CREATED, target=instance, details=_watch_spec_values(instance)
        )
    elif changes:
        audit_event_record(
            action=Action.WATCH_SPEC_CHANGED, target=instance, details={"changes": _pairs(changes)}
        )


def _watch_spec_deleted(sender: type[WatchSpec], instance: WatchSpec, **kwargs: Any) -> None:
    audit_event_record(
        action=Action.WATCH_SPEC_DELETED, target=instance, details=_watch_spec_values(instance)
    )


def _user_deleted(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    # Users deleting themselves cascade to their API keys and permissions, whose events name them after
    # Django already nulled their older events: null these too, or the deferred foreign key fails the
    # commit. The base manager's update (AuditEvent.objects refuses) and the trigger let only this through.
    AuditEvent._base_manager.filter(actor_id=instance.pk).update(actor=None)


# --- Logins: the username tried, never a password --------------------------------------------------


def _web_actor(request: HttpRequest | None, user: Any = None) -> Actor:
    if request is None:  # authenticate() called outside a request (a command, a task)
        return current_actor()
    return Actor(user=user or request_user(request), process="web", client_ip=request_client_ip(request))


def _logged_in(sender: type, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    audit_event_record(action=Action.LOGIN_SUCCEEDED, target=user, actor=_web_actor(request, user))


def _logged_out(sender: type, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    audit_event_record(action=Action.LOGOUT, target=user, actor=_web_actor(request, user))


def _login_failed(
    sender: str, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    tried = credentials.get(get_user_model().USERNAME_FIELD, credentials.get("username", ""))
    audit_event_record(
        action=Action.LOGIN_FAILED, details={"username": str(tried)[:USERNAME_MAX]}, actor=_web_actor(request)
    )


def _locked_out(
    sender: str, request: HttpRequest | None, username: str, ip_address: str, **kwargs: Any
) -> None:
    actor = _web_actor(request)
    audit_event_record(
        action=Action.LOGIN_LOCKED_OUT,
        details={"username": str(username or "")[:USERNAME_MAX]},
        # axes' address honours its own proxy settings (AXES_IPWARE_*), so it wins over REMOTE_ADDR.
        actor=Actor(user=None, process=actor.process, client_ip=parse_ip(ip_address) or actor.client_ip),
    )
