"""Indian market clock facts as pure functions: IST, session hours, access-token expiry."""

from datetime import date, datetime, time, timedelta, timezone

IST = timezone(timedelta(hours=5, minutes=30), "IST")
MARKET_OPEN = time(9, 15)
MARKET_CLOSE = time(15, 30)
TOKEN_ROLLOVER = time(6, 0)


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
