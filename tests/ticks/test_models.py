import pytest
from django.core.exceptions import ValidationError

from tests.ticks.factories import OptionFactory
from ticks.models import WatchSpec

pytestmark = pytest.mark.django_db


def test_a_watch_spec_needs_a_known_underlying() -> None:
    OptionFactory(name="NIFTY")

    WatchSpec(underlying="NIFTY").full_clean()
    with pytest.raises(ValidationError) as error:
        WatchSpec(underlying="NOSUCH").full_clean()
    assert "underlying" in error.value.message_dict


@pytest.mark.parametrize("field", ["strikes_around_atm", "expiry_count"])
def test_a_watch_spec_refuses_zero_counts(field: str) -> None:
    OptionFactory(name="NIFTY")

    with pytest.raises(ValidationError) as error:
        WatchSpec(underlying="NIFTY", **{field: 0}).full_clean()
    assert field in error.value.message_dict
