"""bench/fanout.py's settings: the base settings with the channel layer's prefix from the bench's
environment. Redis pub/sub ignores the database number, so without its own prefix the bench's
group messages would reach another bench or test on the same Redis, and theirs the bench's clients."""

import os

from tickerproject.settings.base import *  # noqa: F403
from tickerproject.settings.base import CHANNEL_LAYERS

CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = os.environ["BENCH_CHANNEL_PREFIX"]
