"""A slice of the real Kite dump for the fleet tests: tests/resources/instruments-fno-fleet.csv holds the
NIFTY/BANKNIFTY/SENSEX rows of instruments-slice.csv plus every row of DALBHARAT, IDEA, INFY and
YESBANK in /work/shared/data/kite-instruments-nfo-bfo-2026-08.csv (the August 2026 NFO+BFO dump)."""

from datetime import date
from pathlib import Path

from django.utils import timezone

from ticks.instruments_csv import parse_csv
from ticks.models import Instrument
from ticks.services import instruments_load

FLEET_SLICE = Path(__file__).parents[1] / "resources" / "instruments-fno-fleet.csv"
BEFORE_FIRST_EXPIRY = date(2026, 8, 17)
MARKET_CLOCK_BEFORE_FIRST_EXPIRY = "2026-08-17T10:00:00+05:30"
NIFTY_50, SENSEX_INDEX = 256265, 265  # NSE/BSE INDICES tokens (not in the NFO/BFO dump)


def fleet_slice_load() -> None:
    """The slice through the project's loader, plus the NIFTY 50 and SENSEX index rows."""
    parsed = parse_csv(FLEET_SLICE.read_text(encoding="utf-8"))
    instruments_load(rows=parsed.rows, errors=parsed.errors)
    for token, symbol, exchange in ((NIFTY_50, "NIFTY 50", "NSE"), (SENSEX_INDEX, "SENSEX", "BSE")):
        Instrument.objects.create(
            instrument_token=token,
            exchange_token=token >> 8,
            tradingsymbol=symbol,
            name=symbol,
            instrument_type=Instrument.Type.EQ,
            segment="INDICES",
            exchange=exchange,
            loaded_at=timezone.now(),
        )
