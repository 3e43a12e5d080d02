"""The request is known to the receivers while it is served, and forgotten after, even when it fails."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from tickerproject.audit.middleware import AuditRequestMiddleware
from tickerproject.audit.selectors import Actor, current_actor


class Boom(RuntimeError):
    pass


def test_the_actor_is_the_request_while_it_is_served_and_system_after() -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="2001:db8::7")
    request.user = AnonymousUser()
    seen: list[Actor] = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(current_actor())
        return HttpResponse()

    AuditRequestMiddleware(view)(request)

    assert seen == [Actor(user=None, process="web", client_ip="2001:db8::7")]
    assert current_actor().process == "system"


def test_a_failing_request_is_forgotten_too() -> None:
    def view(request: HttpRequest) -> HttpResponse:
        raise Boom

    with pytest.raises(Boom):
        AuditRequestMiddleware(view)(RequestFactory().get("/"))

    assert current_actor().process == "system"


def test_a_peer_that_is_not_an_address_is_recorded_as_none() -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="/run/uvicorn.sock")
    seen: list[Actor] = []

    AuditRequestMiddleware(lambda request: seen.append(current_actor()) or HttpResponse())(request)

    assert seen[0].client_ip is None
