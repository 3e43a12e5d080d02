"""Render deploy/nginx/ticker.conf: ``python deploy/nginx/render.py server_name=ticker.example.com``.

Arguments are ``name=value``; anything not given takes the default below. ``upstreams`` is a comma
list of the web processes' host:port (honcho -p 8001 -c web=2 puts web.1 on 8001, web.2 on 8002).
The config goes to stdout. A placeholder left without a value stops the rendering, so a half-filled
config never reaches nginx. The integration tests render through this same script.
"""

import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).with_name("ticker.conf")
PLACEHOLDER = re.compile(r"\{\{ (\w+) \}\}")
DEFAULTS = {
    "upstreams": "127.0.0.1:8001,127.0.0.1:8002",
    "http_listen": "80",
    "https_listen": "443",
    "access_log": "/var/log/nginx/ticker.access.log",
    "error_log": "/var/log/nginx/ticker.error.log",
}


class RenderError(ValueError):
    """A value is missing or malformed: the message names it."""


def values_complete(given: dict[str, str]) -> dict[str, str]:
    """The given values over the defaults, with the ones derived from server_name and the upstreams."""
    values = {**DEFAULTS, **given}
    if not values.get("server_name"):
        raise RenderError("server_name is required (the public host name, e.g. ticker.example.com)")
    name = values["server_name"]
    values.setdefault("ssl_certificate", f"/etc/letsencrypt/live/{name}/fullchain.pem")
    values.setdefault("ssl_certificate_key", f"/etc/letsencrypt/live/{name}/privkey.pem")
    # The public origin the redirect sends a browser to: no port when it is HTTPS's own.
    port = values["https_listen"].rsplit(":", 1)[-1]
    values.setdefault("https_origin", f"https://{name}" if port == "443" else f"https://{name}:{port}")
    values["upstream_servers"] = upstream_servers(values["upstreams"])
    return values


def upstream_servers(upstreams: str) -> str:
    addresses = [address.strip() for address in upstreams.split(",") if address.strip()]
    if not addresses:
        raise RenderError("upstreams needs at least one host:port")
    for address in addresses:
        if not re.fullmatch(r"[\w.\-\[\]:]+:\d+", address):
            raise RenderError(f"upstreams: {address!r} is not host:port")
    # max_fails/fail_timeout: a dead process is skipped for 5 s after one failed connection.
    return "\n".join(f"    server {address} max_fails=1 fail_timeout=5s;" for address in addresses)


def render(template: str, given: dict[str, str]) -> str:
    values = values_complete(given)
    missing = sorted(set(PLACEHOLDER.findall(template)) - values.keys())
    if missing:
        raise RenderError(f"no value for {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: values[match[1]], template)


def arguments_parse(arguments: list[str]) -> dict[str, str]:
    given = {}
    for argument in arguments:
        name, equals, value = argument.partition("=")
        if not equals:
            raise RenderError(f"{argument!r} is not name=value")
        given[name] = value
    return given


def main(arguments: list[str]) -> int:
    try:
        config = render(TEMPLATE.read_text(), arguments_parse(arguments))
    except RenderError as error:
        sys.stderr.write(f"render.py: {error}\n")
        return 2
    sys.stdout.write(config)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
