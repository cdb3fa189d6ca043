"""An asyncio event loop on virtual time: it never waits, it jumps.

When nothing is ready, the loop's selector is asked to wait until the next
timer; this one moves the virtual clock to that timer instead, so 105 minutes
of simulated traffic run as fast as the CPU allows, and ``loop.time()`` is the
clock every simulated component shares.
"""

from __future__ import annotations

import asyncio
import functools
import selectors

__all__ = ["VirtualTimeLoop"]


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)  # the loop's own wake-up pipe still works
        if not events and timeout:
            self.now += timeout
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A ``SelectorEventLoop`` whose ``time()`` only moves when there is nothing to do."""

    def __init__(self) -> None:
        self._jumps = _JumpingSelector()
        super().__init__(self._jumps)
        # The loop and everything simulated read the clock all the time: a
        # C-level attribute read, not a Python method.
        self.time = functools.partial(getattr, self._jumps, "now")  # type: ignore[method-assign]

    def __repr__(self) -> str:
        return f"<VirtualTimeLoop t={self._jumps.now:.3f}>"
