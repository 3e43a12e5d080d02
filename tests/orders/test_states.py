import random
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders.states import (
    AT_KITE,
    FINAL,
    IllegalTransition,
    OrderStatus,
    Progress,
    can_transition,
    check_transition,
    is_newer,
    status_for_kite,
)
from ticks.market_time import IST

S = OrderStatus
T0 = datetime(2026, 8, 17, 9, 20, tzinfo=IST)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.PENDING, S.SUBMITTING),
        (S.PENDING, S.CANCELLED),  # cancelled before it was sent
        (S.PENDING, S.OPEN),  # adopted: Kite has the tag
        (S.SUBMITTING, S.PENDING),  # released to wait (rate limit, breaker, backoff)
        (S.SUBMITTING, S.PLACED),
        (S.SUBMITTING, S.REJECTED),
        (S.SUBMITTING, S.FAILED),
        (S.PLACED, S.OPEN),
        (S.PLACED, S.REJECTED),  # margin rejections come after the order id
        (S.OPEN, S.OPEN),  # a modification or a partial fill
        (S.OPEN, S.COMPLETE),
        (S.OPEN, S.CANCELLED),
        (S.FAILED, S.OPEN),  # Kite's word beats our FAILED
    ],
)
def test_legal_transitions(current: OrderStatus, target: OrderStatus) -> None:
    assert can_transition(current, target)
    check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.OPEN, S.PENDING),
        (S.OPEN, S.PLACED),
        (S.OPEN, S.SUBMITTING),
        (S.PLACED, S.PENDING),
        (S.PLACED, S.FAILED),
        (S.PENDING, S.PENDING),
        (S.PLACED, S.PLACED),
        (S.FAILED, S.PENDING),
        (S.FAILED, S.SUBMITTING),
    ],
)
def test_illegal_transitions_are_refused(current: OrderStatus, target: OrderStatus) -> None:
    assert not can_transition(current, target)
    with pytest.raises(IllegalTransition, match=f"from {current} to {target}"):
        check_transition(current, target)


@pytest.mark.parametrize("final", [S.COMPLETE, S.CANCELLED, S.REJECTED])
def test_kite_final_states_are_terminal(final: OrderStatus) -> None:
    assert not any(can_transition(final, target) for target in S)


@pytest.mark.parametrize(
    ("kite", "ours"),
    [
        ("PUT ORDER REQ RECEIVED", S.PLACED),
        ("VALIDATION PENDING", S.PLACED),
        ("OPEN PENDING", S.PLACED),
        ("OPEN", S.OPEN),
        ("TRIGGER PENDING", S.OPEN),
        ("MODIFY PENDING", S.OPEN),
        ("CANCEL PENDING", S.OPEN),
        ("UPDATE", S.OPEN),
        ("AMO REQ RECEIVED", S.OPEN),
        ("COMPLETE", S.COMPLETE),
        ("CANCELLED", S.CANCELLED),
        ("REJECTED", S.REJECTED),
        ("rejected", S.REJECTED),
        ("SOMETHING NEW", S.PLACED),  # unknown, but Kite holds the order
    ],
)
def test_kite_statuses_map_onto_ours(kite: str, ours: OrderStatus) -> None:
    assert status_for_kite(kite) is ours


def test_an_update_moves_forward_but_never_back() -> None:
    submitting = Progress(S.SUBMITTING)
    opened = Progress(S.OPEN, 0, T0)
    complete = Progress(S.COMPLETE, 65, T0 + timedelta(seconds=3))

    assert is_newer(submitting, opened)
    assert is_newer(opened, complete)
    assert not is_newer(complete, opened)
    assert not is_newer(opened, Progress(S.PLACED))
    assert not is_newer(opened, opened)  # a duplicate changes nothing


def test_open_to_open_applies_only_later_or_fuller_updates() -> None:
    opened = Progress(S.OPEN, 0, T0)

    assert is_newer(opened, Progress(S.OPEN, 0, T0 + timedelta(seconds=1)))  # a modification
    assert is_newer(opened, Progress(S.OPEN, 30, T0))  # a partial fill
    assert not is_newer(opened, Progress(S.OPEN, 0, T0 - timedelta(seconds=1)))


@given(st.integers(0, 4), st.sampled_from([S.COMPLETE, S.CANCELLED, S.REJECTED]), st.booleans(), st.randoms())
def test_any_delivery_order_converges_to_the_last_update(
    partial_fills: int, final: OrderStatus, duplicated: bool, rnd: random.Random
) -> None:
    """One order's Kite lifecycle, delivered shuffled (and maybe twice): the result is its last step."""
    chain = [Progress(S.PLACED), Progress(S.OPEN, 0, T0)]
    chain += [Progress(S.OPEN, 10 * i, T0 + timedelta(seconds=i)) for i in range(1, partial_fills + 1)]
    chain.append(Progress(final, 10 * partial_fills, T0 + timedelta(seconds=partial_fills + 1)))
    delivered = chain * (2 if duplicated else 1)
    rnd.shuffle(delivered)

    held = Progress(S.SUBMITTING)
    for update in delivered:
        if is_newer(held, update):
            held = update

    assert held == chain[-1]


def test_live_and_final_sets() -> None:
    assert {S.PLACED, S.OPEN} == AT_KITE
    assert FINAL.isdisjoint(AT_KITE)
