"""bench/fanout.py --proxy: two web processes behind Debian's nginx, as deploy/ runs them.

Each web is one uvicorn process (deploy/Procfile's web line: no --workers, proxy headers from
127.0.0.1) in a process group of its own on its own port; nginx runs the site config rendered by
deploy/nginx/render.py (the integration tests' way, tests/deploy/stack.py), with TLS from a throwaway
certificate authority, in front of both. Clients connect to nginx over wss and are spread by it; both
webs are fed by the one Redis pub/sub channel layer. nginx's access log names the upstream of every
WebSocket when it closes, which gives each web's share of the connections.
"""

import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path

from bench.processes import Process, answers
from tests.deploy.stack import Nginx
from tests.deploy.tls import certificates_issue

SERVER_NAME = "ticker.bench"


class ProxiedWebs:
    """``ports[0:2]`` for the webs, ``ports[2:4]`` for nginx's HTTP and HTTPS listeners."""

    def __init__(
        self, workdir: Path, env: dict[str, str], ports: list[int], application: str, web_args: list[str]
    ) -> None:
        self.workdir = workdir / "proxy"
        self.workdir.mkdir(exist_ok=True)
        self.web_ports = ports[:2]
        self.webs: list[Process] = []
        for index, port in enumerate(self.web_ports, 1):
            command = [sys.executable, "-m", "uvicorn", application, "--host", "127.0.0.1"]
            command += ["--port", str(port), "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"]
            command += ["--ws-max-size", "65536", "--log-level", "warning", *web_args]
            healthz = f"http://127.0.0.1:{port}/healthz"
            self.webs.append(Process(f"web-{index}", command, partial(answers, healthz), env, workdir))
        self.certificates = certificates_issue(self.workdir, SERVER_NAME)
        # Room for every client twice over: a proxied WebSocket holds two connections.
        self.nginx = Nginx(
            self.workdir,
            self.certificates,
            self.web_ports,
            worker_connections=8192,
            ports=(ports[2], ports[3]),
        )
        self.access_log = self.nginx.access_log

    @property
    def url(self) -> str:
        return f"wss://{SERVER_NAME}:{self.nginx.https_port}/ws/stream/"

    @property
    def nginx_pid(self) -> int:
        return self.nginx.process.pid

    def client_options(self) -> list[str]:
        """bench/fanout_clients.py's options to reach the proxy (TCP to 127.0.0.1, TLS for its name)."""
        return ["--ca", str(self.certificates.ca), "--connect-port", str(self.nginx.https_port)]

    def connections_by_web(self) -> Counter[int]:
        """WebSockets each web served, by port, from nginx's access log (a line when one closes)."""
        split: Counter[int] = Counter()
        if self.access_log.exists():
            for line in self.access_log.read_text().splitlines():
                if "/ws/stream/" in line and "upstream=" in line:
                    split[int(line.split("upstream=", 1)[1].split()[0].rsplit(":", 1)[1])] += 1
        return split

    def access_log_rotate(self) -> None:
        """Start the next round's count: the log is moved aside and nginx reopens it."""
        if self.access_log.exists():
            self.access_log.rename(self.workdir / f"access-{time.monotonic_ns()}.log")
        self.nginx.logs_reopen()
        time.sleep(0.5)

    def stop(self) -> None:
        self.nginx.stop()
        for web in self.webs:
            web.kill()
