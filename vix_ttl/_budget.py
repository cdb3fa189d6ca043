"""One call's time for network commands: a hung backend costs a call one timeout in all.

A call over a shared store may read, take a lease, look again, poll while another
process computes, and write. Each of those commands is bounded by what the earlier
ones left of the cache's ``timeout``, so however the backend hangs, and wherever, the
call waits on it for one timeout at most. Waiting for another process's computation
is not a command: only the polls are counted.
"""

from __future__ import annotations

import time

__all__ = ["Budget"]


class Budget:
    """Seconds left for one call's commands (None: unbounded)."""

    __slots__ = ("left",)

    def __init__(self, seconds: float | None) -> None:
        self.left = seconds

    def spend(self, since: float) -> None:
        """Take off what a command begun at ``time.monotonic()`` *since* took."""
        if self.left is not None:
            self.left -= time.monotonic() - since

    def __repr__(self) -> str:
        return f"<Budget {'unbounded' if self.left is None else f'{self.left:.3f} s'}>"
