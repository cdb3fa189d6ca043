"""pytest fixtures for code that uses vix_ttl (registered by the ``pytest11`` entry point)."""

from __future__ import annotations

import pytest

from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.testing import FakeClock


@pytest.fixture
def vix_clock() -> FakeClock:
    """A ``FakeClock`` at 0.0, for any ``clock=`` parameter."""
    return FakeClock()


@pytest.fixture
def vix_breaker(vix_clock: FakeClock) -> VIXCircuitBreaker:
    """A fresh breaker with default settings, driven by ``vix_clock``."""
    return VIXCircuitBreaker(name="test", clock=vix_clock)
