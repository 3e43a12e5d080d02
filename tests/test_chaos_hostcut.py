"""``make chaos``'s host cut, end to end: two feeds workers in two network namespaces, one cut off.

Needs root for ``ip netns`` (CI runs as root); where it is not permitted the scenario says so and the test
fails with that message rather than skipping.
"""

import pytest

from scripts.chaos.hostcut import HostCut, host_cut_measure

pytestmark = pytest.mark.integration


def test_a_cut_off_feeds_host_hands_its_accounts_over_and_streams_nothing_twice_when_it_returns() -> None:
    cut = host_cut_measure()

    assert isinstance(cut, HostCut), cut  # otherwise: why the scenario could not run
    assert cut.accounts_moved > 0, cut.detail
    assert cut.takeover_s is not None, cut.detail
    assert cut.takeover_s <= cut.bound_s, cut.detail
    assert cut.recovered_s is not None, cut.detail
    assert cut.ticks_lost == 0, cut.detail
    assert cut.stale_dropped_s is not None, cut.detail  # the cut host's half-open sockets are gone
    assert cut.returned_connections == 0, cut.detail  # the returning host opened none
    assert cut.doubled_after_settle == 0, cut.detail
    assert cut.ok
