import asyncio
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from redis.asyncio import Redis

from ticks.feeds.latest import LatestTickCache
from ticks.feeds.pipeline import FrameProcessor
from ticks.feeds.recording import read_recording


class Command(BaseCommand):
    help = "Run a recording of raw Kite frames through the feed's sinks (latest-tick cache, hooks)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--account", default="replay", help="label for metrics and logs")
        parser.add_argument("--speed", type=float, default=0.0, help="x real time; 0 = as fast as possible")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            frames = list(read_recording(options["file"]))
        except (OSError, ValueError) as error:
            raise CommandError(str(error)) from error
        if options["speed"] < 0:
            raise CommandError("--speed must be >= 0")
        started = time.perf_counter()
        ticks = asyncio.run(self._replay(frames, options["account"], options["speed"]))
        elapsed = time.perf_counter() - started
        self.stdout.write(f"Replayed {len(frames)} frames, {ticks} ticks, in {elapsed:.2f} s")

    async def _replay(self, frames: list[tuple[float, bytes]], account: str, speed: float) -> int:
        redis = Redis.from_url(settings.REDIS_URL)
        counted: list[int] = []

        async def count(batch: Any) -> None:
            counted.append(len(batch.ticks))

        processor = FrameProcessor(account, hooks=[LatestTickCache(redis), count])
        first = frames[0][0] if frames else 0.0
        clock = time.monotonic()
        try:
            for stamp, frame in frames:
                if speed > 0:
                    await asyncio.sleep(max(0.0, (stamp - first) / speed - (time.monotonic() - clock)))
                await processor(frame, stamp)
        finally:
            await redis.aclose()
        return sum(counted)
