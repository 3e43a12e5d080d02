from django.urls import path

from ticks.apis import ChainExpiryListApi, InstrumentListApi, LatestTickListApi
from workers.apis import FeedListApi

urlpatterns = [
    path("instruments", InstrumentListApi.as_view(), name="instrument-list"),
    path("chains/<str:underlying>/expiries", ChainExpiryListApi.as_view(), name="chain-expiry-list"),
    path("ticks/latest", LatestTickListApi.as_view(), name="tick-latest-list"),
    path("feeds", FeedListApi.as_view(), name="feed-list"),
]
