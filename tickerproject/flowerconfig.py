"""Flower's configuration file (Procfile: ``flower --conf=tickerproject/flowerconfig.py``).

Flower executes this file and keeps the names matching its options. Task arguments and results are
on its pages, so it never starts without basic authentication, and it listens on loopback only:
Flower 2.2 has no allowed-hosts option, so the Host check is the proxy's (nginx's ``server_name``),
and a DNS-rebinding page that reaches the loopback port still meets the password.
"""

import os

from tickerproject.settings import secrets

address = "127.0.0.1"
basic_auth = secrets.basic_auth("FLOWER_BASIC_AUTH", os.environ.get("FLOWER_BASIC_AUTH", ""))
