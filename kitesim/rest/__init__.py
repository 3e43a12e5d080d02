"""Kite's REST API, served at the host root of the kitesim server."""

from aiohttp import web

from kitesim.state import SimState


def register_routes(app: web.Application, state: SimState) -> None:
    """Add every REST route to ``app``. (Being written: kitesim REST work.)"""
