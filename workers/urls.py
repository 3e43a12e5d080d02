from django.urls import path

from workers.apis import healthz

urlpatterns = [path("healthz", healthz, name="healthz")]
