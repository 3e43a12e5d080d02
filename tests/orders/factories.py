import secrets
from decimal import Decimal

import factory

from orders.models import Order, TradingPermission
from tests.ticks.factories import BrokerAccountFactory, OptionFactory, UserFactory


class TradingPermissionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TradingPermission

    user = factory.SubFactory(UserFactory)
    account = factory.SubFactory(BrokerAccountFactory)


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    client = factory.SubFactory(UserFactory)
    account = factory.SubFactory(BrokerAccountFactory)
    instrument = factory.SubFactory(
        OptionFactory, strike=factory.Sequence(lambda n: Decimal(20_000 + 50 * n))
    )
    idempotency_key = factory.Sequence(lambda n: f"key-{n}")
    kite_tag = factory.LazyFunction(lambda: secrets.token_hex(10))
    exchange = factory.LazyAttribute(lambda o: o.instrument.exchange)
    tradingsymbol = factory.LazyAttribute(lambda o: o.instrument.tradingsymbol)
    variety = "regular"
    transaction_type = "BUY"
    order_type = "LIMIT"
    product = "NRML"
    quantity = 65
    pending_quantity = 65
    price = Decimal("101.5")
