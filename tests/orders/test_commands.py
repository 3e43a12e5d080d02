"""``manage.py grant_trading``: what an operator runs instead of the admin form."""

import pytest
from django.core.management import CommandError, call_command

from orders.models import TradingPermission
from tests.ticks.factories import BrokerAccountFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_granting_twice_leaves_one_permission(capsys: pytest.CaptureFixture[str]) -> None:
    user, account = UserFactory(username="algo"), BrokerAccountFactory(name="desk")

    call_command("grant_trading", "algo", "desk")
    call_command("grant_trading", "algo", "desk")

    assert list(TradingPermission.objects.values_list("user", "account")) == [(user.pk, account.pk)]
    assert capsys.readouterr().out.splitlines() == [
        "algo may now trade on desk",
        "algo already may trade on desk",
    ]


@pytest.mark.parametrize(
    ("username", "account", "message"), [("nobody", "desk", "No user"), ("algo", "nope", "No broker")]
)
def test_an_unknown_user_or_account_is_named(username: str, account: str, message: str) -> None:
    UserFactory(username="algo"), BrokerAccountFactory(name="desk")

    with pytest.raises(CommandError, match=message):
        call_command("grant_trading", username, account)
    assert not TradingPermission.objects.exists()
