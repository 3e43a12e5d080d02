"""Indian market clock facts as pure functions: IST, session hours, access-token expiry."""

from datetime import date, datetime, time, timedelta, timezone

import numpy as np
import numpy.typing as npt

IST = timezone(timedelta(hours=5, minutes=30), "IST")
MARKET_OPEN = time(9, 15)
MARKET_CLOSE = time(15, 30)
TOKEN_ROLLOVER = time(6, 0)
SESSION_OPEN_S = MARKET_OPEN.hour * 3600 + MARKET_OPEN.minute * 60
SESSION_CLOSE_S = MARKET_CLOSE.hour * 3600 + MARKET_CLOSE.minute * 60


def access_token_expiry(issued_at: datetime) -> datetime:
    """Kite access tokens die at the first 06:00 IST after they were issued."""
    issued = issued_at.astimezone(IST)
    expiry = datetime.combine(issued.date(), TOKEN_ROLLOVER, tzinfo=IST)
    if issued >= expiry:
        expiry += timedelta(days=1)
    return expiry


def expiry_close(expiry: date) -> datetime:
    """Options stop trading at 15:30 IST on their expiry date."""
    return datetime.combine(expiry, MARKET_CLOSE, tzinfo=IST)


def in_session(starts: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Which epoch-second instants fall in the regular session, 09:15 to 15:30 IST (weekdays are
    not checked here: no ticks come on a closed day)."""
    of_day = (starts + int(IST.utcoffset(None).total_seconds())) % 86_400
    return (of_day >= SESSION_OPEN_S) & (of_day < SESSION_CLOSE_S)
