"""The one ``env`` every settings module reads through, strict about malformed values."""

from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

_BOOLEAN_WORDS = frozenset({"true", "false", "1", "0", "yes", "no", "on", "off"})


class StrictEnv(environ.Env):
    """django-environ, except a malformed value stops start-up naming its variable.

    Plain django-environ reads ``DJANGO_DEBUG=maybe`` as False and lets a bad number's
    ValueError escape without the variable's name.
    """

    def get_value(self, var: str, cast: Any = None, default: Any = environ.Env.NOTSET, parse_default: bool = False) -> Any:
        raw = self.ENVIRON.get(self.prefix + var)
        if cast is bool and raw is not None and raw.strip().lower() not in _BOOLEAN_WORDS:
            raise ImproperlyConfigured(f"{var} must be true or false, got {raw!r}")
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{var} is malformed ({raw!r}): {exc}") from exc


env = StrictEnv()
