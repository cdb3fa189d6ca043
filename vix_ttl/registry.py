"""A process-wide registry of named breakers, like ``logging.getLogger``."""

from __future__ import annotations

import threading
from typing import Any

from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.mode import Thresholds
from vix_ttl.policy import TTLPolicy

__all__ = ["get_breaker", "known_breakers"]

_MISSING = object()
_breakers: dict[str, VIXCircuitBreaker] = {}
_lock = threading.Lock()


def get_breaker(name: str = "default", **config: Any) -> VIXCircuitBreaker:
    """The breaker registered under *name*, created with *config* on first use.

    Several decorators, serializers and aiocache config dicts share one
    breaker by naming it. *config* takes the keyword arguments of
    ``VIXCircuitBreaker``; given again for an existing breaker, it must agree
    with what that breaker was created with.

    Raises:
        ValueError: *config* disagrees with the existing breaker's.
    """
    with _lock:
        breaker = _breakers.get(name)
        if breaker is None:
            breaker = _breakers[name] = VIXCircuitBreaker(name=name, **config)
            return breaker
    # None stands for the default, as in VIXCircuitBreaker's own arguments.
    defaults = {"thresholds": Thresholds(), "policy": TTLPolicy.default()}
    given = {k: defaults.get(k) if v is None else v for k, v in config.items() if k != "window"}
    if "window" in config and config["window"] is not breaker.window:
        given["window"] = config["window"]
    clashes = sorted(k for k, v in given.items() if getattr(breaker.config, k, _MISSING) != v)
    if clashes:
        raise ValueError(
            f"breaker {name!r} already exists with other settings for {', '.join(clashes)}; "
            f"get it by name alone, or pick another name"
        )
    return breaker


def known_breakers() -> dict[str, VIXCircuitBreaker]:
    """A copy of the registry: name -> breaker."""
    with _lock:
        return dict(_breakers)


def _clear() -> None:
    """Empty the registry (``vix_ttl.testing.forget_breakers``)."""
    with _lock:
        _breakers.clear()
