from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tests.ticks.factories import UserFactory
from ticks.models import ClientApiKey, Instrument

SLICE = Path(__file__).parents[1] / "resources" / "instruments-slice.csv"

pytestmark = pytest.mark.django_db


def test_instruments_load_reports_count_and_time() -> None:
    out = StringIO()

    call_command("instruments_load", "--file", str(SLICE), stdout=out)

    assert "Loaded 119 instruments (BFO, NFO), deactivated 0, in " in out.getvalue()
    assert Instrument.objects.count() == 119


def test_instruments_load_fails_naming_the_line_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    lines = SLICE.read_text().splitlines()
    lines[5] = lines[5].replace(",65,", ",sixty-five,")
    bad.write_text("\n".join(lines))

    with pytest.raises(CommandError, match="line 6: lot_size 'sixty-five' is not an integer"):
        call_command("instruments_load", "--file", str(bad))
    assert Instrument.objects.count() == 0


def test_instruments_load_from_an_unknown_account_fails() -> None:
    with pytest.raises(CommandError, match="No broker account named 'ghost'"):
        call_command("instruments_load", "--from-kite", "ghost")


@pytest.mark.parametrize("scope", ["read", "trade"])
def test_issue_api_key_prints_a_working_key_of_its_scope_last(scope: str) -> None:
    UserFactory(username="algo")
    out = StringIO()

    call_command("issue_api_key", "algo", "--scope", scope, stdout=out)

    *lines, key = out.getvalue().strip().splitlines()
    assert f"Issued {scope} API key" in lines[-1]
    assert ClientApiKey.objects.get_from_key(key).scope == scope
    assert APIClient().get("/api/v1/instruments", HTTP_AUTHORIZATION=f"Api-Key {key}").status_code == 200


def test_issue_api_key_requires_a_scope() -> None:
    UserFactory(username="algo")

    with pytest.raises(CommandError, match="--scope"):
        call_command("issue_api_key", "algo")
    with pytest.raises(CommandError, match="invalid choice: 'admin'"):
        call_command("issue_api_key", "algo", "--scope", "admin")
    assert not ClientApiKey.objects.exists()


def test_issue_api_key_for_an_unknown_user_fails() -> None:
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("issue_api_key", "nobody", "--scope", "read")
