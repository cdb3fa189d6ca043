from __future__ import annotations

import tracemalloc

import pytest

from vix_ttl.window import RollingWindow


def test_counts_samples_and_panics_in_the_window() -> None:
    window = RollingWindow(10, 1)
    for t in (0.0, 0.5, 1.2, 3.9):
        window.add(t, panic=t > 1)
    assert (window.total, window.panics, window.ratio) == (4, 2, 0.5)


def test_samples_leave_the_window_bucket_by_bucket() -> None:
    window = RollingWindow(10, 1)
    window.add(0.2, panic=True)
    window.add(5.5, panic=False)
    window.advance(9.99)
    assert window.total == 2
    window.advance(10.0)  # bucket [0, 1) is now 10 buckets old
    assert (window.total, window.panics) == (1, 0)
    window.advance(15.0)
    assert (window.total, window.ratio) == (0, 0.0)


def test_a_jump_longer_than_the_window_empties_it() -> None:
    window = RollingWindow(60, 1)
    for t in range(60):
        window.add(float(t), panic=True)
    window.add(10_000.0, panic=False)
    assert (window.total, window.panics) == (1, 0)


def test_a_clock_that_steps_back_counts_into_the_newest_bucket() -> None:
    window = RollingWindow(10, 1)
    window.add(5.0, panic=False)
    window.add(3.0, panic=True)  # a wall clock corrected by NTP
    window.advance(14.9)
    assert (window.total, window.panics) == (2, 1)
    window.advance(15.0)
    assert window.total == 0


def test_the_window_is_clock_time_at_any_rate() -> None:
    # The design this replaces kept the last 1,800 samples: 1.8 s at 1,000/s.
    window = RollingWindow(1800, 1)
    for i in range(1_000 * 60):  # one minute at 1,000 samples/s
        window.add(i / 1000, panic=i < 30_000)
    assert (window.total, window.panics) == (60_000, 30_000)


def test_fractional_buckets() -> None:
    window = RollingWindow(1, 0.1)
    window.add(0.05, panic=True)
    window.add(0.95, panic=False)
    window.advance(1.05)
    assert (window.total, window.panics) == (1, 0)


def test_memory_is_bounded_by_buckets_not_samples() -> None:
    window = RollingWindow(1800, 1)
    assert window.size == 1800
    tracemalloc.start()
    for i in range(50_000):
        window.add(i / 10, panic=bool(i % 2))
    after_50k = tracemalloc.take_snapshot()
    for i in range(50_000, 500_000):
        window.add(i / 10, panic=bool(i % 2))
    growth = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(after_50k, "filename"))
    tracemalloc.stop()
    assert growth < 4096  # ten times the samples, the same memory


@pytest.mark.parametrize(
    ("window_seconds", "bucket_seconds", "error", "match"),
    [
        (0, 1, ValueError, "window_seconds must be a finite number of seconds > 0"),
        (-5, 1, ValueError, "window_seconds"),
        (float("inf"), 1, ValueError, "window_seconds"),
        (60, 0, ValueError, "bucket_seconds must be a finite number of seconds > 0"),
        (60, -1, ValueError, "bucket_seconds"),
        (60, 61, ValueError, "bucket_seconds .* must not exceed window_seconds"),
        (10, 3, ValueError, "whole multiple of bucket_seconds"),
        ("60", 1, TypeError, "window_seconds must be a number"),
        (60, None, TypeError, "bucket_seconds must be a number"),
        (True, 1, TypeError, "window_seconds"),
        (1800, 1e-12, ValueError, "bucket_seconds must be at least 1e-06 s"),
        (10**400, 1, ValueError, "window_seconds must be a number of seconds, got an int of 1329 bits"),
        (86400, 0.01, ValueError, "8.64e\\+06 buckets, at most 1,000,000"),
    ],
)
def test_bad_sizes_are_refused_naming_the_parameter(
    window_seconds: object, bucket_seconds: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        RollingWindow(window_seconds, bucket_seconds)  # type: ignore[arg-type]


def test_the_largest_window_allowed_is_bounded_up_front() -> None:
    window = RollingWindow(1000, 0.001)  # exactly 1,000,000 buckets: allowed, allocated now
    window.add(0.0005, True)
    assert (window.total, window.panics) == (1, 1)
