"""The ``vix-ttl`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import structlog

from vix_ttl.breaker import VIXCircuitBreaker
from vix_ttl.mode import Transition
from vix_ttl.testing import FakeClock


def demo(rate: int = 10) -> int:
    """Walk a breaker through the lineup-leak story on a virtual clock and print what it does."""
    clock = FakeClock()
    breaker = VIXCircuitBreaker(name="lineup-leak", clock=clock)
    calm, panic, after = 30 * 60, 45 * 60, 30 * 60

    def show(hop: Transition) -> None:
        minute = hop.at / 60
        print(
            f"  t={minute:6.1f} min  {hop.old.value:>15} -> {hop.new.value:<15} "
            f"panic ratio {hop.panic_ratio:6.1%}  ({hop.trigger})"
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
        status = "panic" if calm <= clock() < calm + panic else "normal"
        breaker.record(status)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vix-ttl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="the breaker through the lineup-leak story")
    demo_parser.add_argument("--rate", type=int, default=10, help="requests per second (default 10)")
    args = parser.parse_args(argv)
    # The command owns its process: logs go to stderr, the report to stdout.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    if args.rate <= 0:
        parser.error("--rate must be a positive number of requests per second")
    return demo(args.rate)


if __name__ == "__main__":
    sys.exit(main())
