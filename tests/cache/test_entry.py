"""XFetch early refresh decisions, with the random draw pinned."""

from __future__ import annotations

from tableforge.cache.entry import Entry, should_refresh_early


def test_far_from_expiry_never_refreshes() -> None:
    entry = Entry("v", expires_at=1000.0, delta=0.01)
    assert not should_refresh_early(entry, 900.0, beta=1.0, min_delta=0.0, rand=lambda: 0.999999)


def test_close_to_expiry_refreshes_with_rising_probability() -> None:
    entry = Entry("v", expires_at=1000.0, delta=0.1)
    # now + delta * -ln(1 - u) >= expiry  <=>  -ln(1 - u) >= (expiry - now) / delta
    assert should_refresh_early(entry, 999.95, beta=1.0, min_delta=0.0, rand=lambda: 0.5)  # 0.69 >= 0.5
    assert not should_refresh_early(entry, 999.9, beta=1.0, min_delta=0.0, rand=lambda: 0.5)  # 0.69 < 1
    assert should_refresh_early(entry, 999.9, beta=1.0, min_delta=0.0, rand=lambda: 0.9)  # 2.3 >= 1


def test_min_delta_widens_the_window_for_fast_loaders() -> None:
    entry = Entry("v", expires_at=1000.0, delta=0.0001)
    assert not should_refresh_early(entry, 999.9, beta=1.0, min_delta=0.0, rand=lambda: 0.9)
    assert should_refresh_early(entry, 999.9, beta=1.0, min_delta=0.1, rand=lambda: 0.9)


def test_missing_markers_and_zero_beta_never_refresh() -> None:
    assert not should_refresh_early(Entry(None, 1000.0, 1.0), 999.99, beta=1.0, min_delta=0.0)
    assert not should_refresh_early(Entry("v", 1000.0, 1.0), 999.99, beta=0.0, min_delta=0.0)
