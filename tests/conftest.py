from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from vix_ttl.registry import forget_breakers


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    """Each test sees an empty breaker registry."""
    forget_breakers()
    yield
    forget_breakers()


@pytest.fixture(autouse=True)
def _default_structlog() -> Iterator[None]:
    """A test that configures structlog (the CLI does) leaves no trace."""
    yield
    structlog.reset_defaults()
