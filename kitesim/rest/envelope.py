"""Kite's response envelopes: ``{"status": "success", "data": ...}`` and the error envelope."""

from typing import Any

from aiohttp import web

from kitesim.errors import GeneralException, InputException, KiteError

JSON_CONTENT_TYPE = "application/json"
CSV_CONTENT_TYPE = "text/csv"


def success(data: Any) -> web.Response:
    return web.json_response({"status": "success", "data": data}, content_type=JSON_CONTENT_TYPE)


def error_response(error: KiteError) -> web.Response:
    body = {"status": "error", "message": error.message, "error_type": error.error_type, "data": None}
    return web.json_response(body, status=error.status, content_type=JSON_CONTENT_TYPE)


def csv_response(text: str) -> web.Response:
    response = web.Response(text=text, content_type=CSV_CONTENT_TYPE, charset="utf-8")
    response.enable_compression()
    return response


def from_http_exception(exc: web.HTTPException) -> KiteError:
    """aiohttp's own refusals (unknown route, wrong method, oversized body) in Kite's terms."""
    if exc.status == 404:
        return GeneralException("Route not found", status=404)
    if exc.status == 405:
        return InputException("Method not allowed", status=405)
    if 400 <= exc.status < 500:
        return InputException(exc.reason or "Bad request", status=exc.status)
    return GeneralException(exc.reason or "Something went wrong", status=exc.status)
