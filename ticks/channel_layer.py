"""The stream's channel layer: Redis pub/sub, with group messages handed straight to a connection.

channels_redis's pub/sub layer puts each payload it reads from Redis into the queue of every channel in
the group; each consumer then wakes a task, decodes the payload (msgpack) for itself and dispatches it
through Channels' ``await_many_dispatch`` (a task and an ``asyncio.wait`` per message). At 500
connections in a web process that was most of the cost of merging a chain step (bench/fanout.py,
py-spy). Here a channel may register a *receiver*, a plain function: a group message is decoded once
per web process and each receiver is called with it in turn, synchronously. The message is shared:
receivers must not change it. Channels without a receiver are served as before.

A connection's channel is released by ``channel_release`` when its consumer ends, however it ends.
channels_redis forgets a channel only when the consumer's ``receive()`` is cancelled mid-wait, and
Channels leaves its groups only when a ``websocket.disconnect`` is dispatched. A send that met a
client already gone (uvicorn's ClientDisconnected, out of a snapshot being sent) ended consumers with
neither: their group memberships and receivers stayed, each keeping a dead consumer alive and the
group subscribed in Redis (channels_redis#276; issue 17 measured 158-294 of 300 per round).
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import redis
from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close, decode_hosts

logger = logging.getLogger(__name__)

Receiver = Callable[[dict[str, Any]], None]


class StreamPubSubChannelLayer(RedisPubSubChannelLayer):
    """RedisPubSubChannelLayer whose per-loop layer accepts receivers (``receiver_set``)."""

    def _get_layer(self) -> "StreamPubSubLoopLayer":
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = StreamPubSubLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer


class StreamPubSubLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, hosts: Any = None, **kwargs: Any) -> None:
        super().__init__(hosts, **kwargs)
        self.receivers: dict[str, Receiver] = {}
        self._shards = [_DirectShard(host, self) for host in decode_hosts(hosts)]

    def receiver_set(self, channel: str, receiver: Receiver) -> None:
        """Hand this channel's group messages to ``receiver`` instead of its queue."""
        self.receivers[channel] = receiver

    def receiver_discard(self, channel: str) -> None:
        self.receivers.pop(channel, None)

    async def channel_release(self, channel: str) -> None:
        """Forget ``channel``: its receiver, its groups (unsubscribing those left empty) and its own
        subscription. Idempotent. Nothing is delivered to it once this begins: the local state goes
        first, the unsubscribes (round trips) after."""
        self.receivers.pop(channel, None)
        emptied = []
        for group_channel, members in list(self.groups.items()):
            members.discard(channel)
            if not members:
                del self.groups[group_channel]
                emptied.append(group_channel)
        if self.channels.pop(channel, None) is not None:
            emptied.append(channel)
        for name in emptied:
            try:
                await self._get_shard(name).unsubscribe(name)
            except (redis.ConnectionError, redis.TimeoutError) as error:
                # redis-py subscribes again what it still lists when it reconnects: counted there.
                logger.warning("stream channel layer: unsubscribing %s failed: %s", name, error)


class _DirectShard(RedisSingleShardConnection):
    def _receive_message(self, message: dict[str, Any] | None) -> None:
        if message is None:
            return
        layer: StreamPubSubLoopLayer = self.channel_layer
        name = message["channel"]
        name = name.decode() if isinstance(name, bytes) else name
        if name in layer.channels:
            layer.channels[name].put_nowait(message["data"])
            return
        decoded = None
        for channel in layer.groups.get(name, ()):
            receiver = layer.receivers.get(channel)
            if receiver is not None:
                if decoded is None:
                    decoded = layer.channel_layer.deserialize(message["data"])
                receiver(decoded)
            elif channel in layer.channels:
                layer.channels[channel].put_nowait(message["data"])
