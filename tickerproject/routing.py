"""WebSocket routes."""

from django.urls import path

from ticks.consumers import StreamConsumer

websocket_urlpatterns = [path("ws/stream/", StreamConsumer.as_asgi())]
