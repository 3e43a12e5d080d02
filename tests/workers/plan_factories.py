import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import factory
import redis

from tests.ticks.factories import BrokerAccountFactory, OptionFactory
from ticks.models import BrokerAccount, Instrument
from workers.control import feed_status_key
from workers.models import FeedAssignment, FeedPlan


class FeedPlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FeedPlan

    version = factory.Sequence(lambda n: n + 1)
    reason = "watch specs changed"


class FeedAssignmentFactory(factory.django.DjangoModelFactory):
    """A NIFTY option strike at the window's centre, primary on connection 0."""

    class Meta:
        model = FeedAssignment

    plan = factory.SubFactory(FeedPlanFactory)
    account = factory.SubFactory(BrokerAccountFactory)
    connection = 0
    instrument_token = factory.Sequence(lambda n: 9_000_000 + n)
    primary = True
    mode = "full"
    group = "NIFTY:2026-12-08"
    underlying = "NIFTY"
    expiry = date(2026, 12, 8)
    strike = Decimal("24850")
    strike_offset = 0
    role = FeedAssignment.Role.OPTION


@dataclass(frozen=True)
class PlanWorld:
    alpha: BrokerAccount
    beta: BrokerAccount
    old: FeedPlan
    plan: FeedPlan  # in force
    nifty_options: list[int]  # strike offsets -2 .. 2, on alpha's connection 0
    nifty_index: int  # on alpha's connection 0 with its options
    banknifty_index: int  # primary on beta's connection 0, a companion copy on beta's connection 1
    banknifty_options: list[int]  # two on beta's connection 0, one on beta's connection 1


def plan_world() -> PlanWorld:
    """Plan v2 in force (v1 before it): NIFTY on alpha, BANKNIFTY across beta's two connections."""
    alpha, beta = BrokerAccountFactory(name="alpha"), BrokerAccountFactory(name="beta")
    old = FeedPlanFactory(version=1, reason="accounts changed")
    gone = FeedAssignmentFactory(plan=old, account=alpha, instrument_token=111)
    plan = FeedPlanFactory(
        version=2,
        reason="rebalance NIFTY:2026-12-08 24800→24850",
        desired_tokens=10,
        added_tokens=2,
        removed_tokens=2,
        moved_tokens=1,
        errors=["BANKNIFTY:2026-12-09: 3 of 12 tokens did not fit on the healthy connections"],
    )
    gone.retired_in = plan  # v2 stores only its change: it retires 111
    gone.save()
    nifty = [_option("NIFTY", EXPIRY, 24850 + 50 * offset) for offset in range(-2, 3)]
    for offset, token in zip(range(-2, 3), nifty, strict=True):
        FeedAssignmentFactory(
            plan=plan, account=alpha, instrument_token=token, strike=24850 + 50 * offset, strike_offset=offset
        )
    nifty_index = _index("NIFTY 50", 256265)
    FeedAssignmentFactory(plan=plan, account=alpha, instrument_token=nifty_index, **_companion("index"))
    banknifty_index = _index("NIFTY BANK", 260105)
    bank = [_option("BANKNIFTY", BANK_EXPIRY, strike) for strike in (55400, 55500, 55600)]
    for connection, token, offset in ((0, bank[0], -1), (0, bank[1], 0), (1, bank[2], 1)):
        FeedAssignmentFactory(
            plan=plan,
            account=beta,
            connection=connection,
            instrument_token=token,
            group="BANKNIFTY:2026-12-09",
            underlying="BANKNIFTY",
            expiry=BANK_EXPIRY,
            strike=55500 + 100 * offset,
            strike_offset=offset,
        )
    bank_companion = {**_companion("index"), "group": "BANKNIFTY:2026-12-09", "underlying": "BANKNIFTY"}
    FeedAssignmentFactory(
        plan=plan, account=beta, connection=0, instrument_token=banknifty_index, **bank_companion
    )
    FeedAssignmentFactory(
        plan=plan,
        account=beta,
        connection=1,
        instrument_token=banknifty_index,
        primary=False,
        **bank_companion,
    )
    return PlanWorld(alpha, beta, old, plan, nifty, nifty_index, banknifty_index, bank)


EXPIRY = date(2026, 12, 8)
BANK_EXPIRY = date(2026, 12, 9)


def _option(name: str, expiry: date, strike: int) -> int:
    return OptionFactory(name=name, expiry=expiry, strike=Decimal(strike)).instrument_token


def _index(symbol: str, token: int) -> int:
    OptionFactory(
        name=symbol,
        tradingsymbol=symbol,
        instrument_token=token,
        exchange="NSE",
        segment="INDICES",
        instrument_type=Instrument.Type.EQ,
        strike=Decimal(0),
        expiry=None,
    )
    return token


def _companion(role: str) -> dict:
    return {"role": role, "expiry": None, "strike": None, "strike_offset": None}


def feed_report(
    client: redis.Redis, account: BrokerAccount, version: int, connections: dict[int, list[int]]
) -> None:
    """What a live feed writes about its subscriptions."""
    report = {"plan_version": version, "connections": {str(c): tokens for c, tokens in connections.items()}}
    client.set(feed_status_key(account.pk), json.dumps(report))
