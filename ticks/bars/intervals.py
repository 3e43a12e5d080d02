"""Kite's candle intervals: names, lengths, and the longest span one historical request may cover."""

from typing import Final

# Kite's interval names -> minutes (0: a day bar).
INTERVAL_MINUTES: Final = {
    "minute": 1,
    "3minute": 3,
    "5minute": 5,
    "10minute": 10,
    "15minute": 15,
    "30minute": 30,
    "60minute": 60,
    "day": 0,
}
# The longest span one historical request may cover, per interval (Kite staff, forum 3105).
KITE_MAX_SPAN_DAYS: Final = {
    "minute": 60,
    "3minute": 100,
    "5minute": 100,
    "10minute": 100,
    "15minute": 200,
    "30minute": 200,
    "60minute": 400,
    "day": 2000,
}
MINUTE: Final = "minute"
DAY: Final = "day"
