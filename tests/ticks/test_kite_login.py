"""The morning Kite login: the signed single-use state, the admin's link and token column, the callback
against a real kitesim (kiteconnect unmodified) with every failure path, and the command for scripts."""

import base64
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import redis
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core import signing
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from kitesim.testing import KitesimThread
from tests.asgi_server import free_port
from tests.ticks.factories import BrokerAccountFactory, UserFactory
from tests.workers.conftest import kitesim  # noqa: F401 - the fixture: kitesim in a thread
from ticks.kite_login import (
    NONCE_KEY,
    STATE_SALT,
    KiteLoginRefused,
    LoginState,
    login_url,
    state_sign,
    state_verify,
    token_state,
)
from ticks.market_time import IST, access_token_expiry
from ticks.models import BrokerAccount

MAX_AGE_S = 600
LIST_URL = "/admin/ticks/brokeraccount/"


def _query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=urlencode({**_query(url), **changes})))


# -- the state and the URL (pure) --------------------------------------------------------------------


def test_a_state_round_trips() -> None:
    state = LoginState(account_id=3, user_id=7, nonce="n0nce")
    assert state_verify(state_sign(state, signed_at=time.time()), max_age_s=MAX_AGE_S) == state


def test_a_tampered_state_is_refused() -> None:
    signed = state_sign(LoginState(3, 7, "n0nce"), signed_at=time.time())
    forged = signing.TimestampSigner(salt=STATE_SALT).sign_object({"a": 4, "u": 7, "n": "n0nce"})
    payload, _, signature = signed.partition(":")
    for token in (
        forged.partition(":")[0] + ":" + signed.partition(":")[2],
        f"{payload}x:{signature}",
        "junk",
    ):
        with pytest.raises(KiteLoginRefused, match="not one we issued"):
            state_verify(token, max_age_s=MAX_AGE_S)


def test_a_state_signed_for_another_purpose_is_refused() -> None:
    other = signing.TimestampSigner(salt="something.else").sign_object({"a": 3, "u": 7, "n": "n0nce"})
    with pytest.raises(KiteLoginRefused, match="not one we issued"):
        state_verify(other, max_age_s=MAX_AGE_S)


def test_an_old_state_has_expired() -> None:
    stale = state_sign(LoginState(3, 7, "n0nce"), signed_at=time.time() - MAX_AGE_S - 5)
    with pytest.raises(KiteLoginRefused, match="more than 10 minutes ago"):
        state_verify(stale, max_age_s=MAX_AGE_S)


@pytest.mark.parametrize("payload", [[3, 7, "n"], {"a": "3", "u": 7, "n": "n"}, {"a": 3, "u": 7}])
def test_a_malformed_state_is_refused(payload: object) -> None:
    token = signing.TimestampSigner(salt=STATE_SALT).sign_object(payload)
    with pytest.raises(KiteLoginRefused, match="malformed"):
        state_verify(token, max_age_s=MAX_AGE_S)


def test_the_login_url_asks_kite_to_hand_the_state_back() -> None:
    url = login_url(base="https://kite.example/connect/login", api_key="key 1", state="s:t/a=te")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "kite.example", "/connect/login")
    query = _query(url)
    assert query == {"api_key": "key 1", "v": "3", "redirect_params": "state=s%3At%2Fa%3Dte"}
    assert parse_qs(query["redirect_params"]) == {"state": ["s:t/a=te"]}
    assert "redirect_params" not in login_url(base="https://kite.example/connect/login", api_key="k")


@pytest.mark.clock
def test_token_state_reads_at_a_glance() -> None:
    expiry = datetime(2026, 3, 13, 6, 0, tzinfo=IST)
    assert token_state(None, now=expiry) == "none"
    assert token_state(expiry, now=expiry - timedelta(hours=12)) == "valid until 13 Mar 06:00 IST"
    assert token_state(expiry, now=expiry) == "expired at 13 Mar 06:00 IST"


# -- admin: the link, the token column, starting a login ------------------------------------------------


@pytest.fixture
def operator(db: None) -> Client:
    client = Client()
    client.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def viewer(db: None) -> Client:
    user = UserFactory(username="viewer", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_brokeraccount"))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.clock
def test_the_list_shows_each_token_and_a_login_link(operator: Client) -> None:
    now = timezone.now()
    fresh = BrokerAccountFactory(name="fresh", token_expires_at=access_token_expiry(now))
    BrokerAccountFactory(name="stale", token_expires_at=now - timedelta(minutes=1), health="token_expired")
    BrokerAccountFactory(name="never", access_token="", token_expires_at=None)

    page = operator.get(LIST_URL).content.decode()

    assert f"valid until {access_token_expiry(now).astimezone(IST):%d %b} 06:00 IST" in page
    assert f"expired at {(now - timedelta(minutes=1)).astimezone(IST):%d %b %H:%M} IST" in page
    assert '<td class="field-token">none</td>' in page
    assert "Token expired" in page  # health beside it
    assert page.count(">Log in to Kite</a>") == 3
    assert f'href="{LIST_URL}{fresh.pk}/kite-login/"' in page
    change = operator.get(f"{LIST_URL}{fresh.pk}/change/").content.decode()
    assert f'href="{LIST_URL}{fresh.pk}/kite-login/"' in change


@pytest.mark.django_db
def test_only_who_may_change_accounts_can_start_a_login(viewer: Client, redis_client: redis.Redis) -> None:
    account = BrokerAccountFactory()

    page = viewer.get(LIST_URL).content.decode()
    start = viewer.get(f"{LIST_URL}{account.pk}/kite-login/")

    assert account.name in page and "Log in to Kite" not in page
    assert "Log in to Kite" not in viewer.get(f"{LIST_URL}{account.pk}/change/").content.decode()
    assert start.status_code == 403
    assert redis_client.keys(NONCE_KEY.format(nonce="*")) == []
    assert Client().get(f"{LIST_URL}{account.pk}/kite-login/").status_code == 302  # to admin's login


@pytest.mark.django_db
def test_starting_a_login_sends_the_operator_to_kite_with_a_single_use_state(
    operator: Client, redis_client: redis.Redis, settings
) -> None:
    settings.KITE_LOGIN_URL = "https://kite.example/connect/login"
    account = BrokerAccountFactory(api_key="the-app")

    start = operator.get(f"{LIST_URL}{account.pk}/kite-login/")

    assert start.status_code == 302
    assert start["Location"].startswith("https://kite.example/connect/login?")
    query = _query(start["Location"])
    assert (query["api_key"], query["v"]) == ("the-app", "3")
    state = state_verify(parse_qs(query["redirect_params"])["state"][0], max_age_s=MAX_AGE_S)
    assert state.account_id == account.pk
    assert state.user_id == get_user_model().objects.get(username="operator").pk
    nonce = NONCE_KEY.format(nonce=state.nonce)
    assert redis_client.get(nonce) == str(account.pk).encode()
    assert 0 < redis_client.ttl(nonce) <= MAX_AGE_S


@pytest.mark.django_db
def test_without_a_kite_login_url_the_page_is_kitesims(operator: Client, settings) -> None:
    settings.KITE_LOGIN_URL, settings.KITE_ROOT = "", "http://127.0.0.1:9"
    start = operator.get(f"{LIST_URL}{BrokerAccountFactory().pk}/kite-login/")
    assert start["Location"].startswith("http://127.0.0.1:9/connect/login?api_key=")


# -- the callback against kitesim --------------------------------------------------------------------


@pytest.fixture
def sim(kitesim: KitesimThread, settings, redis_client: redis.Redis) -> KitesimThread:  # noqa: F811
    """kitesim as the account's Kite, its app's registered redirect URL our callback."""
    settings.KITE_ROOT, settings.KITE_LOGIN_URL, settings.MARKET_CLOCK = kitesim.root, "", "kitesim"
    assert kitesim.state is not None
    kitesim.call(kitesim.state.accounts.register_redirect_url, "demo", "http://testserver/kite/callback")
    return kitesim


@pytest.fixture
def expired_demo(db: None) -> BrokerAccount:
    """Yesterday's token, dead since 06:00 IST: what the morning login replaces."""
    issued = timezone.now() - timedelta(days=1)
    return BrokerAccount.objects.create(
        name="demo",
        api_key="demo",
        api_secret="demosecret",
        access_token="yesterdays-token",
        token_issued_at=issued,
        token_expires_at=issued,
        health=BrokerAccount.Health.TOKEN_EXPIRED,
        health_reason="access token expired",
    )


def _walk_to_callback(client: Client, account: BrokerAccount) -> str:
    """Admin's link, then Kite's login (a script is approved at once): the URL Kite redirects to."""
    start = client.get(f"{LIST_URL}{account.pk}/kite-login/")
    assert start.status_code == 302, start
    kite = requests.get(start["Location"], allow_redirects=False, timeout=5)
    assert kite.status_code == 302, kite.text
    assert kite.headers["Location"].startswith("http://testserver/kite/callback?request_token=")
    return kite.headers["Location"]


def _stored(account: BrokerAccount) -> tuple[object, ...]:
    account = BrokerAccount.objects.get(pk=account.pk)
    return account.access_token, account.token_issued_at, account.token_expires_at, account.health


def _queued(client: redis.Redis) -> list[tuple[str, dict]]:
    messages = [json.loads(raw) for raw in reversed(client.lrange("default", 0, -1))]
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[1]) for m in messages]


@pytest.fixture
def refused(operator: Client, expired_demo: BrokerAccount, redis_client: redis.Redis) -> Callable[..., None]:
    """``refused(url, status, text)``: the callback answers a clear page, stores nothing, starts no feed."""

    def check(url: str, status: int, text: str, client: Client = operator) -> None:
        before = _stored(expired_demo)
        response = client.get(url)
        body = response.content.decode()
        assert response.status_code == status, body[:500]
        assert text in body and "Nothing was stored" in body
        assert _stored(expired_demo) == before
        assert _queued(redis_client) == []

    return check


@pytest.mark.integration
@pytest.mark.clock
def test_the_callback_stores_kites_token_and_resumes_the_feeds(
    sim: KitesimThread,
    operator: Client,
    expired_demo: BrokerAccount,
    redis_client: redis.Redis,
    django_capture_on_commit_callbacks,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    callback = _walk_to_callback(operator, expired_demo)

    with django_capture_on_commit_callbacks(execute=True):
        response = operator.get(callback)

    assert response.status_code == 302 and response["Location"] == LIST_URL
    account = BrokerAccount.objects.get(pk=expired_demo.pk)
    issued = sim.state.accounts.get("demo").access_token
    assert account.access_token == issued != "yesterdays-token"
    assert (account.health, account.health_reason) == (BrokerAccount.Health.OK, "")
    assert account.token_expires_at == access_token_expiry(account.token_issued_at)
    assert account.token_expires_at.astimezone(IST).hour == 6
    assert _queued(redis_client) == [("feeds.rebalance", {"reason": "kite_login"}), ("feeds.supervise", {})]
    listing = operator.get(LIST_URL).content.decode()
    assert "Demo is logged in to Kite: token valid until" in listing  # admin capitalises messages
    assert f"valid until {account.token_expires_at.astimezone(IST):%d %b} 06:00 IST" in listing
    for secret in (_query(callback)["request_token"], issued, "demosecret"):
        assert secret not in caplog.text


@pytest.mark.integration
def test_a_replayed_callback_is_refused(
    sim: KitesimThread, operator: Client, expired_demo: BrokerAccount, django_capture_on_commit_callbacks
) -> None:
    callback = _walk_to_callback(operator, expired_demo)
    with django_capture_on_commit_callbacks(execute=False):
        assert operator.get(callback).status_code == 302
    stored = _stored(expired_demo)

    again = operator.get(callback)

    assert again.status_code == 400 and "already completed" in again.content.decode()
    assert _stored(expired_demo) == stored


@pytest.mark.integration
def test_kites_failed_status_is_refused(sim: KitesimThread, operator: Client, refused: Callable) -> None:
    callback = _walk_to_callback(operator, BrokerAccount.objects.get(name="demo"))
    refused(_with_query(callback, status="error"), 400, "Kite reports the login as &#x27;error&#x27;")


@pytest.mark.integration
def test_a_tampered_or_missing_state_is_refused(
    sim: KitesimThread, operator: Client, refused: Callable
) -> None:
    callback = _walk_to_callback(operator, BrokerAccount.objects.get(name="demo"))
    state = _query(callback)["state"]
    refused(_with_query(callback, state=state[:-2] + "xx"), 400, "not one we issued")
    refused(_with_query(callback, state=""), 400, "--request-token")


@pytest.mark.integration
def test_an_expired_state_is_refused(
    sim: KitesimThread, operator: Client, refused: Callable, redis_client: redis.Redis
) -> None:
    callback = _walk_to_callback(operator, BrokerAccount.objects.get(name="demo"))
    login = state_verify(_query(callback)["state"], max_age_s=MAX_AGE_S)
    stale = state_sign(login, signed_at=time.time() - MAX_AGE_S - 1)
    refused(_with_query(callback, state=stale), 400, "more than 10 minutes ago")


@pytest.mark.integration
def test_only_the_user_who_started_it_completes_a_login(
    sim: KitesimThread, operator: Client, refused: Callable, expired_demo: BrokerAccount
) -> None:
    callback = _walk_to_callback(operator, expired_demo)
    colleague = Client()
    colleague.force_login(UserFactory(username="colleague", is_staff=True, is_superuser=True))
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer_client = Client()
    viewer_client.force_login(viewer)

    refused(callback, 403, "Another user started this login", client=colleague)
    refused(callback, 403, "You may not change broker accounts", client=viewer_client)
    refused(callback, 403, "Log in to admin first", client=Client())
    # None of them spent the state: the operator still completes it.
    assert operator.get(callback).status_code == 302


@pytest.mark.integration
def test_a_request_token_kite_refuses_is_a_clear_page(
    sim: KitesimThread, operator: Client, refused: Callable
) -> None:
    callback = _walk_to_callback(operator, BrokerAccount.objects.get(name="demo"))
    refused(_with_query(callback, request_token="not-kites"), 400, "Kite refused the request token")


@pytest.mark.integration
def test_kite_failing_or_unreachable_is_a_502(
    sim: KitesimThread, operator: Client, refused: Callable, settings
) -> None:
    account = BrokerAccount.objects.get(name="demo")
    callback = _walk_to_callback(operator, account)
    requests.post(f"{sim.root}/_sim/faults", json={"rest_5xx_next": 1}, timeout=5).raise_for_status()
    refused(callback, 502, "Kite failed the token exchange (503)")

    callback = _walk_to_callback(operator, account)
    settings.KITE_ROOT = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    refused(callback, 502, "Kite could not be reached (ConnectionError)")


# -- the command ---------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.clock
def test_the_command_prints_the_url_and_completes_a_pasted_token(
    sim: KitesimThread, expired_demo: BrokerAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("kite_login", "demo")
    url = capsys.readouterr().out.strip()
    assert url == f"{sim.root}/connect/login?api_key=demo&v=3"
    request_token = _query(requests.get(url, allow_redirects=False, timeout=5).headers["Location"])[
        "request_token"
    ]

    call_command("kite_login", "demo", "--request-token", request_token)

    assert "demo is logged in to Kite: token valid until" in capsys.readouterr().out
    account = BrokerAccount.objects.get(pk=expired_demo.pk)
    assert account.access_token == sim.state.accounts.get("demo").access_token
    assert account.health == BrokerAccount.Health.OK
    with pytest.raises(CommandError, match="Kite refused the request token"):
        call_command("kite_login", "demo", "--request-token", request_token)
    with pytest.raises(CommandError, match="No broker account named 'nobody'"):
        call_command("kite_login", "nobody")


@pytest.mark.integration
def test_a_state_echoed_inside_redirect_params_is_read_too(
    sim: KitesimThread, operator: Client, expired_demo: BrokerAccount
) -> None:
    callback = _walk_to_callback(operator, expired_demo)
    query = _query(callback)
    echoed = {**query, "redirect_params": urlencode({"state": query.pop("state")})}
    del echoed["state"]

    response = operator.get(f"/kite/callback?{urlencode(echoed)}")

    assert response.status_code == 302
    assert (
        BrokerAccount.objects.get(pk=expired_demo.pk).access_token
        == sim.state.accounts.get("demo").access_token
    )


@pytest.mark.django_db
def test_redis_down_is_a_503_and_nothing_is_stored(
    operator: Client, expired_demo: BrokerAccount, settings
) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    before = _stored(expired_demo)
    user_id = get_user_model().objects.get(username="operator").pk
    state = state_sign(LoginState(expired_demo.pk, user_id, "n0nce"), signed_at=time.time())

    start = operator.get(f"{LIST_URL}{expired_demo.pk}/kite-login/")
    callback = operator.get(
        f"/kite/callback?{urlencode({'request_token': 'rt', 'status': 'success', 'state': state})}"
    )

    assert start.status_code == callback.status_code == 503
    assert (
        "Redis is unreachable" in start.content.decode()
        and "Redis is unreachable" in callback.content.decode()
    )
    assert _stored(expired_demo) == before
