"""ticker_process_rss_bytes: every process's resident memory, for the "memory > 2 GB" rollback trigger.

A daemon thread per process sets it every ``RSS_REFRESH_S``; it is started once per process by the
Celery signals below (each worker child: ``worker`` or ``feeds``; beat) and by tickerproject/asgi.py
(each uvicorn worker: ``web``). ``liveall`` keeps one series per live process (a ``pid`` label) when
PROMETHEUS_MULTIPROC_DIR is set, and /metrics drops a process's series once it has died.
Celery imports this module in every worker and beat (``CELERY_IMPORTS``).
"""

import os
import threading
import time
from typing import Any

from celery.signals import beat_init, worker_process_init
from prometheus_client import Gauge

RSS_REFRESH_S = 15.0
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")

RSS = Gauge(
    "ticker_process_rss_bytes",
    "Resident memory of the process",
    ["process_type"],  # web, worker, feeds, beat
    multiprocess_mode="liveall",
)

_reporting_pid: int | None = None  # a forked child inherits this but not the thread: compare pids


def rss_bytes() -> int:
    """Current resident set (``resource`` only knows the peak)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


def rss_refresh(process_type: str) -> None:
    RSS.labels(process_type).set(rss_bytes())


def rss_reporting_start(process_type: str, *, interval_s: float = RSS_REFRESH_S) -> None:
    """Set the gauge now and every ``interval_s`` from a daemon thread; once per process."""
    global _reporting_pid
    if _reporting_pid == os.getpid():
        return
    _reporting_pid = os.getpid()
    rss_refresh(process_type)
    threading.Thread(
        target=_refresh_forever, args=(process_type, interval_s), name="rss-gauge", daemon=True
    ).start()


def _refresh_forever(process_type: str, interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        rss_refresh(process_type)


def worker_process_type(hostname: str) -> str:
    """The Procfile names the feed workers ``feeds@%h`` and the others ``worker@%h``."""
    return "feeds" if hostname.partition("@")[0].startswith("feeds") else "worker"


@worker_process_init.connect
def worker_child_rss_start(sender: str, **kwargs: Any) -> None:
    rss_reporting_start(worker_process_type(sender))


@beat_init.connect
def beat_rss_start(sender: object, **kwargs: Any) -> None:
    rss_reporting_start("beat")
