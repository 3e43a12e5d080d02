from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ticks.views import dashboard, kite_callback

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("ticks.urls")),
    path("api/v1/", include("orders.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("workers.urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("kite/callback", kite_callback, name="kite-callback"),  # the redirect URL registered with Kite
    path("", dashboard, name="dashboard"),
]
