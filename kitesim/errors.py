"""Kite's exception family: each class carries the wire ``error_type`` and its usual HTTP status.

The order engine raises these (it is pure, no HTTP); the REST edge turns them into Kite's error
envelope ``{"status": "error", "message": ..., "error_type": ..., "data": null}``.
"""


class KiteError(Exception):
    error_type = "GeneralException"
    status = 500

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InputException(KiteError):
    error_type = "InputException"
    status = 400


class TokenException(KiteError):
    error_type = "TokenException"
    status = 403


class PermissionException(KiteError):
    error_type = "PermissionException"
    status = 403


class OrderException(KiteError):
    error_type = "OrderException"
    status = 400


class NetworkException(KiteError):
    error_type = "NetworkException"
    status = 502


class DataException(KiteError):
    error_type = "DataException"
    status = 502


class GeneralException(KiteError):
    error_type = "GeneralException"
    status = 500
