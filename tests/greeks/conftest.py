"""The feed fixtures (kitesim, two accounts with its instruments loaded, Celery workers) for the e2e tests."""

from tests.workers.conftest import fleet, kitesim, stack_env, start_worker

__all__ = ["fleet", "kitesim", "stack_env", "start_worker"]
