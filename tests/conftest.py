"""Suite-wide fixtures: Redis database 15 (tickerproject.settings.test), flushed around each test."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio
from django.conf import settings
from rest_framework.test import APIClient

from tests.ticks.factories import UserFactory
from ticks.models import ClientApiKey

Path(settings.BASE_DIR, "var").mkdir(exist_ok=True)

DATABASE_FIXTURES = {"db", "transactional_db", "django_db_setup"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="only tests that use the database (CI's second database: the others do not depend on it)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--database-tests-only"):
        return
    kept, skipped = [], []
    for item in items:
        uses_database = item.get_closest_marker("django_db") or DATABASE_FIXTURES & set(item.fixturenames)
        (kept if uses_database else skipped).append(item)
    config.hook.pytest_deselected(items=skipped)
    items[:] = kept


@pytest.fixture
def redis_url() -> str:
    return settings.REDIS_URL


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
async def aredis(redis_client: redis.Redis, redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def key_client() -> APIClient:
    """A REST client authenticated with a fresh API key of a new user."""
    _, key = ClientApiKey.objects.create_key(name="algo", user=UserFactory())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client
