"""deploy/ for real: nginx with the rendered ticker.conf in front of the Procfile's web processes.

Every process runs from deploy/ exactly as written (the Procfile's lines through sh, the template
through deploy/nginx/render.py) under the production settings; only ports, paths and the test's
database and Redis differ. Each process writes stdout and stderr to its own file in ``logs``.
"""

import contextlib
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet
from django.conf import settings
from requests.adapters import HTTPAdapter

from tests.asgi_server import free_port
from tests.database import database_url
from tests.deploy.tls import Certificates

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
NGINX = "/usr/sbin/nginx"
SERVER_NAME = "ticker.test"
START_TIMEOUT_S = 60.0
# Variables of the shell or the test run that would change what production reads.
_INHERITED = ("DJANGO_", "DATABASE_URL", "FIELD_", "REDIS_URL", "CELERY_", "KITE_", "METRICS_", "FLOWER_")
_INHERITED += ("MARKET_", "TEST_", "LOG_LEVEL", "PORT")


def production_env(**overrides: str) -> dict[str, str]:
    """A production environment of fresh secrets, on this test run's database and Redis."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith(_INHERITED)}
    return {
        **clean,
        "PATH": f"{Path(sys.executable).parent}:{clean.get('PATH', '/usr/bin:/bin')}",
        "DJANGO_SETTINGS_MODULE": "tickerproject.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_ALLOWED_HOSTS": SERVER_NAME,
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "FLOWER_BASIC_AUTH": f"ops:{secrets.token_urlsafe(16)}",
        "KITE_ROOT": "http://127.0.0.1:1",  # nothing answers: no test here reaches Kite unless it says so
        **overrides,
    }


def procfile_command(name: str) -> str:
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        process, colon, command = line.partition(":")
        if colon and process == name:
            return command.strip()
    raise AssertionError(f"deploy/Procfile has no {name} line")


class ProcfileProcess:
    """One line of deploy/Procfile run by sh, as honcho runs it, in its own process group."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", procfile_command(name)],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def assert_running(self) -> None:
        assert self.process.poll() is None, f"{self.log.name} exited:\n{self.log.read_text()}"

    def stop(self) -> None:
        """SIGTERM (uvicorn and Celery shut down and flush their logs), then SIGKILL whatever is left."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def web_start(env: dict[str, str], port: int, log: Path) -> ProcfileProcess:
    return ProcfileProcess("web", {**env, "PORT": str(port)}, log)


def web_wait_ready(web: ProcfileProcess, port: int) -> None:
    """Its /healthz answers on its own loopback port (the production settings exempt it from HTTPS)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        web.assert_running()
        with contextlib.suppress(requests.ConnectionError):
            probe = requests.get(f"http://127.0.0.1:{port}/healthz", headers={"Host": SERVER_NAME}, timeout=2)
            if probe.status_code == 200:
                return
        assert time.monotonic() < deadline, f"web did not start:\n{web.log.read_text()}"
        time.sleep(0.2)


def worker_wait_ready(worker: ProcfileProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while "ready." not in worker.log.read_text():
        worker.assert_running()
        assert time.monotonic() < deadline, f"worker not ready:\n{worker.log.read_text()}"
        time.sleep(0.2)


def nginx_config_render(**values: str) -> str:
    arguments = [f"{name}={value}" for name, value in values.items()]
    rendered = subprocess.run(
        [sys.executable, str(DEPLOY / "nginx" / "render.py"), *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert rendered.returncode == 0, rendered.stderr
    return rendered.stdout


class Nginx:
    """Debian's nginx on loopback high ports with a main config of its own (prefix, pid, logs, temp)."""

    def __init__(
        self,
        directory: Path,
        certificates: Certificates,
        upstream_ports: list[int],
        *,
        worker_connections: int = 256,
        ports: tuple[int, int] | None = None,
    ) -> None:
        """``worker_connections``: a proxied WebSocket holds two (bench/fanout.py --proxy raises it);
        ``ports``: HTTP and HTTPS listeners, else free ones."""
        self.directory = directory
        self.worker_connections = worker_connections
        self.http_port, self.https_port = ports or (free_port(), free_port())
        self.access_log, self.error_log = directory / "access.log", directory / "error.log"
        site = nginx_config_render(
            server_name=certificates.server_name,
            upstreams=",".join(f"127.0.0.1:{port}" for port in upstream_ports),
            http_listen=f"127.0.0.1:{self.http_port}",
            https_listen=f"127.0.0.1:{self.https_port}",
            access_log=str(self.access_log),
            error_log=str(self.error_log),
            ssl_certificate=str(certificates.certificate),
            ssl_certificate_key=str(certificates.key),
        )
        (directory / "ticker.conf").write_text(site)
        (directory / "nginx.conf").write_text(self._main_config())
        self.process = subprocess.Popen(
            [NGINX, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", str(self.error_log)],
            stdout=(directory / "nginx.out").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a bench reads the group's CPU
        )
        self._wait_listening()

    def _main_config(self) -> str:
        # Workers run as root when the test does: the temporary paths are inside a private tmp directory.
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"    {kind}_temp_path {self.directory / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return (
            f"{user}worker_processes 1;\nworker_rlimit_nofile {4 * self.worker_connections};\ndaemon off;\n"
            f"pid {self.directory / 'nginx.pid'};\nerror_log {self.error_log} warn;\n"
            f"events {{ worker_connections {self.worker_connections}; }}\n"
            f"http {{\n{temp}\n    include {self.directory / 'ticker.conf'};\n}}\n"
        )

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self.process.poll() is None, (self.directory / "nginx.out").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.https_port), 1):
                return
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.1)

    def logs_reopen(self) -> None:
        """After the access log was moved aside: nginx writes a new one (SIGUSR1)."""
        self.process.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        """SIGQUIT: graceful, so every access line is written before the test reads the log."""
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


class ServerNameAdapter(HTTPAdapter):
    """Connects to 127.0.0.1 but sends and verifies the server's name (SNI), as a browser would."""

    def __init__(self, server_name: str, context: ssl.SSLContext) -> None:
        self._server_name, self._context = server_name, context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(server_hostname=self._server_name, ssl_context=self._context)
        super().init_poolmanager(*args, **kwargs)


class Browser(requests.Session):
    """HTTPS to the proxy as https://ticker.test:<port>, cookies kept; redirects are not followed."""

    def __init__(self, certificates: Certificates, https_port: int) -> None:
        super().__init__()
        self.trust_env = False  # no proxy from the environment
        self.origin = f"https://{certificates.server_name}:{https_port}"
        self.base = f"https://127.0.0.1:{https_port}"
        self.headers["Host"] = f"{certificates.server_name}:{https_port}"
        self.mount("https://", ServerNameAdapter(certificates.server_name, certificates.client_context()))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 10)
        return super().request(method, f"{self.base}{url}", *args, **kwargs)

    def admin_login(self, username: str, password: str) -> requests.Response:
        """The admin's login form as a browser posts it (after a GET of the page set the CSRF cookie):
        the token from the cookie, the page's origin for Django's CSRF origin check."""
        return self.post(
            "/admin/login/?next=/admin/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": self.cookies["csrftoken"],
            },
            headers={"Origin": self.origin},
        )


class ProxyStack:
    """nginx + two web processes from deploy/, started in parallel; ``logs`` holds every process's output."""

    def __init__(self, directory: Path, certificates: Certificates, env: dict[str, str]) -> None:
        self.directory, self.certificates = directory, certificates
        self.web_ports = [free_port(), free_port()]
        self.webs = [
            web_start(env, port, directory / f"web-{index}.log")
            for index, port in enumerate(self.web_ports, 1)
        ]
        for web, port in zip(self.webs, self.web_ports, strict=True):
            web_wait_ready(web, port)
        self.nginx = Nginx(directory, certificates, self.web_ports)

    def browser(self) -> Browser:
        return Browser(self.certificates, self.nginx.https_port)

    @property
    def ws_url(self) -> str:
        return f"wss://{self.certificates.server_name}:{self.nginx.https_port}/ws/stream/"

    def ws_options(self) -> dict[str, Any]:
        """websockets.connect options: TCP to 127.0.0.1, TLS for the server's name, no proxy."""
        return {
            "host": "127.0.0.1",
            "port": self.nginx.https_port,
            "ssl": self.certificates.client_context(),
            "server_hostname": self.certificates.server_name,
            "proxy": None,
        }

    def stop(self) -> None:
        self.nginx.stop()
        for web in self.webs:
            web.stop()

    def logs(self) -> Iterator[Path]:
        yield from sorted(self.directory.glob("*.log"))
        yield self.directory / "nginx.out"
