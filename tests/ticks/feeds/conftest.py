from collections.abc import Iterator

import pytest

from kitesim.testing import KitesimThread


@pytest.fixture
def kitesim() -> Iterator[KitesimThread]:
    """A live kitesim at 10x speed, so instruments tick several times a second."""
    with KitesimThread(seed=11, speed=10) as server:
        yield server
