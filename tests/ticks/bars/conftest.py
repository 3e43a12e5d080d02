# kitesim-backed fixtures for the Kite-candle tests, and the worker fixtures the task tests share.
from tests.ticks.bars.kite_world import bars_sim, world  # noqa: F401
from tests.workers.conftest import fleet, start_worker  # noqa: F401
