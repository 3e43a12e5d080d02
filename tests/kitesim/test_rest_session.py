"""Login, tokens, profile and margins, and Kite's error envelope, through the official client."""

import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from kiteconnect import KiteConnect
from kiteconnect.exceptions import InputException, TokenException

from kitesim.testing import KitesimThread
from tests.kitesim.rest_drive import paced_client

pytestmark = pytest.mark.integration


def request_token(server: KitesimThread, **params: str) -> tuple[str, dict[str, list[str]]]:
    """Walk the simulated login page; the redirect's request_token and its query."""
    response = requests.get(
        f"{server.root}/connect/login",
        params={"api_key": server.api_key, "v": "3", **params},
        allow_redirects=False,
        timeout=5,
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    query = parse_qs(location.query)
    return query["request_token"][0], query


def test_login_flow_gives_a_working_session(kitesim_server: KitesimThread) -> None:
    token, query = request_token(kitesim_server)
    assert query["action"] == ["login"] and query["status"] == ["success"]
    kite = paced_client(kitesim_server, access_token="unset")
    session = kite.generate_session(token, api_secret=kitesim_server.api_secret)
    assert session["access_token"] == kite.access_token != kitesim_server.access_token
    assert session["api_key"] == kitesim_server.api_key and session["user_id"]
    assert session["login_time"].year >= 2024 and session["broker"] == "ZERODHA"
    assert kite.profile()["user_id"] == session["user_id"]
    with pytest.raises(TokenException):
        paced_client(kitesim_server).profile()


def test_login_goes_to_the_registered_redirect_url_with_redirect_params_pairs(
    kitesim_server: KitesimThread,
) -> None:
    state = kitesim_server.state
    kitesim_server.call(
        state.accounts.register_redirect_url, kitesim_server.api_key, "http://app.local/kite/cb?x=1"
    )
    response = requests.get(
        f"{kitesim_server.root}/connect/login",
        allow_redirects=False,
        timeout=5,
        params={
            "api_key": kitesim_server.api_key,
            "v": "3",
            "redirect_params": "next=/d&s=a b",
            "redirect_url": "http://evil.example/steal",
        },
    )
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("http", "app.local", "/kite/cb")
    query = parse_qs(location.query)
    assert query["x"] == ["1"] and query["next"] == ["/d"] and query["s"] == ["a b"]
    assert "redirect_params" not in query and query["status"] == ["success"]


def test_an_account_spec_can_register_the_redirect_url() -> None:
    with KitesimThread(accounts=["app:appsecret:apptoken:http://127.0.0.1:8000/kite/callback"]) as server:
        assert (server.api_key, server.api_secret, server.access_token) == ("app", "appsecret", "apptoken")
        response = requests.get(
            f"{server.root}/connect/login", params={"api_key": "app"}, allow_redirects=False, timeout=5
        )
    assert response.headers["Location"].startswith("http://127.0.0.1:8000/kite/callback?request_token=")


def test_a_browser_gets_a_login_page_whose_button_approves(kitesim_server: KitesimThread) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    page = requests.get(
        f"{kitesim_server.root}/connect/login",
        headers=browser,
        timeout=5,
        params={"api_key": kitesim_server.api_key, "v": "3", "redirect_params": 'state=a"<b'},
    )
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<button type="submit">Login</button>' in page.text
    assert 'value="state=a&quot;&lt;b"' in page.text  # escaped: a redirect_params cannot inject markup
    assert not kitesim_server.state.accounts.get(kitesim_server.api_key).request_tokens  # nothing issued yet
    approved = requests.post(
        f"{kitesim_server.root}/connect/login",
        allow_redirects=False,
        timeout=5,
        data={"api_key": kitesim_server.api_key, "redirect_params": 'state=a"<b'},
    )
    assert approved.status_code == 302
    query = parse_qs(urlsplit(approved.headers["Location"]).query)
    assert query["state"] == ['a"<b']
    kite = paced_client(kitesim_server, access_token="unset")
    assert kite.generate_session(query["request_token"][0], api_secret=kitesim_server.api_secret)[
        "access_token"
    ]


def test_the_login_form_refuses_an_unknown_api_key(kitesim_server: KitesimThread) -> None:
    response = requests.post(
        f"{kitesim_server.root}/connect/login", data={"api_key": "nobody"}, allow_redirects=False, timeout=5
    )
    assert response.status_code == 400 and response.json()["message"] == "Invalid `api_key`."


def test_login_landing_page_answers_json(kitesim_server: KitesimThread) -> None:
    response = requests.get(
        f"{kitesim_server.root}/connect/login", params={"api_key": kitesim_server.api_key}, timeout=5
    )
    assert response.status_code == 200
    assert response.json()["data"]["request_token"]


def test_login_with_an_unknown_api_key_is_refused(kitesim_server: KitesimThread) -> None:
    response = requests.get(
        f"{kitesim_server.root}/connect/login", params={"api_key": "nobody"}, allow_redirects=False, timeout=5
    )
    assert response.status_code == 400
    assert response.json() == {
        "status": "error",
        "message": "Invalid `api_key`.",
        "error_type": "InputException",
        "data": None,
    }


def test_request_tokens_need_the_checksum_and_work_once(kitesim_server: KitesimThread) -> None:
    token, _ = request_token(kitesim_server)
    kite = paced_client(kitesim_server, access_token="unset")
    with pytest.raises(TokenException) as refused:
        kite.generate_session(token, api_secret="wrong-secret")
    assert refused.value.code == 403
    kite.generate_session(token, api_secret=kitesim_server.api_secret)
    with pytest.raises(TokenException):
        kite.generate_session(token, api_secret=kitesim_server.api_secret)


def test_session_token_without_fields_is_an_input_error(kitesim_server: KitesimThread) -> None:
    response = requests.post(
        f"{kitesim_server.root}/session/token",
        data={"api_key": kitesim_server.api_key},
        headers={"X-Kite-Version": "3"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["error_type"] == "InputException"


def test_invalidated_token_calls_the_expiry_hook(kitesim_server: KitesimThread) -> None:
    kite = paced_client(kitesim_server)
    expired: list[bool] = []
    kite.set_session_expiry_hook(lambda: expired.append(True))
    assert kite.invalidate_access_token() is True
    with pytest.raises(TokenException) as refused:
        kite.profile()
    assert refused.value.code == 403 and expired == [True]


def test_tokens_expire_when_the_simulator_says_so(kitesim_server: KitesimThread) -> None:
    state = kitesim_server.state
    kite = paced_client(kitesim_server)
    assert kite.profile()
    kitesim_server.call(lambda: state.accounts.expire_all(state.clock.now()))
    with pytest.raises(TokenException, match=r"Incorrect `api_key` or `access_token`\."):
        kite.margins()


@pytest.mark.parametrize("header", ["", "token demo", "token demo:wrong", "Bearer demo:demotoken"])
def test_bad_authorization_is_a_token_exception(kitesim_server: KitesimThread, header: str) -> None:
    response = requests.get(
        f"{kitesim_server.root}/user/profile",
        headers={"X-Kite-Version": "3", "Authorization": header},
        timeout=5,
    )
    assert response.status_code == 403
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error_type"] == "TokenException"


def test_missing_kite_version_is_an_input_error(kitesim_server: KitesimThread) -> None:
    auth = f"token {kitesim_server.api_key}:{kitesim_server.access_token}"
    response = requests.get(f"{kitesim_server.root}/user/profile", headers={"Authorization": auth}, timeout=5)
    assert response.status_code == 400
    assert response.json()["error_type"] == "InputException"


def test_profile(kite: KiteConnect) -> None:
    profile = kite.profile()
    assert profile["user_id"] and profile["user_type"] == "individual"
    assert {"NFO", "BFO"} <= set(profile["exchanges"])
    assert profile["order_types"] == ["MARKET", "LIMIT", "SL", "SL-M"]
    assert "access_token" not in profile


def test_margins_overall_and_per_segment(kitesim_server: KitesimThread) -> None:
    kite = paced_client(kitesim_server)
    margins = kite.margins()
    assert set(margins) == {"equity", "commodity"}
    equity = kite.margins("equity")
    assert equity == margins["equity"]
    assert equity["enabled"] and equity["net"] == equity["available"]["live_balance"] > 0
    assert set(equity["utilised"]) >= {"debits", "exposure", "span", "option_premium", "m2m_realised"}
    assert kite.margins("commodity")["net"] == 0
    with pytest.raises(InputException):
        kite.margins("currency")


def test_unknown_route_and_method_answer_in_the_envelope(kitesim_server: KitesimThread) -> None:
    headers = {"X-Kite-Version": "3"}
    missing = requests.get(f"{kitesim_server.root}/no/such/route", headers=headers, timeout=5)
    assert missing.status_code == 404
    assert missing.json() == {
        "status": "error",
        "message": "Route not found",
        "error_type": "GeneralException",
        "data": None,
    }
    wrong = requests.patch(f"{kitesim_server.root}/user/profile", headers=headers, timeout=5)
    assert wrong.status_code == 405 and wrong.json()["status"] == "error"


def test_checksum_is_kites(kitesim_server: KitesimThread) -> None:
    token, _ = request_token(kitesim_server)
    checksum = hashlib.sha256(
        f"{kitesim_server.api_key}{token}{kitesim_server.api_secret}".encode()
    ).hexdigest()
    response = requests.post(
        f"{kitesim_server.root}/session/token",
        headers={"X-Kite-Version": "3"},
        data={"api_key": kitesim_server.api_key, "request_token": token, "checksum": checksum},
        timeout=5,
    )
    assert response.status_code == 200
    assert len(response.json()["data"]["login_time"]) == 19
