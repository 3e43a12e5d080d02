import inspect
from dataclasses import dataclass
from ipaddress import ip_address

from celery import current_task
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.management.base import BaseCommand
from django.http import HttpRequest

from tickerproject.audit.middleware import current_request


@dataclass(frozen=True)
class Actor:
    user: AbstractBaseUser | None
    process: str
    client_ip: str | None


def current_actor() -> Actor:
    """Who is making the change: the request's user and address, else the task or command running it."""
    request = current_request.get()
    if request is not None:
        return Actor(user=request_user(request), process="web", client_ip=request_client_ip(request))
    if current_task:
        return Actor(user=None, process=f"task:{current_task.name}", client_ip=None)
    command = _running_command()
    return Actor(user=None, process=f"command:{command}" if command else "system", client_ip=None)


def request_user(request: HttpRequest) -> AbstractBaseUser | None:
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def request_client_ip(request: HttpRequest) -> str | None:
    """The peer's address as the server saw it; behind nginx that is the client's only when uvicorn
    trusts the proxy's headers (--proxy-headers, --forwarded-allow-ips)."""
    return parse_ip(request.META.get("REMOTE_ADDR"))


def parse_ip(address: str | None) -> str | None:
    try:
        return str(ip_address(address or ""))
    except ValueError:  # a Unix socket peer, or the test client's bare HttpRequest
        return None


def _running_command() -> str | None:
    """The management command on this thread's stack, named like manage.py names it (its module).

    Walked only when an event is recorded; works for manage.py and call_command alike.
    """
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "execute":
            command = frame.f_locals.get("self")
            if isinstance(command, BaseCommand):
                return type(command).__module__.rsplit(".", 1)[-1]
        frame = frame.f_back
    return None
