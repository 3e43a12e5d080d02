"""How much a stream connection has sent that its client has not taken yet.

A client that stops reading first fills its own receive buffer, then the server's socket buffer,
then uvicorn's transport buffer, and only then does a send block. By then the socket held megabytes
(1.4 MB measured) and a close frame queued behind them could not reach the client before the socket
was dropped. Measuring the backlog (uvicorn's transport buffer plus the bytes the kernel holds
unacknowledged, Linux's SIOCOUTQ) lets the consumer stop sending at a bound of its own, so the socket
always has room for the close frame.

ASGI gives an application no handle on its socket: the meter reaches uvicorn's protocol through its
``send`` method. Under another server there is no meter and sends block as they always did.

The same handle gives a ``DirectSend``: a delta written from the channel layer's callback, at once,
through uvicorn's own WebSocket state machine (its framing and its permessage-deflate context),
without waking the connection's flush task, when that task has nothing in hand (ticks.consumers).
At 1,000 connections the wake-up (an Event, a future, a task step, uvicorn's ``send`` coroutine and
its ``writable`` wait) was about a fifth of the web's time per delta (cProfile, bench/fanout.py).
Only uvicorn's default WebSocket implementation (websockets' sans-I/O protocol) is written to so.
"""

import fcntl
import struct
import termios
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

Backlog = Callable[[], int]
_INT = struct.Struct("i")
_FIN_TEXT = 0x81
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")


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


class DirectSend:
    """Writes text frames to a connection of uvicorn's websockets-sansio protocol synchronously."""

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def ready(self) -> bool:
        """The connection is open and uvicorn's transport is not asking writers to pause (it would
        make its own ``send`` wait): a frame written now goes out in order."""
        protocol = self._protocol
        return (
            protocol.writable.is_set()
            and protocol.handshake_complete
            and not protocol.close_sent
            and not protocol.disconnected
            and protocol.conn.state is State.OPEN
            and not protocol.transport.is_closing()
        )

    def send_text(self, text: str) -> None:
        """What uvicorn's ``send`` does for a ``websocket.send`` text message, after its wait. With no
        extension negotiated a server's text frame is a fixed header and the bytes as they are, so
        the frame is written here, without websockets' Frame object and its two copies of the
        payload; with permessage-deflate, websockets frames it (the compressor is the connection's)."""
        protocol = self._protocol
        data = text.encode()
        if protocol.conn.extensions:
            protocol.conn.send_text(data)
            protocol.transport.write(b"".join(protocol.conn.data_to_send()))
            return
        protocol.transport.writelines((text_frame_header(len(data)), data))


def text_frame_header(length: int) -> bytes:
    """RFC 6455 §5.2: FIN and the text opcode, then the unmasked payload length (a server's frame)."""
    if length < 126:
        return bytes((_FIN_TEXT, length))
    if length < 65536:
        return _HEADER_16.pack(_FIN_TEXT, 126, length)
    return _HEADER_64.pack(_FIN_TEXT, 127, length)


def direct_send_of(send: Callable[[dict[str, Any]], Awaitable[None]]) -> DirectSend | None:
    """A DirectSend for uvicorn's websockets-sansio protocol behind ``send``; None for any other."""
    protocol = getattr(send, "__self__", None)
    return DirectSend(protocol) if isinstance(protocol, WebSocketsSansIOProtocol) else None


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
