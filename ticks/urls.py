from django.urls import path

from greeks.apis import ChainApi, ChainHistoryApi, OptionGreeksHistoryApi
from ticks.apis import (
    ChainExpiryListApi,
    DashboardPreferencesApi,
    FeedCapacityApi,
    InstrumentListApi,
    LatestTickListApi,
    StreamTicketApi,
)
from ticks.bars.apis import BarListApi
from workers.apis import FeedListApi, FeedPlanApi

urlpatterns = [
    path("instruments", InstrumentListApi.as_view(), name="instrument-list"),
    path("chains/<str:underlying>/expiries", ChainExpiryListApi.as_view(), name="chain-expiry-list"),
    # After ".../expiries", which would otherwise read as an expiry named "expiries".
    path("chains/<str:underlying>/<str:expiry>", ChainApi.as_view(), name="chain-detail"),
    path("chains/<str:underlying>/<str:expiry>/history", ChainHistoryApi.as_view(), name="chain-history"),
    path("bars", BarListApi.as_view(), name="bar-list"),
    path("greeks/history", OptionGreeksHistoryApi.as_view(), name="greeks-history"),
    path("ticks/latest", LatestTickListApi.as_view(), name="tick-latest-list"),
    path("feeds", FeedListApi.as_view(), name="feed-list"),
    path("feeds/capacity", FeedCapacityApi.as_view(), name="feed-capacity"),
    path("feeds/plan", FeedPlanApi.as_view(), name="feed-plan"),
    path("dashboard/preferences", DashboardPreferencesApi.as_view(), name="dashboard-preferences"),
    path("stream/tickets", StreamTicketApi.as_view(), name="stream-ticket"),
]
