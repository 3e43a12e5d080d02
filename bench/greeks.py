"""IV + Greeks benchmark on the NIFTY + BANKNIFTY test chain of ref/greeks-engines.md §1.

Prints figures only (targets in ref §8: P1 chain median <= 1.0 ms, P2 >= 2 M options/s,
P3 >= 1000x mibian per option, P4 <= 8 iterations), then (5) the per-frame cost GreeksHook adds to
the feed path for a frame of 3000 full packets, with and without Redis (tickerproject.settings.test:
Redis db 15). Run: .venv/bin/python bench/greeks.py [--only-tick-path]
"""

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from greeks import engine, reference
from greeks.solver import normalised_otm_call, solve_total_vol
from greeks.tickpath import InstrumentRow, instrument_table_build
from ticks.feeds.protocol import TICK_DTYPE

FloatArray = npt.NDArray[np.float64]

RATE = 0.065
TICK = 0.05
UNDERLYINGS = (("NIFTY", 24_500.0, 50.0, 0.13), ("BANKNIFTY", 52_000.0, 100.0, 0.15))
EXPIRY_DAYS = (1.25, 7.25, 28.25, 91.25)
STRIKES_EACH_SIDE = 50


class Chain(NamedTuple):
    forward: FloatArray
    strike: FloatArray
    t: FloatArray
    is_call: npt.NDArray[np.bool_]
    vol: FloatArray  # the smile the prices were generated from


def build_chain(spot_scale: float = 1.0) -> Chain:
    """2 underlyings x 4 expiries x 101 strikes x CE/PE, on a smooth smile (ref §1)."""
    parts = []
    for _, spot, step, atm in UNDERLYINGS:
        for days in EXPIRY_DAYS:
            t = days / 365.0
            forward = spot * spot_scale * np.exp(RATE * t)
            strike = np.round(spot / step) * step + step * np.arange(
                -STRIKES_EACH_SIDE, STRIKES_EACH_SIDE + 1
            )
            z = np.log(strike / forward) / (atm * np.sqrt(t))
            vol = np.clip(atm * (1.0 - 0.08 * z + 0.02 * z * z), 0.6 * atm, 4.0 * atm)
            for is_call in (True, False):
                n = strike.size
                parts.append((np.full(n, forward), strike, np.full(n, t), np.full(n, is_call), vol))
    return Chain(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def exact_prices(chain: Chain) -> FloatArray:
    return engine.price_at_vol(chain.forward, chain.strike, chain.t, RATE, chain.is_call, chain.vol)


def tick_prices(chain: Chain) -> FloatArray:
    return np.maximum(np.round(exact_prices(chain) / TICK) * TICK, TICK)


def _discounted_intrinsic(chain: Chain) -> FloatArray:
    sign = np.where(chain.is_call, 1.0, -1.0)
    return np.exp(-RATE * chain.t) * np.maximum(sign * (chain.forward - chain.strike), 0.0)


def run(prices: FloatArray, chain: Chain) -> engine.GreeksResult:
    return engine.implied_vol_and_greeks(prices, chain.forward, chain.strike, chain.t, RATE, chain.is_call)


def timings(call: Callable[[], object], repeats: int) -> FloatArray:
    call()  # the first call is reported by the caller where it matters
    out = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        call()
        out[i] = time.perf_counter() - start
    return out


def section_chain(repeats: int) -> float:
    chain = build_chain()
    print(f"(1) full chain, {chain.strike.size} options, IV + delta gamma theta vega rho, Black-76, 1 core")
    median = 0.0
    for name, prices in (("tick", tick_prices(chain)), ("exact", exact_prices(chain))):
        start = time.perf_counter()
        first = run(prices, chain)
        first_ms = (time.perf_counter() - start) * 1e3
        ms = timings(lambda p=prices: run(p, chain), repeats) * 1e3
        ok = first.status == 0
        print(
            f"    {name:5s} prices: median {np.median(ms):.3f} ms  p99 {np.percentile(ms, 99):.3f} ms  "
            f"min {ms.min():.3f} ms  first call {first_ms:.3f} ms  ({repeats} repeats; "
            f"{ok.sum()} solved, {(~ok).sum()} NaN with a status)"
        )
        if name == "tick":
            median = float(np.median(ms))
        else:
            reprice = engine.price_at_vol(chain.forward, chain.strike, chain.t, RATE, chain.is_call, first.iv)
            error = np.abs(first.iv - chain.vol) * 100.0
            well_posed = (prices >= TICK) & (prices - _discounted_intrinsic(chain) >= TICK)
            print(
                f"          max |IV - true vol| {np.nanmax(error):.2e} vol points ({np.max(error[well_posed]):.2e} "
                f"on the {well_posed.sum()} well-posed), max reprice residual "
                f"{np.nanmax(np.abs(reprice - prices)):.2e} rupees"
            )
    return median / chain.strike.size * 1e3  # microseconds per option


def section_throughput(batches: tuple[int, ...], repeats: int) -> None:
    print("(2) throughput, exact prices, copies of the chain with spots jittered +-3 %")
    rng = np.random.default_rng(0)
    base = build_chain()
    for size in batches:
        copies = -(-size // base.strike.size)
        scales = rng.uniform(0.97, 1.03, copies)
        parts = [build_chain(scale) for scale in scales]
        chain = Chain(*(np.concatenate(column)[:size] for column in zip(*parts, strict=True)))
        prices = exact_prices(chain)
        seconds = timings(lambda c=chain, p=prices: run(p, c), repeats)
        per_s = size / np.median(seconds)
        print(
            f"    batch {size:>7,d}: median {np.median(seconds) * 1e3:8.2f} ms  "
            f"{per_s / 1e6:5.2f} M options/s  ({1e9 / per_s:.0f} ns/option, {repeats} repeats)"
        )


def section_mibian(sample: int, ours_us: float) -> None:
    chain = build_chain()
    prices = tick_prices(chain)
    status = engine.quote_status(prices, chain.forward, chain.strike, chain.t, RATE, chain.is_call)
    time_value = prices - _discounted_intrinsic(chain)
    well_posed = np.flatnonzero((status == 0) & (prices >= TICK) & (time_value >= TICK))
    pick = np.random.default_rng(1).choice(well_posed, size=min(sample, well_posed.size), replace=False)
    args = (chain.forward[pick], chain.strike[pick], chain.t[pick], RATE, chain.is_call[pick])
    print(f"(3) mibian 0.1.3 on {pick.size} well-posed tick quotes of the same chain (one pass)")
    start = time.perf_counter()
    mib = reference.implied_vol_and_greeks(prices[pick], *args)
    mib_us = (time.perf_counter() - start) / pick.size * 1e6
    start = time.perf_counter()
    reference.greeks_at_vol(*args, chain.vol[pick])
    mib_greeks_us = (time.perf_counter() - start) / pick.size * 1e6
    greeks_s = timings(
        lambda: engine.greeks_at_vol(chain.forward, chain.strike, chain.t, RATE, chain.is_call, chain.vol), 50
    )
    ours_greeks_us = np.median(greeks_s) / chain.strike.size * 1e6
    print(
        f"    mibian IV + Greeks: {mib_us:9.1f} us/option ({(mib.status == 0).sum()} of {pick.size} solved)"
    )
    print(f"    ours   IV + Greeks: {ours_us:9.3f} us/option (tick-chain median / 1616)")
    print(f"    ratio ours/mibian per option: {ours_us / mib_us:.2e}  (speed-up {mib_us / ours_us:,.0f}x)")
    print(
        f"    Greeks only at a given vol: mibian {mib_greeks_us:.1f} us/option, ours {ours_greeks_us:.3f} "
        f"us/option (speed-up {mib_greeks_us / ours_greeks_us:,.0f}x)"
    )
    _print_disagreement(prices[pick], args, mib.iv)


def _print_disagreement(quotes: np.ndarray, args: tuple, mibian_iv: np.ndarray) -> None:
    """The largest IV gap to mibian, and each side's repricing error: mibian's bisection stops once
    its price matches the quote to the quote's printed decimals, ours at 1e-9 rupees."""
    ours = engine.implied_vol_and_greeks(quotes, *args)
    both = (ours.status == 0) & np.isfinite(mibian_iv)
    gap = np.abs(ours.iv[both] - mibian_iv[both]) * 100
    worst = int(np.argmax(gap))
    forward, strike, t, rate, is_call = (np.broadcast_to(a, quotes.shape)[both] for a in args)
    reprice_ours = np.abs(engine.price_at_vol(forward, strike, t, rate, is_call, ours.iv[both]) - quotes[both])
    reprice_mib = np.abs(engine.price_at_vol(forward, strike, t, rate, is_call, mibian_iv[both]) - quotes[both])
    print(
        f"    largest IV disagreement with mibian: {gap[worst]:.4f} vol points (strike {strike[worst]:.0f}, "
        f"quote {quotes[both][worst]:.2f}); median {np.median(gap):.5f}"
    )
    print(
        f"    reprice error of the quote: mibian max {reprice_mib.max():.2e} rupees, ours max {reprice_ours.max():.2e}"
        " (mibian stops at the quote's printed decimals)"
    )


def section_iterations() -> None:
    chain = build_chain()
    print("(4) solver iterations (residual evaluations per option)")
    for name, prices in (("tick chain", tick_prices(chain)), ("exact chain", exact_prices(chain))):
        result = engine.implied_vol(prices, chain.forward, chain.strike, chain.t, RATE, chain.is_call)
        used = result.iterations[result.status == 0]
        print(f"    {name:12s}: max {used.max()}  mean {used.mean():.2f}  histogram {np.bincount(used)[1:]}")
    # Stress grid of ref §3c: total vol log-uniform on [1e-3, 3], |x| <= min(3, 8 s), CE or PE.
    rng = np.random.default_rng(2)
    s = np.exp(rng.uniform(np.log(1e-3), np.log(3.0), 20_000))
    x = -np.abs(rng.uniform(-1.0, 1.0, s.size) * np.minimum(3.0, 8.0 * s))
    beta = normalised_otm_call(x, s)
    solvable = (beta > 0.0) & (beta < np.exp(0.5 * x))
    solved = solve_total_vol(x[solvable], beta[solvable])
    error = np.abs(solved.s / s[solvable] - 1.0)
    print(
        f"    stress grid : max {solved.iterations.max()}  mean {solved.iterations.mean():.2f}  "
        f"histogram {np.bincount(solved.iterations)[1:]}  (max relative IV error {error.max():.1e}, "
        f"{solvable.sum()} OTM quotes)"
    )


TICK_PATH_UNDERLYINGS = (
    ("NIFTY", 256265, 24_500.0, 50.0),
    ("BANKNIFTY", 260105, 52_000.0, 100.0),
    ("SENSEX", 265, 80_000.0, 100.0),
)
TICK_PATH_EXPIRIES = (1.25, 7.25, 14.25, 28.25)
TICK_PATH_STRIKES = 125  # per expiry: 3 x 4 x 125 x CE/PE = 3000 options


def _tick_path_market() -> tuple[list[InstrumentRow], npt.NDArray[np.void]]:
    """Instrument rows (3 indexes, 3 futures, 3000 options) and one frame of 3000 full packets.

    The frame has the 3 indexes, the 3 futures and 2994 options, each with a two-sided book, so
    the engine solves 2 x 2994 lanes (last price and mid) per frame.
    """
    now = 1_796_000_000  # an exchange timestamp; expiries are placed after it
    rows: list[InstrumentRow] = []
    ticks: list[tuple[int, float, float, float]] = []
    token = 1_000_000
    for code, (name, index_token, spot, step) in enumerate(TICK_PATH_UNDERLYINGS):
        rows.append(InstrumentRow(index_token, name, None, 0.0, "IDX"))
        ticks.append((index_token, spot, 0.0, 0.0))
        for e, days in enumerate(TICK_PATH_EXPIRIES):
            expiry = (datetime.fromtimestamp(now, engine.IST) + timedelta(days=days)).date()
            t = engine.year_fraction(now, expiry)
            forward = spot * np.exp(RATE * t)
            if e == len(TICK_PATH_EXPIRIES) - 1:
                future = 900_000 + code
                rows.append(InstrumentRow(future, name, expiry, 0.0, "FUT"))
                ticks.append((future, round(forward, 1), forward - 0.5, forward + 0.5))
            strikes = np.round(spot / step) * step + step * np.arange(
                -(TICK_PATH_STRIKES // 2), TICK_PATH_STRIKES - TICK_PATH_STRIKES // 2
            )
            z = np.log(strikes / forward) / (0.14 * np.sqrt(t))
            vol = np.clip(0.14 * (1.0 - 0.08 * z + 0.02 * z * z), 0.08, 0.6)
            for is_call in (True, False):
                price = np.maximum(
                    np.round(engine.price_at_vol(forward, strikes, t, RATE, is_call, vol) / TICK) * TICK, TICK
                )
                for k, p in zip(strikes, price, strict=True):
                    token += 1
                    rows.append(InstrumentRow(token, name, expiry, float(k), "CE" if is_call else "PE"))
                    ticks.append((token, float(p), max(float(p) - TICK, TICK), float(p) + TICK))
    frame = np.zeros(3000, dtype=TICK_DTYPE)
    chosen = ticks[:3000]  # 3006 instruments: the last 6 options are left out
    frame["instrument_token"] = [t[0] for t in chosen]
    frame["last_price"] = [t[1] for t in chosen]
    frame["bid_price"][:, 0] = [t[2] for t in chosen]
    frame["ask_price"][:, 0] = [t[3] for t in chosen]
    frame["exchange_timestamp"] = now
    frame["mode"] = "full"
    return rows, frame


def section_tick_path(repeats: int) -> None:
    """Per-frame cost GreeksHook adds to the feed path, without Redis and with the local test Redis."""
    import asyncio

    import django
    import redis
    import redis.asyncio

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tickerproject.settings.test")
    django.setup()
    from django.conf import settings

    from greeks.hook import GreeksHook
    from greeks.records import GREEKS_LATEST_KEY
    from ticks.feeds.pipeline import TickBatch

    rows, frame = _tick_path_market()
    table = instrument_table_build(rows)
    batch = TickBatch("bench", frame, float(frame["exchange_timestamp"][0]))

    async def load() -> object:
        return table

    options = int((table.kind[table.lookup(frame["instrument_token"])[0]] >= 2).sum())
    print(
        f"(5) tick path: GreeksHook on one frame of {frame.size} full packets ({options} options, "
        f"{len(table.chains)} chains, depth on every row), Black-76, numpy backend"
    )

    async def run() -> None:
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1)
        hook = GreeksHook(client, load_table=load, rate=RATE, model="black76", backend="numpy")
        await hook.ensure_table()
        result = hook.compute(batch)
        ok = int((result.records["status"] == 0).sum())
        compute_us = timings(lambda: hook.compute(batch), repeats) * 1e6
        mapping_us = timings(result.mapping, repeats) * 1e6
        print(
            f"    compute (locate rows, forwards, one engine call, pack records): median {np.median(compute_us):,.0f} us "
            f"p99 {np.percentile(compute_us, 99):,.0f} us per frame  ({ok} of {options} solved)"
        )
        print(
            f"    HSET fields (bytes per record + dict):                         median {np.median(mapping_us):,.0f} us"
        )
        try:
            await client.ping()
        except (redis.ConnectionError, OSError) as error:
            print(f"    with Redis: skipped, {settings.REDIS_URL} unreachable ({error})")
            await client.aclose()
            return
        fields = result.mapping()
        hset = np.empty(repeats)
        for i in range(repeats):
            start = time.perf_counter()
            await client.hset(GREEKS_LATEST_KEY, mapping=fields)
            hset[i] = time.perf_counter() - start
        print(
            f"    HSET alone, {len(fields)} fields of {len(next(iter(fields.values())))} bytes: "
            f"median {np.median(hset) * 1e6:,.0f} us p99 {np.percentile(hset, 99) * 1e6:,.0f} us"
        )
        total = np.empty(repeats)
        for i in range(repeats):
            start = time.perf_counter()
            await hook(batch)
            total[i] = time.perf_counter() - start
        total_us = total * 1e6
        print(
            f"    whole hook call incl. one HSET of {len(result.mapping())} fields to {settings.REDIS_URL}: "
            f"median {np.median(total_us):,.0f} us p99 {np.percentile(total_us, 99):,.0f} us per frame"
        )
        await client.delete(GREEKS_LATEST_KEY)
        await client.aclose()

    asyncio.run(run())


def _busy_jiffies() -> dict[int, tuple[int, int]]:
    """Per-cpu (busy, total) jiffies from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in fields]
            idle = ticks[3] + ticks[4]
            out[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return out


def pin_to_one_core() -> str:
    """Pin to the allowed cpu that was least busy over the last 0.5 s: the machine is shared."""
    if not hasattr(os, "sched_setaffinity") or not Path("/proc/stat").exists():
        return "not pinned"
    allowed = os.sched_getaffinity(0)
    before = _busy_jiffies()
    time.sleep(0.5)
    after = _busy_jiffies()

    def busy_share(cpu: int) -> float:
        busy, total = (a - b for a, b in zip(after[cpu], before[cpu], strict=True))
        return busy / max(total, 1)

    core = min(allowed, key=busy_share)
    os.sched_setaffinity(0, {core})
    return f"pinned to cpu {core} (busy {busy_share(core):.0%} over the last 0.5 s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300, help="full-chain repeats")
    parser.add_argument("--mibian-sample", type=int, default=200)
    parser.add_argument("--batches", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--frame-repeats", type=int, default=100, help="tick-path frame repeats")
    parser.add_argument("--only-tick-path", action="store_true", help="run section (5) alone")
    args = parser.parse_args()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"numpy {np.__version__}; {pin_to_one_core()}; load average {load}")
    if args.only_tick_path:
        section_tick_path(args.frame_repeats)
        return
    ours_us = section_chain(args.repeats)
    section_throughput(tuple(args.batches), repeats=7)
    section_mibian(args.mibian_sample, ours_us)
    section_iterations()
    section_tick_path(args.frame_repeats)


if __name__ == "__main__":
    main()
