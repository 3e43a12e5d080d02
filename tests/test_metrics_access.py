"""/metrics (workers/apis.py): its labels name accounts, hosts and PIDs, so it is not world-readable.

With METRICS_TOKEN set (production requires it) only ``Authorization: Bearer <token>`` reads it;
without one (dev) only a loopback client does.
"""

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

pytestmark = pytest.mark.django_db  # a served scrape reads the fleet's state (workers/collectors.py)

TOKEN = "m3tr1cs-T0ken-for-prometheus-scrapes-0123456789"


@pytest.fixture
def with_token(settings: Settings) -> None:
    settings.METRICS_TOKEN = TOKEN


@pytest.fixture
def without_token(settings: Settings) -> None:
    settings.METRICS_TOKEN = ""  # whatever the shell running the tests exports


@pytest.mark.usefixtures("without_token")
def test_without_a_token_a_loopback_client_reads_them() -> None:
    for address in ("127.0.0.1", "::1"):
        response = Client(REMOTE_ADDR=address).get("/metrics")

        assert response.status_code == 200
        assert "feed_frames_total" in response.content.decode()


@pytest.mark.usefixtures("without_token")
@pytest.mark.parametrize("address", ["203.0.113.7", "10.0.0.5", ""])
def test_without_a_token_any_other_client_is_refused(address: str) -> None:
    response = Client(REMOTE_ADDR=address).get("/metrics")

    assert response.status_code == 403
    assert "feed_frames_total" not in response.content.decode()


@pytest.mark.usefixtures("with_token")
def test_with_a_token_the_bearer_reads_them_from_anywhere() -> None:
    response = Client(REMOTE_ADDR="203.0.113.7").get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert "feed_frames_total" in response.content.decode()


@pytest.mark.usefixtures("with_token")
@pytest.mark.parametrize("authorization", [None, "Basic b3BzOnB3", "Bearer", f"Token {TOKEN}"])
def test_with_a_token_a_request_without_a_bearer_gets_401(authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = Client().get("/metrics", headers=headers)  # loopback: no exception for it either

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "feed_frames_total" not in response.content.decode()


@pytest.mark.usefixtures("with_token")
@pytest.mark.parametrize("given", [TOKEN[:-1], TOKEN + "0", "x" * len(TOKEN), "bearer-is-not-the-token"])
def test_with_a_token_a_wrong_bearer_gets_403(given: str) -> None:
    response = Client().get("/metrics", headers={"Authorization": f"Bearer {given}"})

    assert response.status_code == 403
    assert "feed_frames_total" not in response.content.decode()


@pytest.mark.usefixtures("with_token")
def test_the_scheme_word_is_case_insensitive_as_prometheus_may_send_it() -> None:
    response = Client().get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})

    assert response.status_code == 200
