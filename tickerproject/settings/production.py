"""Production: secrets have no default; a missing one stops start-up naming the variable."""

from tickerproject.settings.base import *  # noqa: F403
from tickerproject.settings.base import database_from_url
from tickerproject.settings.environment import env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS")
DATABASES = {"default": database_from_url(env.str("DATABASE_URL"))}
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
REDIS_URL = env.str("REDIS_URL")
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = False  # collectstatic on release
