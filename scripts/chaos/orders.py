"""The order scenarios of `make chaos`: a worker SIGKILLed, Redis restarted (and crashed, losing its data)
and the web restarted while REST clients place a burst of orders. Each counts, against kitesim's own order book (by our per-order
Kite tag), the accepted orders that never reached Kite (lost) and the extra Kite orders of one tag
(duplicated). Import after stack.django_setup()."""

import dataclasses
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from orders.models import Order
from orders.states import NOT_YET_AT_KITE, OrderStatus
from scripts.chaos.outcome import Outcome
from scripts.chaos.stack import WEB_ROOT, Seeded, Stack, kite_order_tags

BURST_ORDERS = 40
BURST_CLIENTS = 4
BURST_INTERVAL_S = 0.1  # 10 orders/s offered; Kite takes 8/s (10/s at the limiter's 80 %): a queue builds
CLIENT_PATIENCE_S = 60  # how long the client keeps retrying one key
SETTLE_TIMEOUT_S = 90  # every accepted order at Kite within this, or the scenario did not recover
REDIS_DOWN_S = 3


@dataclass
class Attempt:
    at: float  # time.time() when the answer (or the connection error) came
    status: int | None  # None: no HTTP answer (connection refused or reset)


@dataclass
class Placement:
    key: str
    attempts: list[Attempt] = field(default_factory=list)
    order_id: int | None = None  # from the first 2xx


class Client:
    """A careful REST client: one new Idempotency-Key per order, the SAME key again after a connection
    error or a 5xx (the order may have been stored before the answer was lost), until CLIENT_PATIENCE_S."""

    def __init__(self, seeded: Seeded) -> None:
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Api-Key {seeded.api_key}"
        self.body = {
            "account": seeded.account, "exchange": seeded.exchange, "tradingsymbol": seeded.tradingsymbol,
            "variety": "regular", "transaction_type": "BUY", "order_type": "MARKET", "product": "NRML",
            "quantity": seeded.lot_size,
        }  # fmt: skip

    def place(self) -> Placement:
        placement = Placement(key=uuid.uuid4().hex)
        give_up = time.monotonic() + CLIENT_PATIENCE_S
        while placement.order_id is None and time.monotonic() < give_up:
            status, body = self._post(placement.key)
            placement.attempts.append(Attempt(time.time(), status))
            if status is not None and status < 300:
                placement.order_id = body["id"]
            elif status is not None and status < 500:
                break  # refused (a 4xx for a valid order): the row counts the key as never accepted
            else:
                time.sleep(0.2)
        return placement

    def _post(self, key: str) -> tuple[int | None, dict]:
        try:
            response = self.session.post(
                f"{WEB_ROOT}/api/v1/orders", json=self.body, headers={"Idempotency-Key": key}, timeout=10
            )
        except (requests.ConnectionError, requests.Timeout):
            return None, {}
        return response.status_code, response.json() if response.status_code < 500 else {}


class Burst:
    """BURST_ORDERS orders from BURST_CLIENTS clients at once (so a fault finds requests in flight), in the
    background while the scenario breaks things; together one order every BURST_INTERVAL_S."""

    def __init__(self, seeded: Seeded, count: int = BURST_ORDERS) -> None:
        self.count = count
        self.placements: list[Placement] = []  # appended by every client thread (list.append is atomic)
        share = count // BURST_CLIENTS
        self._threads = [
            threading.Thread(target=self._trade, args=(Client(seeded), share), daemon=True)
            for _ in range(BURST_CLIENTS)
        ]
        for thread in self._threads:
            thread.start()

    def _trade(self, client: Client, orders: int) -> None:
        for _ in range(orders):
            self.placements.append(client.place())
            time.sleep(BURST_INTERVAL_S * BURST_CLIENTS)

    def join(self) -> None:
        """Bounded: each client gives up on a key after CLIENT_PATIENCE_S."""
        for thread in self._threads:
            thread.join(CLIENT_PATIENCE_S * self.count)

    def accepted(self) -> list[int]:
        return [p.order_id for p in list(self.placements) if p.order_id is not None]

    def attempts(self) -> list[Attempt]:
        return [attempt for p in list(self.placements) for attempt in p.attempts]


def _start(stack: Stack) -> Seeded:
    stack.start_redis()
    stack.start_kitesim()
    seeded = stack.seed()
    stack.start_web()
    stack.start_worker()
    stack.start_beat()
    return seeded


def _at_kite(ids: list[int]) -> int:
    return Order.objects.filter(pk__in=ids, placed_at__isnull=False).count()


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _settled(ids: list[int]) -> bool:
    """Every order acknowledged by Kite or finished without it (never left waiting to be sent)."""
    return not Order.objects.filter(pk__in=ids, placed_at__isnull=True, status__in=NOT_YET_AT_KITE).exists()


def _first_acknowledged_after(ids: list[int], since: float) -> float | None:
    """Seconds from ``since`` (time.time()) to the first Kite acknowledgement after it."""
    stamps = Order.objects.filter(pk__in=ids, placed_at__isnull=False).values_list("placed_at", flat=True)
    later = [stamp.timestamp() for stamp in stamps if stamp.timestamp() > since]
    return min(later) - since if later else None


@dataclass(frozen=True, slots=True)
class Count:
    lost: int  # accepted, never at Kite
    duplicated: int  # Kite orders beyond the first with one of our tags
    statuses: dict[str, int]


def _count(ids: list[int]) -> Count:
    ours = dict(Order.objects.filter(pk__in=ids).values_list("pk", "kite_tag"))
    at_kite = Counter(tag for tag in kite_order_tags() if tag in set(ours.values()))
    statuses = Counter(Order.objects.filter(pk__in=ids).values_list("status", flat=True))
    return Count(
        lost=sum(1 for tag in ours.values() if at_kite[tag] == 0),
        duplicated=sum(n - 1 for n in at_kite.values() if n > 1),
        statuses=dict(sorted(statuses.items())),
    )


def _taken_over(ids: list[int]) -> int:
    """Orders a worker claimed after another's lease on them lapsed (it died mid-submission)."""
    lapsed = Order.objects.filter(pk__in=ids, events__message="took over a lapsed lease")
    return lapsed.distinct().count()


def _outcome(
    scenario: str,
    burst: Burst,
    recover_s: float | None,
    settled: bool,
    observed: str,
    probe: int | None = None,
) -> Outcome:
    ids = burst.accepted()
    count = _count([*ids, probe] if probe else ids)
    unplaced = burst.count - len(ids)
    recovered = settled and recover_s is not None and unplaced == 0 and count.lost == 0
    detail = (
        f"{len(ids)}/{burst.count} orders accepted; {observed}; {_taken_over(ids)} submissions taken over "
        f"from a lapsed lease; statuses {count.statuses}"
    )
    if unplaced:
        last = Counter(p.attempts[-1].status for p in burst.placements if p.order_id is None)
        detail += f"; {unplaced} keys never accepted, last answers {dict(last)}"
    if not settled:
        detail += f"; NOT all at Kite within {SETTLE_TIMEOUT_S} s"
    return Outcome(scenario, recovered, recover_s, count.lost, count.duplicated, None, detail)


def worker_sigkill() -> Outcome:
    """SIGKILL the whole worker (its pool children too) once the burst is flowing into Kite, start a new
    one. Recovered: every accepted order at Kite. Time to recover: the kill -> the first order Kite
    acknowledges after it (the new worker's start-up, redelivery of the killed tasks, the sweeper)."""
    with Stack("worker_sigkill") as stack:
        seeded = _start(stack)
        burst = Burst(seeded)
        flowing = _wait(lambda: _at_kite(burst.accepted()) >= BURST_ORDERS // 5, timeout=30)
        stack.stop("worker", hard=True)
        killed_at, before = time.time(), _at_kite(burst.accepted())
        in_flight = Order.objects.filter(pk__in=burst.accepted(), status=OrderStatus.SUBMITTING).count()
        stack.start_worker()
        restart_s = time.time() - killed_at
        burst.join()
        settled = flowing and _wait(lambda: _settled(burst.accepted()), SETTLE_TIMEOUT_S)
        recover_s = _first_acknowledged_after(burst.accepted(), killed_at)
        observed = (
            f"worker SIGKILLed with {before} at Kite and {in_flight} mid-submission, "
            f"a new one ready {restart_s:.1f} s later"
        )
        return _outcome("orders: worker SIGKILL mid-burst", burst, recover_s, settled, observed)


def redis_restart() -> Outcome:
    """Stop Redis (SIGTERM; append-only file, fsync per write) under the burst for REDIS_DOWN_S, start it
    on the same port with its data."""
    return _redis_outage("orders: Redis restart under a burst", crash=False)


def redis_crash() -> Outcome:
    """SIGKILL Redis under the burst and start an empty one on the same port after REDIS_DOWN_S: the
    queued and unacknowledged submissions are gone, so only the sweeper (by tag, at Kite first) can
    finish them."""
    return _redis_outage("orders: Redis crash, data lost", crash=True)


def _redis_outage(scenario: str, *, crash: bool) -> Outcome:
    """The API must answer while Redis is away (503, or 201 with the order stored for the sweeper),
    never 500 or a dropped connection; afterwards every accepted order reaches Kite exactly once. Time
    to recover: Redis back -> the first order POSTed after it acknowledged by Kite."""
    with Stack("redis_crash" if crash else "redis_restart") as stack:
        seeded = _start(stack)
        burst = Burst(seeded)
        flowing = _wait(lambda: _at_kite(burst.accepted()) >= BURST_ORDERS // 5, timeout=30)
        stack.stop("redis", hard=crash)
        down_at = time.time()
        waiting = len(burst.accepted()) - _at_kite(burst.accepted())
        time.sleep(REDIS_DOWN_S)
        stack.start_redis(empty=crash)
        back_at = time.time()
        probe = Client(seeded).place()
        burst.join()
        ids = [*burst.accepted(), *([probe.order_id] if probe.order_id else [])]
        settled = flowing and _wait(lambda: _settled(ids), SETTLE_TIMEOUT_S)
        recover_s = _first_acknowledged_after([probe.order_id], back_at) if probe.order_id else None
        during = Counter(a.status for a in burst.attempts() if down_at <= a.at <= back_at)
        observed = (
            f"{waiting} accepted orders not yet at Kite when Redis went; answers while it was down "
            f"{dict(during)} (201: stored, submitted by the sweeper); "
            f"the probe order after it: {probe.attempts[-1].status}"
        )
        outcome = _outcome(scenario, burst, recover_s, settled, observed, probe.order_id)
        if during[500] or during[None]:  # a 500 or a dropped connection while a backend is down is a bug
            return dataclasses.replace(outcome, recovered=False)
        return outcome


def web_restart() -> Outcome:
    """SIGKILL the web (uvicorn and its workers) mid-burst and start it again; the client retries the same
    Idempotency-Key on connection errors. Time to recover: the kill -> the first 2xx answer after it."""
    with Stack("web_restart") as stack:
        seeded = _start(stack)
        burst = Burst(seeded)
        flowing = _wait(lambda: len(burst.accepted()) >= BURST_ORDERS // 4, timeout=30)
        stack.stop("web", hard=True)
        killed_at = time.time()
        stack.start_web()
        restart_s = time.time() - killed_at
        burst.join()
        settled = flowing and _wait(lambda: _settled(burst.accepted()), SETTLE_TIMEOUT_S)
        answered = [
            a.at for a in burst.attempts() if a.at > killed_at and a.status is not None and a.status < 300
        ]
        recover_s = min(answered) - killed_at if answered else None
        retried = sum(1 for p in burst.placements if len(p.attempts) > 1)
        replays = sum(1 for a in burst.attempts() if a.status == 200)
        observed = (
            f"web SIGKILLed, answering again {restart_s:.1f} s later; {retried} keys retried, "
            f"{replays} answered as a replay (200)"
        )
        return _outcome("orders: web restart under load", burst, recover_s, settled, observed)


SCENARIOS = (worker_sigkill, redis_restart, redis_crash, web_restart)
