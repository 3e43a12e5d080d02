import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tickerproject.settings.base")
django_wsgi_app = get_wsgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from tickerproject.routing import websocket_urlpatterns  # noqa: E402
from workers.process_memory import rss_reporting_start  # noqa: E402


class BrowserOriginValidator(OriginValidator):
    """Browsers always send Origin, so a cross-site page riding a session cookie is refused; scripts
    send none and must authenticate with an API key (the consumer refuses them otherwise)."""

    def valid_origin(self, parsed_origin: object) -> bool:
        return parsed_origin is None or self.validate_origin(parsed_origin)


# HTTP goes to Django's WSGI handler on a fixed pool of reused threads: Django's ASGI handler runs
# every request in a new thread, rebuilding per-thread state (the database connection, Celery's
# result backend) each time and leaving a persistent connection behind with every dead thread.
application = ProtocolTypeRouter(
    {
        "http": WSGIMiddleware(django_wsgi_app, workers=settings.WEB_HTTP_THREADS),
        "websocket": BrowserOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), settings.ALLOWED_HOSTS
        ),
    }
)

rss_reporting_start("web")  # each uvicorn worker process imports this module once

# bench/fanout.py, 500 WebSockets: gen-2 collections took 65-108 ms (the p99 tail), 15-31 ms with startup objects frozen.
gc.freeze()
