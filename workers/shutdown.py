"""Cooperative stop of feed tasks when their worker shuts down.

Prefork children never see the worker's SIGTERM and a feed task never ends by itself, so the
worker's main process tells its feeds to stop over the control channel; they unsubscribe, close
and release their leases within a few seconds, and the warm shutdown completes.
"""

import json
import logging
from typing import Any

import redis
from django.conf import settings

from workers.control import CONTROL_CHANNEL

logger = logging.getLogger(__name__)


def feeds_stop_on_shutdown(sender: Any = None, **kwargs: Any) -> None:
    """``worker_shutting_down`` handler; ``sender`` is the worker's hostname."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.publish(CONTROL_CHANNEL, json.dumps({"action": "stop", "worker": str(sender)}))
    except redis.RedisError as error:
        logger.warning("could not ask feeds of %s to stop: %s", sender, error)
    finally:
        client.close()
