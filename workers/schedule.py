"""The trading day as a schedule on the market clock: which steps are due at ``now``.

Pure: the caller passes ``now`` (the market clock) and the exchange calendar. A step is due once its
IST time of day has passed on the market date, every day for the token rollover and on sessions only
for the rest; the caller runs each due step once per date (``workers.services.trading_day_advance``).
A service started late catches up: at 11:00 the 06:00, 08:30, 09:00 and 09:15 steps are all due.
"""

from dataclasses import dataclass
from datetime import date, datetime, time

from ticks.exchange_calendar import TradingCalendar
from ticks.market_time import IST


@dataclass(frozen=True, slots=True)
class DayStep:
    name: str
    at: time  # IST
    task: str  # the Celery task that performs it (stable names, visible in Flower)
    sessions_only: bool
    replans: bool = False  # a feeds.* task: told the step's name as its reason


DAY_STEPS: tuple[DayStep, ...] = (
    DayStep("token_expiry", time(6, 0), "day.token_expiry", sessions_only=False),
    DayStep("instruments_refresh", time(8, 30), "ticks.instruments_refresh", sessions_only=True),
    DayStep("preopen_plan", time(9, 0), "feeds.preopen_plan", sessions_only=True, replans=True),
    DayStep("live", time(9, 15), "feeds.rebalance", sessions_only=True, replans=True),
    DayStep("expiry_roll", time(15, 30), "feeds.expiry_roll", sessions_only=True, replans=True),
)


def day_steps_due(now: datetime, calendar: TradingCalendar) -> tuple[date, list[DayStep]]:
    """The market date at ``now`` and the steps whose time has come on it, in order."""
    local = now.astimezone(IST)
    session = calendar.is_session(local.date())
    due = [step for step in DAY_STEPS if local.time() >= step.at and (session or not step.sessions_only)]
    return local.date(), due
