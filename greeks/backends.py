"""Choose the IV + Greeks implementation by name (the GREEKS_BACKEND setting feeds this)."""

from typing import Protocol

import numpy.typing as npt

from greeks import engine
from greeks.engine import GreeksResult, Model

BACKENDS = ("numpy", "mibian")
DEFAULT_BACKEND = "numpy"


class ImpliedVolAndGreeks(Protocol):
    def __call__(
        self,
        price: npt.ArrayLike,
        underlying: npt.ArrayLike,
        strike: npt.ArrayLike,
        t_years: npt.ArrayLike,
        rate: npt.ArrayLike,
        is_call: npt.ArrayLike,
        model: Model = "black76",
    ) -> GreeksResult: ...


def implied_vol_and_greeks_for(backend: str = DEFAULT_BACKEND) -> ImpliedVolAndGreeks:
    """The engine for "numpy" (the hot path), mibian looped in Python for "mibian" (cross-checks)."""
    if backend == "numpy":
        return engine.implied_vol_and_greeks
    if backend == "mibian":
        # Imported on demand: mibian pulls in scipy.stats (~0.3 s), which the hot path never needs.
        from greeks import reference

        return reference.implied_vol_and_greeks
    raise ValueError(f"unknown greeks backend {backend!r}; expected one of {', '.join(BACKENDS)}")
