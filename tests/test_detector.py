"""VolatilityDetector: calm noise stays calm, a volatility jump panics, series are apart."""

from __future__ import annotations

import random
import threading

import pytest

from vix_ttl import VixStatus
from vix_ttl.detector import VolatilityDetector


def noisy_odds(rng: random.Random, n: int, volatility: float, start: float = 2.0) -> list[float]:
    values, value = [], start
    for _ in range(n):
        value *= 1 + rng.gauss(0, volatility)
        values.append(value)
    return values


def test_stationary_noise_stays_mostly_normal() -> None:
    detector = VolatilityDetector()
    statuses = [detector.update("m1", v) for v in noisy_odds(random.Random(1), 5000, 0.01)]
    share = {s: statuses.count(s) / len(statuses) for s in VixStatus}
    # Gaussian moves: |z| >= 2 about 4.6 % of the time, 1.5 <= |z| < 2 about 9 %.
    assert share[VixStatus.NORMAL] > 0.8
    assert share[VixStatus.PANIC] < 0.08


# The two-sided normal tails: P(|z| >= 2.0) and P(|z| >= 1.5).
PANIC_TAIL, WARNING_TAIL = 0.0455, 0.1336


@pytest.mark.parametrize("halflife", [10, 100, 1000])
def test_calm_moves_are_scored_at_their_normal_tails_from_the_first_move(halflife: float) -> None:
    # Right after min_history the estimate rests on 20 moves; a variance that started at 0
    # (0.2) flagged a quarter of them as panic, three in four with halflife=1000.
    panics = warnings = scored = 0
    for seed in range(20):
        rng = random.Random(seed)
        detector = VolatilityDetector(transform="diff", halflife=halflife, min_history=20)
        walk = 100.0
        detector.update("calm", walk)
        for n in range(20 + 300):
            walk += rng.gauss(0, 0.7)
            status = detector.update("calm", walk)
            if n >= 20:
                scored += 1
                panics += status is VixStatus.PANIC
                warnings += status is not VixStatus.NORMAL
    assert panics / scored <= 1.5 * PANIC_TAIL
    assert warnings / scored <= 1.5 * WARNING_TAIL
    assert panics / scored >= 0.5 * PANIC_TAIL  # still a detector: it does not just say normal


def test_a_single_move_has_no_spread_yet() -> None:
    detector = VolatilityDetector(transform="diff", min_history=1)
    detector.update("m", 1.0)
    detector.update("m", 2.0)  # the first move: the history's mean, with no spread
    assert detector.update("m", 3.0) is VixStatus.NORMAL  # the same move again
    assert detector.update("m", 3.5) is VixStatus.PANIC  # any other, out of a flat history


def test_a_volatility_jump_goes_panic() -> None:
    detector = VolatilityDetector()
    rng = random.Random(2)
    for v in noisy_odds(rng, 500, 0.005):
        detector.update("final", v)
    jump = [detector.update("final", v) for v in noisy_odds(rng, 20, 0.05, start=2.0)]
    assert jump.count(VixStatus.PANIC) >= 10
    assert detector.status("final") is jump[-1]


def test_nothing_leaves_normal_before_min_history() -> None:
    detector = VolatilityDetector(min_history=20)
    values = [2.0 + 0.001 * (i % 2) for i in range(21)] + [50.0]
    statuses = [detector.update("m", v) for v in values]
    assert set(statuses[:21]) == {VixStatus.NORMAL}
    assert statuses[21] is VixStatus.PANIC  # the 21st move, out of a quiet history


def test_series_are_isolated() -> None:
    detector = VolatilityDetector(min_history=5)
    rng = random.Random(3)
    quiet, wild = noisy_odds(rng, 200, 0.001), noisy_odds(rng, 200, 0.05)
    for a, b in zip(quiet, wild, strict=True):
        detector.update("quiet", a)
        detector.update("wild", b)
    assert detector.update("quiet", quiet[-1] * 1.05) is VixStatus.PANIC
    # The same 5 % move is ordinary for the wild series.
    assert detector.update("wild", wild[-1] * 1.05) is not VixStatus.PANIC
    assert detector.status("never-seen") is VixStatus.NORMAL


def test_diff_transform_takes_zero_and_negative_values() -> None:
    detector = VolatilityDetector(transform="diff", min_history=3)
    for v in [0.0, -1.0, 0.0, -1.0, 0.0, -1.0]:
        detector.update("spread", v)
    assert detector.update("spread", 30.0) is VixStatus.PANIC


def test_thread_safe_under_concurrent_updates() -> None:
    # Six threads, each its own series: torn updates would make their statuses differ
    # from the same sequences replayed on one thread.
    detector, replay = VolatilityDetector(min_history=0), VolatilityDetector(min_history=0)
    sequences = {series: noisy_odds(random.Random(series), 2000, 0.01) for series in range(6)}
    seen: dict[int, list[VixStatus]] = {}

    def worker(series: int) -> None:
        seen[series] = [detector.update(series, v) for v in sequences[series]]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for series, values in sequences.items():
        assert seen[series] == [replay.update(series, v) for v in values]


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (float("nan"), ValueError, "finite number"),
        (float("inf"), ValueError, "finite number"),
        (10**400, ValueError, "finite number, got an int of 1329 bits"),
        ("2.0", TypeError, "finite number"),
        (0.0, ValueError, "must be > 0 with transform='log'"),
        (-1.5, ValueError, "must be > 0 with transform='log'"),
    ],
)
def test_bad_values_are_refused(value: object, error: type[Exception], match: str) -> None:
    detector = VolatilityDetector()
    with pytest.raises(error, match=match):
        detector.update("m", value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"warning_sigma": 0}, "warning_sigma must be a finite number > 0"),
        ({"panic_sigma": -1}, "panic_sigma"),
        ({"warning_sigma": 3, "panic_sigma": 2}, "warning_sigma .* must not exceed panic_sigma"),
        ({"halflife": 0}, "halflife"),
        ({"min_history": -1}, "min_history must be an int >= 0"),
        ({"transform": "pct"}, "transform must be 'log' or 'diff'"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VolatilityDetector(**kwargs)  # type: ignore[arg-type]
