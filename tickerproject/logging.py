"""Structured logs for every process (README "Logs"): JSON lines in production, readable lines in development.

structlog renders every record, its own and the standard library's (``logging.getLogger(__name__)``,
Django, Celery), through one ``ProcessorFormatter``, so each line carries the ids bound in the
current context (``structlog.contextvars``): the request id (django-structlog's RequestMiddleware and
tickerproject.request_id), the Celery task id (django-structlog's worker step, tickerproject/celery.py),
and the domain ids the services bind (order, idempotency key, account, feed connection).

Django calls :func:`logging_configure` with ``settings.LOGGING`` (``LOGGING_CONFIG``), and Celery's
``setup_logging`` signal calls it again, so web, workers and beat log the same way.
"""

import logging
import logging.config
import re
import sys
from collections.abc import Mapping
from typing import Any

import structlog
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from structlog.typing import EventDict, Processor, WrappedLogger

LOG_FORMATS = ("json", "console")
# Keys whose values never reach a log line, whatever binds or passes them (matched case-insensitively).
SECRET_KEYS = frozenset(
    {"access_token", "api_secret", "request_token", "password", "api_key", "authorization", "checksum"}
)
REDACTED = "[redacted]"
# The same keys inside text: a query string (?api_key=...), a repr'd dict ('access_token': '...'),
# a header line (Authorization: Api-Key ...). The value runs to the next separator.
_SECRET_IN_TEXT = re.compile(
    r"(?i)(\b(?:"
    + "|".join(sorted(SECRET_KEYS))
    + r")\b['\"]?\s*[:=]\s*['\"]?)((?:api-key |bearer |token )?[^&\s'\",;}]+)"
)


def secrets_redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Mask secrets in an event: values under a secret key, and ``key=value`` pairs inside strings.

    The last step before rendering, after tracebacks are formatted, so a secret in an exception's
    message or a URL's query string is masked too.
    """
    return {key: _redacted(key, value) for key, value in event_dict.items()}


def _redacted(key: str, value: Any) -> Any:
    if key.lower().replace("-", "_") in SECRET_KEYS:
        return REDACTED
    if isinstance(value, str):
        return _SECRET_IN_TEXT.sub(rf"\1{REDACTED}", value)
    if isinstance(value, Mapping):
        return {inner: _redacted(str(inner), item) for inner, item in value.items()}
    return value


def request_from_record(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Django's own line for a 4xx answer ("Not Found: /x", "Unauthorized: /api/...") is logged after the
    middleware has returned and its context is gone: its record's ``request`` still names the id
    (tickerproject.request_id), and becomes the same ``METHOD path`` text django-structlog logs."""
    request = event_dict.get("request")
    if isinstance(request, HttpRequest):
        event_dict["request"] = f"{request.method} {request.path}"
        event_dict.setdefault("request_id", getattr(request, "request_id", None))
    return event_dict


def request_query_drop(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """``request`` without its query string, as nginx logs ``$uri``: a query carries what must never be
    logged (Kite's ``request_token`` on /kite/callback, a stray ``?api_key=``). django-structlog logs
    ``METHOD full-path``; the path is enough to follow a request, its id does the rest."""
    request = event_dict.get("request")
    if isinstance(request, str) and "?" in request:
        event_dict["request"] = request.split("?", 1)[0]
    return event_dict


def _shared_processors() -> list[Processor]:
    """What every record gets, structlog's and the standard library's alike."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        request_from_record,
        request_query_drop,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def formatter_build(log_format: str) -> structlog.stdlib.ProcessorFormatter:
    """The handler's formatter (``LOGGING["formatters"]``): JSON lines or the development console."""
    renderer: list[Processor]
    if log_format == "json":
        renderer = [structlog.processors.format_exc_info, secrets_redact, structlog.processors.JSONRenderer()]
    else:
        # Plain tracebacks: rich's default prints every frame's locals, and locals hold tokens.
        console = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        renderer = [secrets_redact, console]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )


def logging_settings(log_format: str, level: str) -> dict[str, Any]:
    """``settings.LOGGING``: one handler on the root logger, rendered as ``log_format`` (LOG_FORMAT)."""
    if log_format not in LOG_FORMATS:
        raise ImproperlyConfigured(f"LOG_FORMAT must be json or console, got {log_format!r}")
    # Django's default config gives "django" a console handler of its own (DEBUG): its records go to
    # the root handler instead, so no line escapes the format.
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {"()": "tickerproject.logging.formatter_build", "log_format": log_format}
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {name: {"handlers": [], "propagate": True} for name in ("django", "django.server")},
    }


def logging_configure(config: dict[str, Any]) -> None:
    """Apply ``settings.LOGGING`` and route structlog's own loggers through its formatter."""
    logging.config.dictConfig(config)
    _uvicorn_restyle(formatter_build(config["formatters"]["structured"]["log_format"]))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            # Here as well as in the formatter: the event leaves structlog as a record any handler may
            # read (pytest's caplog, a handler added later), not only ours.
            secrets_redact,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _uvicorn_restyle(formatter: logging.Formatter) -> None:
    """uvicorn configured its loggers before it imported the app; only their format changes here.

    Configuring them through LOGGING would reset their levels and propagation too, undoing
    ``--log-level warning --no-access-log``, which keep query strings (``?api_key=``) out of the logs
    (deploy/Procfile).
    """
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)
