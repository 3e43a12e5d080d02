from django.urls import path

from orders.apis import OrderDetailApi, OrderListApi, PositionListApi

urlpatterns = [
    path("orders", OrderListApi.as_view(), name="order-list"),
    path("orders/<int:order_id>", OrderDetailApi.as_view(), name="order-detail"),
    path("positions", PositionListApi.as_view(), name="position-list"),
]
