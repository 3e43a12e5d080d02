"""``python manage.py kitesim``: run the Kite simulator (ticker + REST + /_sim) until interrupted."""

import logging
from argparse import ArgumentParser
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from kitesim.accounts import parse_account_spec
from kitesim.clock import IST
from kitesim.market import PATHS
from kitesim.replay import FrameReplay
from kitesim.server import CLOSE_LINGER_S, build_state, serve
from kitesim.trend import TrendSpec

DEFAULT_TREND = TrendSpec()
# TrendSpec fields, each set by a --trend-... flag whose dest is trend_<field>.
TREND_FIELDS = ("points_per_min", "reverse_minutes", "noise_points")


def _start_epoch(options: dict[str, Any], replay: FrameReplay | None) -> float | None:
    if options["start"]:
        moment = datetime.fromisoformat(options["start"])
        return (moment if moment.tzinfo else moment.replace(tzinfo=IST)).timestamp()
    return replay.start_epoch if replay is not None else None


def _trend(options: dict[str, Any]) -> TrendSpec | None:
    given = {
        field: options[f"trend_{field}"] for field in TREND_FIELDS if options[f"trend_{field}"] is not None
    }
    if options["path"] != "trend":
        if given:
            raise ValueError("--trend-* options need --path trend")
        return None
    return TrendSpec(**given)


class Command(BaseCommand):
    help = "Run kitesim, a local Zerodha Kite Connect v3 (WebSocket ticker and REST) on one port."
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
        parser.add_argument(
            "--account", action="append", default=[], metavar="API_KEY:API_SECRET:ACCESS_TOKEN"
        )
        parser.add_argument("--replay", type=Path, help="play a --record file instead of the market model")
        parser.add_argument("--record", type=Path, help="write every outbound tick frame to this file")
        parser.add_argument("--instruments", type=Path, help="a Kite instruments CSV dump to list")
        parser.add_argument(
            "--path",
            choices=PATHS,
            default="replay",
            help="underlying path: the recorded NIFTY minutes, a seeded GBM or a steady trend",
        )
        parser.add_argument(
            "--trend-points-per-min",
            type=float,
            metavar="POINTS",
            help=f"--path trend: NIFTY's signed drift (default {DEFAULT_TREND.points_per_min})",
        )
        parser.add_argument(
            "--trend-reverse-minutes",
            type=int,
            metavar="K",
            help=f"--path trend: reverse every K minutes, 0 never (default {DEFAULT_TREND.reverse_minutes})",
        )
        parser.add_argument(
            "--trend-noise",
            dest="trend_noise_points",
            type=float,
            metavar="POINTS",
            help=f"--path trend: seeded noise bound (default {DEFAULT_TREND.noise_points})",
        )
        parser.add_argument("--strikes", type=int, default=40, help="strikes each side of the money")
        parser.add_argument(
            "--close-linger",
            type=float,
            default=CLOSE_LINGER_S,
            metavar="SECONDS",
            help="simulated seconds the clock runs on after 15:30 (no ticks) before the next session",
        )
        parser.add_argument("--start", help="simulated start, ISO date-time (IST if no offset)")

    def handle(self, *args: Any, **options: Any) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        try:
            for spec in options["account"]:
                parse_account_spec(spec)
            replay = FrameReplay.from_file(options["replay"]) if options["replay"] else None
            state = build_state(
                seed=options["seed"],
                speed=options["speed"],
                accounts=options["account"] or None,
                start_epoch=_start_epoch(options, replay),
                path=options["path"],
                trend=_trend(options),
                instruments_csv=options["instruments"],
                strikes_each_side=options["strikes"],
                close_linger_s=options["close_linger"],
            )
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        serve(state, options["host"], options["port"], record=options["record"], replay=replay)
