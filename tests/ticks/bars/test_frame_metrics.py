"""bars_frame_seconds: one observation per frame folded into the account's aggregator."""

from prometheus_client import REGISTRY

from tests.ticks.bars.test_aggregator import OPTION, PRIMARY, T0, frame
from ticks.bars.hook import BarsHook
from ticks.feeds.pipeline import TickBatch


def _frames_timed(account: str) -> float:
    return REGISTRY.get_sample_value("bars_frame_seconds_count", {"account": account}) or 0.0


async def test_each_frame_is_timed_under_its_account() -> None:
    bars = BarsHook("bars-metrics-probe")
    bars.set_primary(PRIMARY.tolist())
    before = _frames_timed("bars-metrics-probe")

    batches = [
        TickBatch("bars-metrics-probe", frame((OPTION, 100.0 + second, T0 + second, 10, 5, "full")), 0.0)
        for second in (1, 2)
    ]
    for batch in batches:
        await bars(batch)
    await bars.aclose()

    assert _frames_timed("bars-metrics-probe") == before + 2
    assert all("bars" in batch.derived for batch in batches)  # both were folded into forming bars
