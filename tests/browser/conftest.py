# The browser test runs on the same real stack as the feed tests.
from tests.workers.conftest import fleet, kitesim, stack_env, start_worker  # noqa: F401
