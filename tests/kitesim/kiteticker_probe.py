"""Run the official KiteTicker against a root and print every callback as one JSON line.

Twisted's reactor cannot be restarted within a process, so each test scenario runs this script in
its own interpreter: ``python kiteticker_probe.py --root ws://127.0.0.1:PORT --api-key demo
--access-token demotoken --full 256265 --quote 123 --seconds 5``.
"""

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

from kiteconnect import KiteTicker


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, "at": time.monotonic(), **fields}, default=str) + "\n")
    sys.stdout.flush()


def _tokens(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--access-token", required=True)
    parser.add_argument("--ltp", type=_tokens, default=[])
    parser.add_argument("--quote", type=_tokens, default=[])
    parser.add_argument("--full", type=_tokens, default=[])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max-tries", type=int, default=5)
    return parser.parse_args()


def _wire(ticker: KiteTicker, args: argparse.Namespace) -> None:
    def on_connect(ws: KiteTicker, response: Any) -> None:
        emit("connect")
        everything = args.ltp + args.quote + args.full
        if everything:
            ws.subscribe(everything)
        for mode, tokens in (("ltp", args.ltp), ("quote", args.quote), ("full", args.full)):
            if tokens:
                ws.set_mode(mode, tokens)

    def on_message(ws: KiteTicker, payload: bytes, is_binary: bool) -> None:
        if is_binary and len(payload) == 1:
            emit("heartbeat")

    ticker.on_connect = on_connect
    ticker.on_message = on_message
    ticker.on_ticks = lambda ws, ticks: emit("ticks", ticks=ticks)
    ticker.on_error = lambda ws, code, reason: emit("error", code=code, reason=str(reason))
    ticker.on_close = lambda ws, code, reason: emit("close", code=code, reason=str(reason))
    ticker.on_reconnect = lambda ws, attempt: emit("reconnect", attempt=attempt)
    ticker.on_noreconnect = lambda ws: emit("noreconnect")
    ticker.on_order_update = lambda ws, data: emit("order", data=data)


def main() -> None:
    args = _arguments()
    ticker = KiteTicker(args.api_key, args.access_token, root=args.root, reconnect_max_tries=args.max_tries,
                        reconnect_max_delay=5)
    _wire(ticker, args)
    ticker.connect(threaded=True)
    threading.Event().wait(args.seconds)
    emit("done")
    os._exit(0)  # the reactor thread never stops on its own


if __name__ == "__main__":
    main()
