"""What the dashboard costs per delta, read from Chromium's DevTools protocol over Playwright's CDP session.

Layouts, style recalcs and script/task time come from ``Performance.getMetrics`` (counters since the page
loaded, read before and after a window); deltas, renders and the feed-to-paint lag from the page's own
``window.chainStats`` (the issue-16 contract), reset at the start of the window.
"""

import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

from playwright.sync_api import CDPSession, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

# Performance.getMetrics reports durations in seconds, counts as plain numbers.
METRICS = ("LayoutCount", "RecalcStyleCount", "ScriptDuration", "TaskDuration")
PERCENTILES = (50, 95, 99)
NO_STATS = "window.chainStats is absent: the page does not expose its render stats (issue 16 contract)"


@dataclass(frozen=True)
class PageCost:
    """One measured window. Per-delta figures divide the window's totals by the deltas received in it."""

    throttle: float  # Emulation.setCPUThrottlingRate: 1 = the machine's speed, 4 = four times slower
    seconds: float
    deltas: int
    renders: int
    layouts: int
    style_recalcs: int
    script_ms: float
    task_ms: float
    lag_samples: int  # deltas rendered in the window with a feed receive time (the lag percentiles' n)
    lag_p50_ms: float | None
    lag_p95_ms: float | None
    lag_p99_ms: float | None
    lag_max_ms: float | None

    @property
    def layouts_per_delta(self) -> float:
        return self.layouts / max(self.deltas, 1)

    @property
    def style_recalcs_per_delta(self) -> float:
        return self.style_recalcs / max(self.deltas, 1)

    @property
    def script_ms_per_delta(self) -> float:
        return self.script_ms / max(self.deltas, 1)

    @property
    def task_ms_per_delta(self) -> float:
        return self.task_ms / max(self.deltas, 1)

    @property
    def renders_per_delta(self) -> float:
        return self.renders / max(self.deltas, 1)

    def figures(self) -> dict[str, float | int | None]:
        """The totals and the per-delta figures, for a JSON artifact."""
        per_delta = {
            "layouts_per_delta": self.layouts_per_delta,
            "style_recalcs_per_delta": self.style_recalcs_per_delta,
            "script_ms_per_delta": self.script_ms_per_delta,
            "task_ms_per_delta": self.task_ms_per_delta,
            "renders_per_delta": self.renders_per_delta,
        }
        return {**asdict(self), **{name: round(value, 3) for name, value in per_delta.items()}}


@dataclass(frozen=True)
class HotFunction:
    """A function's self time in a CPU profile: where the page's main thread spent its samples."""

    name: str
    where: str  # file:line, or "" for V8's own nodes such as (program) and (garbage collector)
    self_ms: float


def cdp_session(page: Page) -> CDPSession:
    """A DevTools session on ``page`` with the Performance domain on (its counters start when enabled)."""
    session = page.context.new_cdp_session(page)
    session.send("Performance.enable")
    return session


def performance_metrics(session: CDPSession) -> dict[str, float]:
    """The page's counters named in METRICS, as Performance.getMetrics reports them."""
    reported = {
        metric["name"]: metric["value"] for metric in session.send("Performance.getMetrics")["metrics"]
    }
    missing = [name for name in METRICS if name not in reported]
    assert not missing, f"Performance.getMetrics lacks {missing}: is the Performance domain enabled?"
    return {name: reported[name] for name in METRICS}


def throttle_cpu(session: CDPSession, rate: float) -> None:
    """Run the page's renderer ``rate`` times slower than the machine (1 turns throttling off)."""
    session.send("Emulation.setCPUThrottlingRate", {"rate": rate})


def wait_for_chain_stats(page: Page, timeout_ms: float = 15_000) -> None:
    """Until the page exposes window.chainStats; a page without it fails with the contract's name."""
    try:
        page.wait_for_function("() => typeof window.chainStats?.reset === 'function'", timeout=timeout_ms)
    except PlaywrightTimeoutError:
        raise AssertionError(NO_STATS) from None


def wait_for_deltas(page: Page, count: int, timeout_ms: float = 30_000) -> None:
    """Until ``count`` deltas arrive after a reset: the stream is flowing and the snapshot's load is over."""
    page.evaluate("() => window.chainStats.reset()")
    page.wait_for_function(f"() => window.chainStats.deltas >= {count}", timeout=timeout_ms)


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted samples: a value that was observed, never interpolated."""
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


def measure(page: Page, seconds: float, session: CDPSession, throttle: float = 1.0) -> PageCost:
    """Cost of ``seconds`` of live streaming at ``throttle``. The counters are read before the stats reset
    and after the stats are read, so work between the two calls is charged to the page, never hidden."""
    assert page.evaluate("() => window.chainStats !== undefined"), NO_STATS
    throttle_cpu(session, throttle)
    before = performance_metrics(session)
    page.evaluate("() => window.chainStats.reset()")
    page.wait_for_timeout(seconds * 1000)
    stats = page.evaluate(
        "() => ({deltas: chainStats.deltas, renders: chainStats.renders, lagsMs: [...chainStats.lagsMs]})"
    )
    after = performance_metrics(session)
    throttle_cpu(session, 1)
    spent = {name: after[name] - before[name] for name in METRICS}
    lags = sorted(float(lag) for lag in stats["lagsMs"])
    return PageCost(
        throttle=throttle,
        seconds=seconds,
        deltas=int(stats["deltas"]),
        renders=int(stats["renders"]),
        layouts=round(spent["LayoutCount"]),
        style_recalcs=round(spent["RecalcStyleCount"]),
        script_ms=spent["ScriptDuration"] * 1000,
        task_ms=spent["TaskDuration"] * 1000,
        lag_samples=len(lags),
        lag_p50_ms=percentile(lags, 50) if lags else None,
        lag_p95_ms=percentile(lags, 95) if lags else None,
        lag_p99_ms=percentile(lags, 99) if lags else None,
        lag_max_ms=lags[-1] if lags else None,
    )


def hot_functions(page: Page, seconds: float, session: CDPSession, top: int = 10) -> list[HotFunction]:
    """The ``top`` functions by self time in a CPU profile of ``seconds`` of streaming, idle excluded:
    where the script time per delta goes when it misses its target."""
    session.send("Profiler.enable")
    session.send("Profiler.setSamplingInterval", {"interval": 250})  # microseconds
    session.send("Profiler.start")
    page.wait_for_timeout(seconds * 1000)
    profile = session.send("Profiler.stop")["profile"]
    session.send("Profiler.disable")
    return _self_times(profile)[:top]


def _self_times(profile: dict) -> list[HotFunction]:
    """Self time per (function, file:line), summed over the profile's samples; the time before sample i+1
    is charged to sample i, as DevTools does."""
    frames = {node["id"]: node["callFrame"] for node in profile["nodes"]}
    deltas = [*profile["timeDeltas"][1:], 0]
    spent: Counter[tuple[str, str]] = Counter()
    for node_id, delta_us in zip(profile["samples"], deltas, strict=True):
        frame = frames[node_id]
        name = frame["functionName"] or "(anonymous)"
        if name != "(idle)":
            spent[name, _where(frame)] += delta_us / 1000
    return [HotFunction(name, where, ms) for (name, where), ms in spent.most_common()]


def _where(frame: dict) -> str:
    if not frame["url"]:
        return ""
    return f"{PurePosixPath(frame['url'].split('?')[0]).name}:{frame['lineNumber'] + 1}"
