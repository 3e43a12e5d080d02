"""How much a stream connection has sent that its client has not taken yet.

A client that stops reading first fills its own receive buffer, then the server's socket buffer,
then uvicorn's transport buffer, and only then does a send block. By then the socket held megabytes
(1.4 MB measured) and a close frame queued behind them could not reach the client before the socket
was dropped. Measuring the backlog (uvicorn's transport buffer plus the bytes the kernel holds
unacknowledged, Linux's SIOCOUTQ) lets the consumer stop sending at a bound of its own, so the socket
always has room for the close frame.

ASGI gives an application no handle on its socket: the meter reaches uvicorn's protocol through its
``send`` method. Under another server there is no meter and sends block as they always did.
"""

import fcntl
import struct
import termios
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

Backlog = Callable[[], int]
_INT = struct.Struct("i")


class Transport(Protocol):
    """What the stream uses of a transport: asyncio's, or uvloop's (uvicorn runs on uvloop when it is
    installed, and uvloop's transports are not asyncio.WriteTransport instances)."""

    def get_write_buffer_size(self) -> int: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...
    def is_closing(self) -> bool: ...
    def abort(self) -> None: ...


def transport_of(send: Callable[[dict[str, Any]], Awaitable[None]]) -> Transport | None:
    """The transport behind uvicorn's ``send`` (a bound method of its WebSocket protocol)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    needed = ("get_write_buffer_size", "get_extra_info", "is_closing", "abort")
    return transport if all(callable(getattr(transport, name, None)) for name in needed) else None


def backlog_meter(transport: Transport) -> Backlog:
    """A function giving the bytes written to ``transport`` that the peer has not acknowledged."""
    sock = transport.get_extra_info("socket")
    fd = sock.fileno() if sock is not None else -1

    def backlog() -> int:
        if transport.is_closing():  # the descriptor may already belong to another socket
            return 0
        return transport.get_write_buffer_size() + _unacknowledged(fd)

    return backlog


def _unacknowledged(fd: int) -> int:
    """Bytes in the socket's send queue (sent and unacknowledged, or unsent); 0 where unsupported."""
    if fd < 0:
        return 0
    try:
        return _INT.unpack(fcntl.ioctl(fd, termios.TIOCOUTQ, bytes(_INT.size)))[0]
    except OSError:  # not a socket with a send queue to report, or not Linux
        return 0
