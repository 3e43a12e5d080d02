# The slow-client test joins a real stack (kitesim settings, the test database) like the feed tests.
from tests.workers.conftest import kitesim, stack_env  # noqa: F401
