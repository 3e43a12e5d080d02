import random

from ticks.feeds.backoff import backoff_delays


def test_delays_grow_exponentially_up_to_the_cap_with_full_jitter() -> None:
    delays = backoff_delays(base_s=0.5, cap_s=8.0, rng=random.Random(3))

    drawn = [next(delays) for _ in range(40)]

    ceilings = [min(8.0, 0.5 * 2**n) for n in range(40)]
    assert all(0 <= delay <= ceiling for delay, ceiling in zip(drawn, ceilings, strict=True))
    assert max(drawn[10:]) > 4.0  # jitter spans the whole capped window, not just its bottom
    assert len(set(drawn)) == len(drawn)


def test_a_fleet_with_different_seeds_does_not_reconnect_in_step() -> None:
    first = [next(backoff_delays(base_s=1, cap_s=30, rng=random.Random(seed))) for seed in range(20)]

    assert len({round(delay, 6) for delay in first}) == 20
