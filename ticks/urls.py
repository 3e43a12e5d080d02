from django.urls import path

from ticks.apis import ChainExpiryListApi, InstrumentListApi

urlpatterns = [
    path("instruments", InstrumentListApi.as_view(), name="instrument-list"),
    path("chains/<str:underlying>/expiries", ChainExpiryListApi.as_view(), name="chain-expiry-list"),
]
