import pytest
from django.test import Client

from orders.models import Order, OrderEvent
from orders.states import OrderStatus
from tests.orders.factories import OrderFactory
from tests.ticks.factories import BrokerAccountFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_the_order_list_filters_and_never_shows_account_secrets(admin_client_: Client) -> None:
    account = BrokerAccountFactory(
        api_key="kk-visible?", api_secret="ss-visible?", access_token="tt-visible?"
    )
    pending = OrderFactory(account=account, status=OrderStatus.PENDING)
    complete = OrderFactory(account=account, status=OrderStatus.COMPLETE, broker_order_id="260817000000042")

    listing = admin_client_.get("/admin/orders/order/?status__exact=COMPLETE").content.decode()
    detail = admin_client_.get(f"/admin/orders/order/{pending.pk}/change/").content.decode()

    assert "260817000000042" in listing and f"/admin/orders/order/{pending.pk}/change/" not in listing
    assert admin_client_.get(f"/admin/orders/order/?q={complete.broker_order_id}").status_code == 200
    for secret in ("kk-visible?", "ss-visible?", "tt-visible?"):
        assert secret not in listing and secret not in detail


def test_the_order_page_shows_its_history(admin_client_: Client) -> None:
    order = OrderFactory()
    OrderEvent.objects.create(order=order, source="api", status_to="PENDING", message="accepted")
    OrderEvent.objects.create(order=order, source="worker", status_from="PENDING", status_to="SUBMITTING",
                              message="claimed")  # fmt: skip

    page = admin_client_.get(f"/admin/orders/order/{order.pk}/change/").content.decode()

    assert "accepted" in page and "claimed" in page and "Submission worker" in page


def test_the_cancel_action_cancels_what_kite_never_saw_and_explains_the_rest(admin_client_: Client) -> None:
    unsent = OrderFactory(status=OrderStatus.PENDING)
    in_flight = OrderFactory(status=OrderStatus.SUBMITTING)
    done = OrderFactory(status=OrderStatus.COMPLETE)

    response = admin_client_.post(
        "/admin/orders/order/",
        {"action": "cancel_orders", "_selected_action": [unsent.pk, in_flight.pk, done.pk]},
        follow=True,
    )

    text = response.content.decode()
    assert f"Order {unsent.pk}: cancelled." in text
    assert f"Order {in_flight.pk} is being sent to Kite" in text
    assert f"Order {done.pk} is COMPLETE" in text
    assert Order.objects.get(pk=unsent.pk).status == OrderStatus.CANCELLED
    assert Order.objects.get(pk=unsent.pk).events.get().source == "admin"


def test_orders_and_their_history_are_not_editable_by_hand(admin_client_: Client) -> None:
    order = OrderFactory()
    event = OrderEvent.objects.create(order=order, source="api", status_to="PENDING")

    assert admin_client_.get("/admin/orders/order/add/").status_code == 403
    assert admin_client_.get(f"/admin/orders/order/{order.pk}/delete/").status_code == 403
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()


def test_trading_permissions_are_managed_in_admin(admin_client_: Client) -> None:
    assert admin_client_.get("/admin/orders/tradingpermission/add/").status_code == 200
