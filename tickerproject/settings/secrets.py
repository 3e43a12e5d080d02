"""Start-up checks of the secrets and addresses the settings read.

Each check returns the value it was given (or its parsed form) and raises ImproperlyConfigured
naming the variable, so a bad value stops every process at settings import instead of at first use.
A message never repeats a secret's value: start-up errors end up in logs.
"""

from urllib.parse import urlsplit

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

# Django's own bar for SECRET_KEY (security.W009): shorter or more repetitive keys fail check --deploy.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5
METRICS_TOKEN_MIN_LENGTH = 32
FLOWER_PASSWORD_MIN_LENGTH = 12
HTTP_SCHEMES = frozenset({"http", "https"})
WEBSOCKET_SCHEMES = frozenset({"ws", "wss"})
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def fernet_keys(name: str, keys: list[str], published: str | None = None) -> list[str]:
    if not keys:
        raise ImproperlyConfigured(f"{name} needs at least one Fernet key")
    for position, key in enumerate(keys, start=1):
        if key == published:
            raise ImproperlyConfigured(f"{name}: key {position} is the published development key")
        try:
            Fernet(key)
        except ValueError:  # binascii.Error (bad base64) is a ValueError too
            raise ImproperlyConfigured(
                f"{name}: key {position} is not a Fernet key (32 url-safe base64-encoded bytes; "
                "make one with cryptography.fernet.Fernet.generate_key())"
            ) from None
    return keys


def secret_key(name: str, value: str, known_insecure: str) -> str:
    if value == known_insecure or value.startswith("django-insecure-"):
        raise ImproperlyConfigured(f"{name} is a published development value; generate a new one")
    if len(value) < SECRET_KEY_MIN_LENGTH or len(set(value)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        raise ImproperlyConfigured(
            f"{name} must be at least {SECRET_KEY_MIN_LENGTH} characters with at least "
            f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} different ones"
        )
    return value


def token(name: str, value: str, min_length: int) -> str:
    if len(value) < min_length:
        raise ImproperlyConfigured(f"{name} must be at least {min_length} characters")
    return value


def basic_auth(name: str, value: str) -> list[str]:
    """``user:password[,user:password…]``, the form Flower's ``--basic-auth`` takes."""
    pairs = [pair for pair in value.split(",") if pair]
    if not pairs:
        raise ImproperlyConfigured(f"{name} must be user:password (comma-separated for several users)")
    for position, pair in enumerate(pairs, start=1):
        user, colon, password = pair.partition(":")
        if not (user and colon):
            raise ImproperlyConfigured(f"{name}: entry {position} is not user:password")
        if len(password) < FLOWER_PASSWORD_MIN_LENGTH:
            raise ImproperlyConfigured(
                f"{name}: the password of entry {position} must be at least {FLOWER_PASSWORD_MIN_LENGTH} characters"
            )
    return pairs


def url(name: str, value: str, schemes: frozenset[str]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.hostname or (parts.scheme == "unix" and parts.path)):
        raise ImproperlyConfigured(f"{name} must be a {' or '.join(sorted(schemes))} URL with a host")
    return value


def database_url(name: str, value: str) -> str:
    # django-environ only warns on an unknown scheme and hands Django an empty ENGINE.
    scheme = urlsplit(value).scheme
    if scheme not in environ.Env.DB_SCHEMES:
        raise ImproperlyConfigured(f"{name} has no known database scheme (e.g. postgres://user@host:5432/db)")
    return value
