"""The feed side of tick-driven rebalancing: the band watch on decoded frames, the deduplicated ask,
and the crossing -> first-new-tick probe."""

import json

import pytest
import redis
import redis.asyncio

from tests.ticks.feeds.frames import frame, index_packet, ltp_packet
from ticks.feeds.pipeline import TickBatch
from ticks.feeds.protocol import decode_frame
from ticks.feeds.rebalance import (
    LATENCY_KEY,
    REBALANCE_PENDING_KEY,
    AtmWatch,
    Crossing,
    FirstTickProbe,
    bands_read,
    bands_store,
    rebalance_ask,
)
from ticks.feeds.strikes import AtmBand

NIFTY, BANKNIFTY, OPTION = 256265, 260105, 12345678
BANDS = {NIFTY: AtmBand(24_970.0, 25_030.0, 1_000.0), BANKNIFTY: AtmBand(54_940.0, 55_060.0, 1_000.0)}


def _batch(*packets: bytes, received_at: float = 50.0) -> TickBatch:
    return TickBatch("acct", decode_frame(frame(list(packets))), received_at)


class _Crossings(list[Crossing]):
    async def __call__(self, crossing: Crossing) -> None:
        self.append(crossing)


async def test_the_first_tick_outside_its_band_asks_once_per_band() -> None:
    crossings = _Crossings()
    watch = AtmWatch(crossings)
    watch.watch(BANDS)

    await watch(_batch(index_packet(NIFTY, last_price=2_502_500, exchange_timestamp=1_001)))
    await watch(_batch(index_packet(NIFTY, last_price=2_503_100, exchange_timestamp=1_002)))
    await watch(_batch(index_packet(NIFTY, last_price=2_504_000, exchange_timestamp=1_003)))

    assert crossings == [Crossing(NIFTY, 25_031.0, 50.0, 1_002.0)]


async def test_ticks_of_unwatched_tokens_and_ticks_in_the_cooldown_ask_nothing() -> None:
    crossings = _Crossings()
    watch = AtmWatch(crossings)
    watch.watch(BANDS)

    await watch(_batch(ltp_packet(OPTION, last_price=9_999_999)))
    await watch(_batch(index_packet(BANKNIFTY, last_price=5_600_000, exchange_timestamp=999)))

    assert crossings == []


async def test_a_tick_without_an_exchange_time_is_judged_at_its_receive_time() -> None:
    crossings = _Crossings()
    watch = AtmWatch(crossings)
    watch.watch(BANDS)

    await watch(_batch(ltp_packet(NIFTY, last_price=2_490_000), received_at=999.0))
    await watch(_batch(ltp_packet(NIFTY, last_price=2_490_000), received_at=1_000.0))

    assert crossings == [Crossing(NIFTY, 24_900.0, 1_000.0, 0.0)]


async def test_new_bands_let_every_token_ask_again() -> None:
    crossings = _Crossings()
    watch = AtmWatch(crossings)
    watch.watch(BANDS)
    packet = index_packet(NIFTY, last_price=2_510_000, exchange_timestamp=1_001)

    await watch(_batch(packet))
    watch.watch({NIFTY: AtmBand(25_070.0, 25_130.0, 1_000.0)})
    await watch(_batch(packet))
    watch.watch(BANDS)
    await watch(_batch(packet))

    assert [c.price for c in crossings] == [25_100.0, 25_100.0]


@pytest.mark.integration
async def test_bands_round_trip_through_redis_and_report_a_change(
    redis_client: redis.Redis, aredis: redis.asyncio.Redis
) -> None:
    assert bands_store(redis_client, BANDS) is True
    assert bands_store(redis_client, BANDS) is False
    assert await bands_read(aredis) == BANDS
    assert bands_store(redis_client, {}) is True
    assert await bands_read(aredis) == {}


@pytest.mark.integration
async def test_many_feeds_seeing_one_crossing_ask_for_one_rebalance(aredis: redis.asyncio.Redis) -> None:
    sent: list[dict] = []

    async def send(kwargs: dict) -> None:
        sent.append(kwargs)

    crossing = Crossing(NIFTY, 25_031.0, 50.0, 1_002.0)
    asked = [await rebalance_ask(aredis, crossing, send) for _ in range(3)]
    await aredis.delete(REBALANCE_PENDING_KEY)  # what the rebalance task does when it finishes
    asked.append(await rebalance_ask(aredis, crossing, send))

    assert asked == [True, False, False, True]
    assert sent[0] == {
        "reason": f"tick {NIFTY} at 25031 left its ATM band",
        "crossed_at": 50.0,
        "market_at": 1_002.0,
    }


@pytest.mark.integration
async def test_the_probe_times_the_first_tick_of_an_added_token_once(
    aredis: redis.asyncio.Redis, redis_client: redis.Redis
) -> None:
    probe = FirstTickProbe(aredis, "acct")
    await probe(_batch(ltp_packet(OPTION, last_price=100), received_at=10.0))  # nothing expected yet
    probe.expect(7, crossed_at=10.0, added={OPTION})

    await probe(_batch(ltp_packet(NIFTY, last_price=100), received_at=10.1))
    await probe(_batch(ltp_packet(OPTION, last_price=100), received_at=10.25))
    await probe(_batch(ltp_packet(OPTION, last_price=100), received_at=10.5))

    records = [json.loads(raw) for raw in redis_client.lrange(LATENCY_KEY, 0, -1)]
    assert records == [{"version": 7, "account": "acct", "crossed_at": 10.0, "seconds": 0.25}]
