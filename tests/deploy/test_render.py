"""deploy/nginx/render.py: every placeholder filled, N upstreams, nothing half-rendered."""

import re
import runpy
import subprocess
from pathlib import Path

import pytest

from tests.deploy.stack import DEPLOY, NGINX
from tests.deploy.tls import Certificates

RENDER = runpy.run_path(str(DEPLOY / "nginx" / "render.py"))
TEMPLATE = (DEPLOY / "nginx" / "ticker.conf").read_text()


def test_the_defaults_and_the_server_name_fill_every_placeholder() -> None:
    config = RENDER["render"](TEMPLATE, {"server_name": "ticker.example.com"})

    assert "{{" not in config
    assert "ssl_certificate /etc/letsencrypt/live/ticker.example.com/fullchain.pem;" in config
    assert "return 301 https://ticker.example.com$request_uri;" in config
    assert re.findall(r"server (\S+) max_fails", config) == ["127.0.0.1:8001", "127.0.0.1:8002"]


def test_n_upstreams_and_a_high_https_port_in_the_redirect() -> None:
    upstreams = ",".join(f"127.0.0.1:{port}" for port in range(8001, 8005))
    config = RENDER["render"](
        TEMPLATE, {"server_name": "t.example", "upstreams": upstreams, "https_listen": "127.0.0.1:8443"}
    )

    assert len(re.findall(r"server 127\.0\.0\.1:800\d max_fails", config)) == 4
    assert "return 301 https://t.example:8443$request_uri;" in config


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "server_name is required"),
        ({"server_name": "t.example", "upstreams": ""}, "upstreams needs at least one"),
        ({"server_name": "t.example", "upstreams": "127.0.0.1"}, "is not host:port"),
    ],
)
def test_a_missing_or_malformed_value_stops_the_rendering(given: dict[str, str], message: str) -> None:
    with pytest.raises(RENDER["RenderError"], match=message):
        RENDER["render"](TEMPLATE, given)


def test_a_placeholder_without_a_value_stops_the_rendering() -> None:
    with pytest.raises(RENDER["RenderError"], match="no value for typo_name"):
        RENDER["render"](TEMPLATE + "# {{ typo_name }}\n", {"server_name": "t.example"})


@pytest.mark.integration
@pytest.mark.proxy
def test_debians_nginx_accepts_the_rendered_config(tmp_path: Path, certificates: Certificates) -> None:
    site = RENDER["render"](
        TEMPLATE,
        {
            "server_name": "t.example",
            "http_listen": "127.0.0.1:1",  # never bound: -t only parses
            "https_listen": "127.0.0.1:2",
            "access_log": str(tmp_path / "access.log"),
            "error_log": str(tmp_path / "error.log"),
            "ssl_certificate": str(certificates.certificate),
            "ssl_certificate_key": str(certificates.key),
        },
    )
    (tmp_path / "ticker.conf").write_text(site)
    main = f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{ include {tmp_path}/ticker.conf; }}\n"
    (tmp_path / "nginx.conf").write_text(main)

    checked = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "e.log")],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )

    assert checked.returncode == 0, checked.stderr
