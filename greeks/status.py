"""Per-option outcome of an implied-volatility solve."""

from enum import IntEnum


class GreeksStatus(IntEnum):
    """Why an option has (or lacks) an implied vol; stored per option as a small int."""

    OK = 0
    # At or below discounted intrinsic: no time value left, so no volatility prices it.
    BELOW_INTRINSIC = 1
    # At or above the no-arbitrage bound (call: discounted forward, put: discounted strike).
    ABOVE_MAX = 2
    NONPOSITIVE_PRICE = 3
    # Time to expiry t <= 0.
    EXPIRED = 4
    # NaN or inf anywhere, or a non-positive underlying or strike.
    INVALID_INPUT = 5
    # The safeguarded solver ran out of iterations (or, for the mibian reference, mibian's
    # bisection cannot reach the quote); should never happen for the numpy engine.
    NO_CONVERGENCE = 6
    # Set by the tick path, never by the engine: the option has no last price (never traded, or
    # not ticked yet), or its chain has no forward (no future, no priced ATM pair, no index).
    NO_PRICE = 7
    NO_FORWARD = 8

    @property
    def label(self) -> str:
        """The API's name for the status: "ok", "below_intrinsic", "no_price", ..."""
        return self.name.lower()
