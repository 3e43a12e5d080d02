"""What one fault scenario of `make chaos` reports: one row of the table it prints."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Outcome:
    scenario: str
    recovered: bool
    seconds_to_recover: float | None  # fault injected -> service healthy again; None when it never was
    orders_lost: int | None  # None: the scenario places no orders
    orders_duplicated: int | None
    ticks_lost: int | None  # None: the scenario does not count ticks
    detail: str  # one line: what was observed, so a failed row explains itself
