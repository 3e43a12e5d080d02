"""The live stream's metrics (ticks.stream_metrics): the per-process tally, and a real connection
counted in them."""

import asyncio
import json
from datetime import date
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from prometheus_client import REGISTRY, CollectorRegistry, Histogram
from websockets.asyncio.client import connect

from tests.asgi_server import AsgiServer
from tests.ticks.factories import OptionFactory, UserFactory
from tickerproject.asgi import application
from ticks.models import ClientApiKey
from ticks.stream import chain_group, rows_message
from ticks.stream_metrics import SEND_LAG_BUCKETS, TALLY_FLUSH_S, SendTally, histogram_add
from ticks.stream_socket import DirectSend

EXPIRY = date(2026, 12, 1)


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _lag_histogram() -> Histogram:
    return Histogram("lag_seconds", "lag", buckets=SEND_LAG_BUCKETS, registry=CollectorRegistry())


def _samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    (family,) = histogram.collect()
    return {(sample.name, sample.labels.get("le", "")): sample.value for sample in family.samples}


def test_adding_bucket_counts_exposes_what_observing_each_lag_would() -> None:
    lags = [0.001, 0.005, 0.0051, 0.03, 0.3, 0.3, 2.0, 9.0]
    observed, added = _lag_histogram(), _lag_histogram()
    for lag in lags:
        observed.observe(lag)
    tally = SendTally()
    for lag in lags:
        tally.delta_sent(lag, 0, now=0.0)

    histogram_add(added, tally.lag_counts, tally.lag_sum)

    assert _samples(added) == pytest.approx(_samples(observed))
    assert _samples(added)[("lag_seconds_count", "")] == len(lags)


def test_the_tally_reaches_prometheus_once_per_flush_interval() -> None:
    tally = SendTally(flushed_at=100.0)
    sent, conflated = _value("stream_deltas_sent_total"), _value("stream_deltas_conflated_total")
    lags = _value("stream_send_lag_seconds_count")

    tally.delta_sent(0.02, 0, now=100.0)
    tally.delta_sent(None, 3, now=100.0 + TALLY_FLUSH_S / 2)
    between = _value("stream_deltas_sent_total") - sent
    tally.delta_sent(0.2, 1, now=100.0 + TALLY_FLUSH_S)

    assert between == 0
    assert _value("stream_deltas_sent_total") - sent == 3
    assert _value("stream_deltas_conflated_total") - conflated == 4
    assert _value("stream_send_lag_seconds_count") - lags == 2  # the delta of unknown lag is not observed
    assert (tally.sent, tally.conflated, tally.lag_sum, sum(tally.lag_counts)) == (0, 0, 0.0, 0)


@database_sync_to_async
def _chain_and_key() -> tuple[list[int], str]:
    tokens = [
        OptionFactory(expiry=EXPIRY, strike=Decimal(25000), instrument_type=kind).instrument_token
        for kind in ("CE", "PE")
    ]
    return tokens, ClientApiKey.objects.create_key(name="script", user=UserFactory())[1]


async def _eventually(check: object, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("compression", ["deflate", None])
async def test_a_connection_is_counted_while_open_and_its_deltas_once_it_ends(
    redis_client, compression: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With and without permessage-deflate: the delta is written straight from the merge either way
    (ticks.stream_socket.DirectSend), framed by websockets or by the stream's own header."""
    direct: list[str] = []
    write = DirectSend.send_text
    monkeypatch.setattr(DirectSend, "send_text", lambda self, text: (direct.append(text), write(self, text)))
    tokens, key = await _chain_and_key()
    clients, sent = _value("stream_clients"), _value("stream_deltas_sent_total")
    lags = _value("stream_send_lag_seconds_count")
    headers = {"X-Api-Key": key}
    with AsgiServer(application) as server:
        async with connect(
            f"{server.ws_url}/ws/stream/", additional_headers=headers, compression=compression
        ) as ws:
            await ws.send(json.dumps({"action": "subscribe", "chain": f"NIFTY:{EXPIRY.isoformat()}"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "snapshot"
            open_clients = _value("stream_clients")
            rows = [{"instrument_token": tokens[0], "last_price": 5.0}]
            message = rows_message(rows, published_at=1.0)  # long ago: the lag lands in +Inf
            await get_channel_layer().group_send(chain_group("NIFTY", EXPIRY), message)
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "delta"
            negotiated = [extension.name for extension in ws.protocol.extensions]
        await _eventually(lambda: _value("stream_clients") == clients)

    assert negotiated == (["permessage-deflate"] if compression else [])
    assert len(direct) == 1 and json.loads(direct[0])["type"] == "delta"
    assert open_clients == clients + 1
    assert _value("stream_deltas_sent_total") == sent + 1  # flushed when the connection ended
    assert _value("stream_send_lag_seconds_count") == lags + 1
    assert _value("stream_send_lag_seconds_bucket", {"le": "5.0"}) < _value(
        "stream_send_lag_seconds_bucket", {"le": "+Inf"}
    )
