"""The order engine's test world: instruments, quotes, accounts, requests."""

from dataclasses import dataclass, field
from datetime import date, datetime

from kitesim.accounts import SimAccount
from kitesim.clock import IST
from kitesim.order_rules import OrderRequest
from kitesim.orderbook import OrderBook

NOW = datetime(2026, 8, 20, 10, 0, 0, tzinfo=IST).timestamp()


@dataclass(frozen=True)
class Instrument:
    instrument_token: int
    tradingsymbol: str
    exchange: str = "NFO"
    segment: str = "NFO-OPT"
    instrument_type: str = "CE"
    expiry: date | None = date(2026, 8, 25)
    strike: float = 24000.0
    tick_size: float = 0.05
    lot_size: int = 65
    freeze_quantity: int = 1755
    name: str = "NIFTY"
    underlying: str = "NIFTY"
    exchange_token: int = 0

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"


@dataclass
class Level:
    price: float
    quantity: int
    orders: int = 1


@dataclass
class Quote:
    last_price: float
    bids: list[Level] = field(default_factory=list)
    asks: list[Level] = field(default_factory=list)
    close: float = 100.0


def book_quote(bid: float, ask: float, last: float | None = None) -> Quote:
    last_price = last if last is not None else round((bid + ask) / 2, 2)
    return Quote(last_price, [Level(bid, 650)], [Level(ask, 650)])


class Quotes:
    def __init__(self) -> None:
        self.by_token: dict[int, Quote] = {}

    def quote(self, token: int) -> Quote:
        return self.by_token[token]


CALL = Instrument(14866434, "NIFTY26AUG24000CE")
FUTURE = Instrument(14866435, "NIFTY26AUGFUT", segment="NFO-FUT", instrument_type="FUT", strike=0.0, tick_size=0.1)
INDEX = Instrument(256265, "NIFTY 50", exchange="NSE", segment="INDICES", instrument_type="EQ", expiry=None)
EXPIRED = Instrument(1, "NIFTY26AUG18000CE", expiry=date(2026, 8, 18))


def account(key: str = "key1") -> SimAccount:
    return SimAccount(api_key=key, api_secret=f"{key}-secret", access_token="tok", user_id="SIM001",
                      token_expires_at=NOW + 86400)


def request(**changes: object) -> OrderRequest:
    fields: dict[str, object] = {
        "variety": "regular", "exchange": "NFO", "tradingsymbol": CALL.tradingsymbol,
        "transaction_type": "BUY", "order_type": "LIMIT", "product": "NRML", "quantity": 65, "price": 100.0,
    }
    fields.update(changes)
    return OrderRequest(**fields)  # type: ignore[arg-type]


def statuses(book: OrderBook, order_id: str) -> list[str]:
    return [step["status"] for step in book.history(order_id)]


def update_statuses(book: OrderBook) -> list[str]:
    return [update["status"] for update in book.drain_updates()]
