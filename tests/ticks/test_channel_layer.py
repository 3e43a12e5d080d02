"""The stream's channel layer over the real Redis: group messages decoded once per process and handed
to the channels' receivers; channels without one are served through their queue as before."""

import asyncio

import pytest
from channels.layers import get_channel_layer

from ticks.channel_layer import StreamPubSubChannelLayer

pytestmark = pytest.mark.integration


async def _received(calls: list[dict], count: int) -> None:
    while len(calls) < count:
        await asyncio.sleep(0.01)


async def test_a_group_message_is_decoded_once_and_handed_to_every_receiver(redis_client) -> None:
    layer = get_channel_layer()
    assert isinstance(layer, StreamPubSubChannelLayer)
    first, second, queued = [await layer.new_channel() for _ in range(3)]
    calls: list[dict] = []
    layer.receiver_set(first, calls.append)
    layer.receiver_set(second, calls.append)
    for channel in (first, second, queued):
        await layer.group_add("chain.NIFTY.2026-12-01", channel)

    await layer.group_send("chain.NIFTY.2026-12-01", {"type": "stream.rows", "tokens": [1]})
    await asyncio.wait_for(_received(calls, 2), timeout=5)

    assert calls[0] == {"type": "stream.rows", "tokens": [1]} and calls[0] is calls[1]
    assert await asyncio.wait_for(layer.receive(queued), timeout=5) == calls[0]
    await layer.flush()


async def test_a_discarded_receiver_gets_nothing_more(redis_client) -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    calls: list[dict] = []
    layer.receiver_set(channel, calls.append)
    await layer.group_add("underlying.NIFTY", channel)
    await layer.group_send("underlying.NIFTY", {"type": "stream.rows", "n": 1})
    await asyncio.wait_for(_received(calls, 1), timeout=5)

    layer.receiver_discard(channel)
    await layer.group_send("underlying.NIFTY", {"type": "stream.rows", "n": 2})

    assert await asyncio.wait_for(layer.receive(channel), timeout=5) == {"type": "stream.rows", "n": 2}
    assert calls == [{"type": "stream.rows", "n": 1}]
    await layer.flush()


async def test_a_released_channel_leaves_its_groups_and_redis(redis_client) -> None:
    """However its consumer ended (ticks.consumers releases in a finally): the group channel left with
    no member is unsubscribed, the channel's own too, and the receiver is gone."""
    layer = get_channel_layer()
    kept, released = await layer.new_channel(), await layer.new_channel()
    layer.receiver_set(released, lambda message: None)
    await layer.group_add("chain.NIFTY.2026-12-01", released)
    await layer.group_add("underlying.NIFTY", released)
    await layer.group_add("underlying.NIFTY", kept)
    prefix = layer._get_layer().prefix

    await layer.channel_release(released)
    await layer.channel_release(released)  # idempotent
    expected = {kept, f"{prefix}__group__underlying.NIFTY"}
    for _ in range(100):  # the unsubscribes are sent, not answered: Redis applies them in a moment
        subscribed = {name.decode() for name in redis_client.pubsub_channels(f"{prefix}*")}
        if subscribed == expected:
            break
        await asyncio.sleep(0.02)

    assert subscribed == expected
    assert layer._get_layer().receivers == {}
    await layer.flush()
