"""The lookup cache's entries: their lifetime, their generation, the size bound (pure: no Redis)."""

from orders.lookup_cache import LookupCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_for_the_ttl_read_when_it_was_stored() -> None:
    clock, ttl = Clock(), [5.0]
    cache: LookupCache[str, int] = LookupCache(lambda: ttl[0], clock=clock, generation=lambda: 0)
    cache.put("a", 1)
    ttl[0] = 60.0  # a later setting applies to later entries only

    clock.now = 104.9
    assert cache.get("a") == 1
    clock.now = 105.0
    assert cache.get("a") is None
    assert cache.get("never stored") is None


def test_a_ttl_of_zero_stores_nothing() -> None:
    cache: LookupCache[str, int] = LookupCache(lambda: 0.0, clock=Clock(), generation=lambda: 0)
    cache.put("a", 1)

    assert cache.get("a") is None


def test_a_full_cache_starts_over_and_clear_empties_it() -> None:
    cache: LookupCache[int, int] = LookupCache(
        lambda: 5.0, max_entries=3, clock=Clock(), generation=lambda: 0
    )
    for key in range(3):
        cache.put(key, key)
    assert [cache.get(key) for key in range(3)] == [0, 1, 2]

    cache.put(3, 3)
    assert [cache.get(key) for key in range(4)] == [None, None, None, 3]
    cache.clear()
    assert cache.get(3) is None


def test_an_entry_serves_only_the_generation_it_was_stored_under() -> None:
    generation: list[int | None] = [1]
    cache: LookupCache[str, int] = LookupCache(lambda: 5.0, clock=Clock(), generation=lambda: generation[0])
    cache.put("a", 1)
    assert cache.get("a") == 1

    generation[0] = 2  # something changed: a later request read a newer generation
    assert cache.get("a") is None
    cache.put("b", 2)
    generation[0] = None  # Redis unreachable: nothing is served or stored
    cache.put("c", 3)
    assert [cache.get(key) for key in "abc"] == [None, None, None]
