"""``vix-ttl demo``: one breaker through the lineup-leak story, its clock set by hand, in a second."""

from __future__ import annotations

from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.mode import Transition
from vix_ttl.sim.report import ratio, when
from vix_ttl.testing import FakeClock

__all__ = ["demo"]


def demo(rate: int = 10) -> int:
    """Walk a breaker through the lineup-leak story on a virtual clock and print what it does."""
    clock = FakeClock()
    breaker = VIXCircuitBreaker(name="lineup-leak", clock=clock)
    calm, panic, after = 30 * 60, 45 * 60, 30 * 60

    def show(hop: Transition) -> None:
        shown = ratio({"panic_ratio": hop.panic_ratio, "trigger": hop.trigger})
        print(
            f"  t={when(hop.at):>13}  {hop.old.value:>15} -> {hop.new.value:<15} "
            f"panic ratio {shown}  ({hop.trigger})"
        )

    breaker.subscribe(show)
    print(f"30 min calm, 45 min of panic, 30 min calm; {rate} requests/s; 30 min window.\n")
    print("Mode changes:")
    checkpoints = {
        10 * 60: "calm",
        calm + 10 * 60: "10 min into the panic",
        calm + 30 * 60: "30 min into the panic",
        calm + panic + 25 * 60: "after the panic",
    }
    seen: dict[str, str] = {}
    for tick in range((calm + panic + after) * rate):
        clock.set(tick / rate)
        breaker.record("panic" if calm <= clock() < calm + panic else "normal")
        second = tick // rate
        if tick % rate == 0 and second in checkpoints:
            decision = breaker.decide("panic", 0)
            seen[checkpoints[second]] = (
                f"mode {decision.mode.value}, a panic request gets TTL {decision.ttl:g} s "
                f"({decision.strategy.value})"
            )
    print("\nWhat a panic request gets:")
    for moment, line in seen.items():
        print(f"  {moment:>22}: {line}")
    return 0
