import time

import pytest
import redis

from orders.breaker import CircuitBreaker


@pytest.fixture
def breaker(redis_client: redis.Redis, settings) -> CircuitBreaker:
    settings.ORDER_BREAKER_FAILURES = 3
    settings.ORDER_BREAKER_RESET_S = 0.5
    settings.KITE_HTTP_TIMEOUT = 0.3
    settings.ORDER_LEASE_MARGIN_S = 0.2
    return CircuitBreaker(redis_client, account_id=7)


def test_it_opens_after_consecutive_failures_and_fails_fast(breaker: CircuitBreaker) -> None:
    assert [breaker.record_failure() for _ in range(3)] == [False, False, True]

    assert 0.3 < breaker.allow() <= 0.5
    assert breaker.state().state == "open"
    assert breaker.state().opened == 1


def test_a_success_resets_the_count(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    assert breaker.record_failure() is False
    assert breaker.allow() == 0.0


def test_after_the_reset_period_one_probe_goes_and_its_success_closes(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        breaker.record_failure()
    time.sleep(0.55)

    assert breaker.allow() == 0.0  # the probe
    assert breaker.state().state == "half_open"
    assert breaker.allow() > 0  # everyone else waits for the probe
    breaker.record_success()

    assert breaker.state().state == "closed"
    assert breaker.allow() == 0.0


def test_a_failed_probe_opens_it_again(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        breaker.record_failure()
    time.sleep(0.55)
    assert breaker.allow() == 0.0

    assert breaker.record_failure() is True
    assert breaker.state().opened == 2
    assert breaker.allow() > 0.3


def test_a_lost_probe_lets_the_next_caller_probe(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        breaker.record_failure()
    time.sleep(0.55)
    assert breaker.allow() == 0.0  # this probe's worker dies without reporting

    time.sleep(0.55)  # the probe window: one Kite timeout and the lease margin
    assert breaker.allow() == 0.0


def test_breakers_are_per_account(redis_client: redis.Redis, breaker: CircuitBreaker) -> None:
    for _ in range(3):
        breaker.record_failure()

    assert CircuitBreaker(redis_client, account_id=8).allow() == 0.0
