from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from ticks.models import BrokerAccount, Instrument, WatchSpec


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")


class BrokerAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BrokerAccount

    name = factory.Sequence(lambda n: f"account-{n}")
    api_key = factory.Sequence(lambda n: f"key{n}")
    api_secret = "secret-value"
    access_token = "token-value"


class OptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Instrument

    name = "NIFTY"
    expiry = factory.LazyFunction(lambda: timezone.localdate() + timedelta(days=7))
    strike = Decimal("25000")
    instrument_type = Instrument.Type.CE
    exchange_token = factory.Sequence(lambda n: 10_000 + n)
    instrument_token = factory.LazyAttribute(lambda o: o.exchange_token << 8 | 2)
    tradingsymbol = factory.LazyAttribute(
        lambda o: f"{o.name}{o.expiry:%y%m%d}{int(o.strike)}{o.instrument_type}"
    )
    tick_size = Decimal("0.05")
    lot_size = 65
    segment = "NFO-OPT"
    exchange = "NFO"
    loaded_at = factory.LazyFunction(timezone.now)


class FutureFactory(OptionFactory):
    strike = Decimal("0")
    instrument_type = Instrument.Type.FUT
    segment = "NFO-FUT"
    tradingsymbol = factory.LazyAttribute(lambda o: f"{o.name}{o.expiry:%y%m%d}FUT")


class WatchSpecFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WatchSpec

    underlying = "NIFTY"
