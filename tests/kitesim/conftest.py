"""Shared kitesim fixtures: a live simulator on a loopback port and a REST client pointed at it."""

from collections.abc import Iterator
from datetime import date

import pytest
from kiteconnect import KiteConnect

from kitesim.orderbook import DeskConfig, OrderBook, OrderDesk
from kitesim.paths import session_open_epoch
from kitesim.testing import KitesimThread
from tests.kitesim.orderbook_world import account

SESSION_OPEN = session_open_epoch(date(2026, 12, 7))  # a Monday


@pytest.fixture
def kitesim_server(request: pytest.FixtureRequest) -> Iterator[KitesimThread]:
    """A started kitesim (demo:demosecret:demotoken, seed 7), stopped after the test.

    It opens on a fixed session, so the test proves the same on any host date; a test marked ``clock``
    gets kitesim's default start instead, the session of the host's date (as ``make run`` has it).
    """
    start = {} if request.node.get_closest_marker("clock") else {"start_epoch": SESSION_OPEN}
    with KitesimThread(seed=7, **start) as server:
        yield server


@pytest.fixture
def kite(kitesim_server: KitesimThread) -> KiteConnect:
    return KiteConnect(
        kitesim_server.api_key, access_token=kitesim_server.access_token, root=kitesim_server.root
    )


@pytest.fixture
def desk() -> OrderDesk:
    return OrderDesk(DeskConfig(opening_balance=1_000_000.0))


@pytest.fixture
def book(desk: OrderDesk) -> OrderBook:
    return desk.book(account())
