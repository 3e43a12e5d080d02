"""Wait until every URL answers HTTP (any status below 500), or fail after a timeout."""

import sys
import time
import urllib.error
import urllib.request

TIMEOUT_S = 60.0


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URLs we build
            return response.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except OSError:
        return False


def main(urls: list[str]) -> int:
    deadline = time.monotonic() + TIMEOUT_S
    for url in urls:
        while not answers(url):
            if time.monotonic() > deadline:
                print(f"{url} did not answer within {TIMEOUT_S:.0f} s", file=sys.stderr)
                return 1
            time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
