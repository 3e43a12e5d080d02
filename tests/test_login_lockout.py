"""Login lockout (django-axes) on both login pages: LOGIN_FAILURE_LIMIT wrong passwords for one username
from one address lock that pair out (429 + Retry-After) for the cool-off; the right password then does
not log in; another address, or the end of the cool-off, does."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpResponse
from django.test import Client

from tests.ticks.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.clock]  # the cool-off runs on the host clock

PASSWORD = "right horse battery staple"
# page -> where a successful login of a staff user lands
LOGIN_PAGES = {"/admin/login/": "/admin/", "/login/": "/"}


@pytest.fixture
def staff() -> AbstractBaseUser:
    user = UserFactory(username="operator", is_staff=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def _login(client: Client, page: str, password: str) -> HttpResponse:
    return client.post(page, {"username": "operator", "password": password, "next": LOGIN_PAGES[page]})


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_wrong_passwords_lock_the_username_at_this_address_even_against_the_right_one(
    page: str, staff: AbstractBaseUser
) -> None:
    client = Client(REMOTE_ADDR="10.0.5.1")
    limit = settings.AXES_FAILURE_LIMIT

    answers = [_login(client, page, f"wrong-{n}").status_code for n in range(limit)]
    right = _login(client, page, PASSWORD)

    assert answers == [200] * (limit - 1) + [429]  # the limit-th failure already answers locked
    assert right.status_code == 429
    assert right["Retry-After"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    assert "too many login attempts" in right.content.decode()
    assert not _logged_in(client)


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_another_address_still_logs_in(page: str, staff: AbstractBaseUser) -> None:
    locked = Client(REMOTE_ADDR="10.0.5.1")
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login(locked, page, f"wrong-{n}")
    elsewhere = Client(REMOTE_ADDR="10.0.5.2")

    response = _login(elsewhere, page, PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == LOGIN_PAGES[page]
    assert _logged_in(elsewhere)


def test_a_login_before_the_limit_clears_the_count(staff: AbstractBaseUser) -> None:
    client = Client(REMOTE_ADDR="10.0.5.1")
    limit = settings.AXES_FAILURE_LIMIT
    for n in range(limit - 1):
        _login(client, "/login/", f"wrong-{n}")
    assert _login(client, "/login/", PASSWORD).status_code == 302
    client.logout()

    answers = [_login(client, "/login/", f"again-{n}").status_code for n in range(limit - 1)]

    assert answers == [200] * (limit - 1)


def test_the_lockout_ends_after_the_cool_off(staff: AbstractBaseUser) -> None:
    client = Client(REMOTE_ADDR="10.0.5.1")
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "/admin/login/", f"wrong-{n}")
    assert _login(client, "/admin/login/", PASSWORD).status_code == 429

    # The cool-off is counted from the last attempt: move every attempt back past it (no waiting).
    for attempt in AccessAttempt.objects.all():
        attempt.attempt_time -= settings.AXES_COOLOFF_TIME + timedelta(seconds=1)
        attempt.save()

    assert _login(client, "/admin/login/", PASSWORD).status_code == 302
    assert _logged_in(client)


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_a_username_longer_than_any_user_can_have_is_a_failed_login_not_an_error(page: str) -> None:
    response = Client().post(page, {"username": "u" * 300, "password": "x", "next": LOGIN_PAGES[page]})

    assert response.status_code == 200  # the login form again, with its error
    assert AccessAttempt.objects.get().username == "u" * 150
