"""The exchange trading calendar: which days are NSE/BSE sessions (pure data; no Django, no clock).

Holidays come from exchange-calendars' ``XBOM`` (BSE; NSE's equity and F&O holidays are the same days)
plus a small CSV that operators extend without a release (``ticks/data/market_holidays.csv``, or the
file named by ``MARKET_HOLIDAYS_FILE``). The library records holidays only up to a last year
(2026 in 4.13.2) and raises past it; this calendar never raises there: past ``known_until`` every
weekday not listed in the CSV is taken as a session, a warning is logged once per process per year
and ``market_calendar_beyond_known_total`` counts the lookups that relied on that guess.

Weekends are never sessions: special Saturday sessions (2024-01-20, Budget day 2025-02-01) and
Muhurat trading on Diwali evening are not modelled, so nothing subscribes and orders need AMO then.
"""

import functools
import logging
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
from prometheus_client import Counter

from ticks.market_time import IST, MARKET_CLOSE, MARKET_OPEN

log = logging.getLogger(__name__)

HOLIDAYS_FILE_ENV = "MARKET_HOLIDAYS_FILE"
DEFAULT_HOLIDAYS_FILE = Path(__file__).parent / "data" / "market_holidays.csv"
HOLIDAYS_HEADER = ("date", "name")
_COVERS = re.compile(r"#\s*covers:\s*(?P<rest>.*)")
_YEAR = re.compile(r"\d{4}")

BEYOND_KNOWN = Counter(
    "market_calendar_beyond_known_total",
    "Calendar lookups that took a weekday past the last year with a holiday list to be a session",
)
_warned_years: set[int] = set()


class HolidayFileError(ValueError):
    """A malformed line in the extra holidays file, named by file and line number."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line


@dataclass(frozen=True, slots=True)
class TradingCalendar:
    holidays: frozenset[date]  # weekday closures; weekends are closed anyway
    known_until: date  # the last day whose holidays are known; weekdays after it are assumed sessions
    _busdays: np.busdaycalendar = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_busdays", np.busdaycalendar(holidays=sorted(self.holidays)))

    def is_known(self, day: date) -> bool:
        return day <= self.known_until

    def is_session(self, day: date) -> bool:
        session = self._is_session(day)
        if session:
            self._note_assumed(day)
        return session

    def next_session(self, day: date) -> date:
        """``day`` itself when it is a session, else the first session after it."""
        while not self._is_session(day):
            day += timedelta(days=1)
        self._note_assumed(day)
        return day

    def previous_session(self, day: date) -> date:
        """The last session strictly before ``day``."""
        found = self._session_before(day)
        self._note_assumed(found)
        return found

    def sessions_between(self, first: date, last: date) -> int:
        """Sessions in [first, last) (numpy.busday_count's convention: negative when last < first)."""
        low, high = sorted((first, last))
        if high > low and (latest := self._session_before(high)) >= low:
            self._note_assumed(latest)
        return int(np.busday_count(first, last, busdaycal=self._busdays))

    def session_open(self, moment: datetime) -> bool:
        """The regular session: 09:15 <= IST time < 15:30 on a session day (``moment`` must be aware)."""
        local = moment.astimezone(IST)
        return MARKET_OPEN <= local.time() < MARKET_CLOSE and self.is_session(local.date())

    def _is_session(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def _session_before(self, day: date) -> date:
        day -= timedelta(days=1)
        while not self._is_session(day):
            day -= timedelta(days=1)
        return day

    def _note_assumed(self, session: date) -> None:
        """Count (and warn once a year) when an answer takes a session past ``known_until`` for granted."""
        if session <= self.known_until:
            return
        BEYOND_KNOWN.inc()
        year = session.year
        if year not in _warned_years:
            _warned_years.add(year)
            log.warning(
                "market calendar: no holiday list for %d (holidays known until %s): weekdays are taken as"
                " sessions. Add NSE's %d holidays and a '# covers: %d' line to %s (or $%s) and restart.",
                year,
                self.known_until,
                year,
                year,
                DEFAULT_HOLIDAYS_FILE,
                HOLIDAYS_FILE_ENV,
            )


@dataclass(frozen=True, slots=True)
class ExtraHolidays:
    holidays: frozenset[date]
    covers: frozenset[int]  # years whose full holiday list the file holds


@functools.cache
def xbom_holidays() -> tuple[frozenset[date], date]:
    """exchange-calendars' XBOM weekday closures over its whole range, and the range's last day.

    The range is passed explicitly: the library's default window moves with the host's date.
    """
    from exchange_calendars.exchange_calendar_xbom import XBOMExchangeCalendar  # 0.35 s with pandas
    from pandas.errors import Pandas4Warning

    first, last = XBOMExchangeCalendar.bound_min(), XBOMExchangeCalendar.bound_max()
    with warnings.catch_warnings():
        # 4.13.2 reads Series.values of tz-aware columns: deprecated by pandas 3.1, still correct.
        warnings.filterwarnings("ignore", category=Pandas4Warning)
        sessions = {ts.date() for ts in XBOMExchangeCalendar(start=first, end=last).sessions}
    days = (first.date() + timedelta(days=k) for k in range((last - first).days + 1))
    return frozenset(d for d in days if d.weekday() < 5 and d not in sessions), last.date()


def _parse_covers(path: Path, number: int, rest: str) -> set[int]:
    years = rest.replace(",", " ").split()
    if not years or not all(_YEAR.fullmatch(y) for y in years):
        raise HolidayFileError(path, number, f"'# covers:' needs four-digit years, got {rest!r}")
    return {int(y) for y in years}


def _parse_row(path: Path, number: int, line: str) -> date:
    cells = [c.strip() for c in line.split(",", 1)]
    if len(cells) != 2 or not cells[1]:
        raise HolidayFileError(path, number, f"expected 'YYYY-MM-DD,name', got {line!r}")
    try:
        return date.fromisoformat(cells[0])
    except ValueError:
        raise HolidayFileError(path, number, f"not a YYYY-MM-DD date: {cells[0]!r}") from None


def read_extra_holidays(path: Path) -> ExtraHolidays:
    """``date,name`` rows after that header; ``#`` comments; ``# covers: 2027`` marks a complete year."""
    holidays: set[date] = set()
    covers: set[int] = set()
    header_seen = False
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if (directive := _COVERS.fullmatch(line)) is not None:
            covers |= _parse_covers(path, number, directive["rest"])
        elif not line or line.startswith("#"):
            continue
        elif not header_seen:
            if tuple(c.strip() for c in line.split(",")) != HOLIDAYS_HEADER:
                raise HolidayFileError(path, number, f"expected the header 'date,name', got {line!r}")
            header_seen = True
        else:
            holidays.add(_parse_row(path, number, line))
    return ExtraHolidays(frozenset(holidays), frozenset(covers))


def known_until(library_end: date, covers: frozenset[int]) -> date:
    """The library's last day, extended through each following year the file covers without a gap."""
    year = library_end.year
    while year + 1 in covers:
        year += 1
    return library_end if year == library_end.year else date(year, 12, 31)


def load_calendar(extra: Path | None) -> TradingCalendar:
    """XBOM's holidays plus the extra file's (None: the library's alone)."""
    started = time.perf_counter()
    holidays, library_end = xbom_holidays()
    added = read_extra_holidays(extra) if extra is not None else ExtraHolidays(frozenset(), frozenset())
    calendar = TradingCalendar(holidays | added.holidays, known_until(library_end, added.covers))
    log.info(
        "market calendar: XBOM to %s + %d holidays from %s, known until %s (loaded in %.2f s)",
        library_end,
        len(added.holidays),
        extra,
        calendar.known_until,
        time.perf_counter() - started,
    )
    return calendar


@functools.cache
def market_calendar() -> TradingCalendar:
    """The process's calendar, loaded once: XBOM plus ``$MARKET_HOLIDAYS_FILE`` or the default file."""
    return load_calendar(Path(os.environ.get(HOLIDAYS_FILE_ENV) or DEFAULT_HOLIDAYS_FILE))
