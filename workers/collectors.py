"""Scrape-time metrics: the fleet's state read from the database and Redis when Prometheus asks.

These are facts of the fleet, not of one process (is beat alive, how old is a feed's last frame, which
breaker is open), so no process keeps them in a gauge: ``/metrics`` (workers/apis.py) asks
``FleetCollector`` at every scrape, and its answer is the same /readyz would give at that moment.
A family whose store is down is left out of the scrape; ``ticker_ready`` says which store it is.
"""

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.db.models import Count, Min
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orders.breaker import BreakerState, CircuitBreaker
from orders.models import Order
from orders.states import OrderStatus
from ticks.exchange_calendar import TradingCalendar, market_calendar
from ticks.market_time import IST
from ticks.models import BrokerAccount
from workers.readiness import Component, readiness_evaluate
from workers.selectors import FeedStatus
from workers.services import redis_client

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_S = 1.0


class FleetCollector(Collector):
    """ticker_ready, ticker_market_open, feed_last_frame_age_seconds, kite_*, orders_breaker_state,
    orders_pending*, celery_queue_length (README "Metrics")."""

    def collect(self) -> Iterator[Metric]:
        state = readiness_evaluate()
        up = {component.name: component.ready for component in state.components}
        yield ready_family(state.components)
        yield GaugeMetricFamily(
            "ticker_market_open", "1 while the exchange session is open", value=float(state.market_open)
        )
        yield frame_age_family(state.feeds)
        yield calendar_end_family(market_calendar())
        if up["database"]:
            accounts = list(BrokerAccount.objects.filter(enabled=True).order_by("name"))
            yield token_expiry_family(accounts)
            yield account_health_family(accounts)
            yield from pending_order_families(now=time.time())
            if up["redis"]:
                yield breaker_family(accounts, now=time.time())
        yield from queue_length_families()


def ready_family(components: Iterable[Component]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "ticker_ready", "1 when the /readyz component is ready, else 0", labels=["component"]
    )
    for component in components:
        family.add_metric([component.name], float(component.ready))
    return family


def calendar_end_family(calendar: TradingCalendar) -> GaugeMetricFamily:
    """When the holiday list runs out (midnight IST after ``known_until``): past it every weekday is taken
    as a session, so the alert asks for next year's list while there is time (README "Exchange calendar")."""
    end = datetime.combine(calendar.known_until + timedelta(days=1), datetime.min.time(), tzinfo=IST)
    return GaugeMetricFamily(
        "market_calendar_known_until_timestamp_seconds",
        "Unix time the exchange holiday calendar stops knowing holidays (weekdays after it are assumed sessions)",
        value=end.timestamp(),
    )


def frame_age_family(feeds: Iterable[FeedStatus]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "feed_last_frame_age_seconds",
        "Seconds since the account's feed last reported a frame (absent before its first)",
        labels=["account"],
    )
    for feed in feeds:
        if feed.last_frame_age_s is not None:
            family.add_metric([feed.account], feed.last_frame_age_s)
    return family


def token_expiry_family(accounts: Iterable[BrokerAccount]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "kite_token_expires_timestamp_seconds",
        "Unix time the stored Kite access token expires (enabled accounts with a token)",
        labels=["account"],
    )
    for account in accounts:
        if account.access_token and account.token_expires_at is not None:
            family.add_metric([account.name], account.token_expires_at.timestamp())
    return family


def account_health_family(accounts: Iterable[BrokerAccount]) -> GaugeMetricFamily:
    """Every state of every enabled account, 1 for its current one: an alert on a state reads 0, not
    nothing, while the account is fine."""
    family = GaugeMetricFamily(
        "kite_account_health", "1 for the enabled account's current health state", labels=["account", "state"]
    )
    for account in accounts:
        for health in BrokerAccount.Health.values:
            family.add_metric([account.name, health], float(account.health == health))
    return family


def breaker_level(state: BreakerState, now: float) -> float:
    """2 while the breaker blocks calls to Kite; 1 when the next call probes (half-open, or open past
    its period with no call since: nothing is blocked, so this must not read as open); 0 closed."""
    if state.blocking(now):
        return 2.0
    return 0.0 if state.state == "closed" else 1.0


def breaker_family(accounts: Iterable[BrokerAccount], *, now: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "orders_breaker_state",
        "Circuit breaker per account: 0 closed, 1 the next call probes Kite, 2 open (calls wait)",
        labels=["account"],
    )
    client = redis_client()
    try:
        for account in accounts:
            state = CircuitBreaker(client, account.pk).state()
            family.add_metric([account.name], breaker_level(state, now))
    finally:
        client.close()
    return family


def pending_order_families(*, now: float) -> Iterator[GaugeMetricFamily]:
    pending = Order.objects.filter(status=OrderStatus.PENDING).aggregate(
        n=Count("id"), oldest=Min("created_at")
    )
    oldest = pending["oldest"]
    yield GaugeMetricFamily("orders_pending", "Orders in PENDING now", value=pending["n"])
    yield GaugeMetricFamily(
        "orders_pending_oldest_age_seconds",
        "Age of the oldest PENDING order (0 when none)",
        value=0.0 if oldest is None else max(0.0, now - oldest.timestamp()),
    )


def queue_length_families() -> Iterator[GaugeMetricFamily]:
    """LLEN of each Celery queue: tasks are published without a priority, so each queue is one list."""
    client = redis.Redis.from_url(
        settings.CELERY_BROKER_URL, socket_timeout=BROKER_TIMEOUT_S, socket_connect_timeout=BROKER_TIMEOUT_S
    )
    names = [queue.name for queue in settings.CELERY_TASK_QUEUES]
    try:
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(name)
            lengths = pipe.execute()
    except redis.RedisError as error:
        logger.warning("celery_queue_length left out of the scrape: broker unreachable (%s)", error)
        return
    finally:
        client.close()
    family = GaugeMetricFamily(
        "celery_queue_length", "Messages waiting in the Celery queue", labels=["queue"]
    )
    for name, length in zip(names, lengths, strict=True):
        family.add_metric([name], length)
    yield family
