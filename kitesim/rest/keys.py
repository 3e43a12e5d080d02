"""What the REST side keeps on the aiohttp application."""

import asyncio

from aiohttp import web

from kitesim.accounts import SimAccount
from kitesim.orderbook import OrderDesk
from kitesim.rest.ratelimit import RateLimiter
from kitesim.state import SimState

STATE = web.AppKey("kitesim_rest_state", SimState)
DESK = web.AppKey("kitesim_rest_order_desk", OrderDesk)
LIMITER = web.AppKey("kitesim_rest_rate_limiter", RateLimiter)
SHUTTING_DOWN = web.AppKey("kitesim_rest_shutting_down", asyncio.Event)
ACCOUNT = web.RequestKey("kitesim_rest_account", SimAccount)  # whom the Authorization header named
