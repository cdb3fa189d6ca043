"""The peers vix_ttl is measured against, built the way their users build them."""

from __future__ import annotations

from collections.abc import Callable

import cachetools


def cachetools_hit() -> Callable[[], int]:
    """A hit of ``cachetools.cached(TTLCache)`` on a one-argument function."""

    @cachetools.cached(cachetools.TTLCache(maxsize=4096, ttl=60))
    def price(match_id: int) -> int:
        return match_id

    price(7)
    return lambda: price(7)
