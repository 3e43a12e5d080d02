"""WebSocket routes. The live stream consumer arrives with the dashboard issue."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
