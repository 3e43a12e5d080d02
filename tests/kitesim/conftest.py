"""Shared kitesim fixtures: a live simulator on a loopback port and a REST client pointed at it."""

from collections.abc import Iterator

import pytest
from kiteconnect import KiteConnect

from kitesim.orderbook import DeskConfig, OrderBook, OrderDesk
from kitesim.testing import KitesimThread
from tests.kitesim.orderbook_world import account


@pytest.fixture
def kitesim_server() -> Iterator[KitesimThread]:
    """A started kitesim (demo:demosecret:demotoken, seed 7), stopped after the test."""
    with KitesimThread(seed=7) as server:
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
