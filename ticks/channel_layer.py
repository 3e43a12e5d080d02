"""The stream's channel layer: Redis pub/sub, with group messages handed straight to a connection.

channels_redis's pub/sub layer puts each payload it reads from Redis into the queue of every channel in
the group; each consumer then wakes a task, decodes the payload (msgpack) for itself and dispatches it
through Channels' ``await_many_dispatch`` (a task and an ``asyncio.wait`` per message). At 500
connections in a web process that was most of the cost of merging a chain step (bench/fanout.py,
py-spy). Here a channel may register a *receiver*, a plain function: a group message is decoded once
per web process and each receiver is called with it in turn, synchronously. The message is shared:
receivers must not change it. Channels without a receiver are served as before.
"""

import asyncio
from collections.abc import Callable
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close, decode_hosts

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
