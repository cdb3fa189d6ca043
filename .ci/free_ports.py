"""Print COUNT distinct TCP ports, free on 127.0.0.1 now, for one run's test servers.

    python3 .ci/free_ports.py COUNT [BUSY_PORT ...]

.ci/services.sh calls it for the ports its caller did not export. The ports are drawn at
random from 30000-32767, below Linux's ephemeral range (32768-60999): the kernel takes no
port there for an outgoing connection or a bind to port 0 (the tests' own servers, uvicorn,
Prometheus), so nothing else of a run takes one between this check and the server's start,
or while a test has stopped a server to start it again on the same port. Each port's
port + 10000 is free too (a Redis Cluster node's bus port), and none is a BUSY_PORT (the
ports the caller did export). Two runs that pick at the same moment could still draw the
same port: services.sh checks that each server answering is the one it started, and picks
again if not.
"""

from __future__ import annotations

import random
import socket
import sys

LOW, HIGH = 30000, 32767
BUS_OFFSET = 10000  # a Redis Cluster node's bus port


def free(port: int) -> bool:
    """Nothing is bound to *port* on 127.0.0.1 (or on every address): a server can take it."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick(count: int, busy: set[int]) -> list[int]:
    candidates = [port for port in range(LOW, HIGH + 1) if port not in busy and port + BUS_OFFSET not in busy]
    random.SystemRandom().shuffle(candidates)
    ports: list[int] = []
    for port in candidates:
        if free(port) and free(port + BUS_OFFSET):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise SystemExit(f"free_ports.py: fewer than {count} free ports in {LOW}-{HIGH} on 127.0.0.1")


def main(argv: list[str]) -> None:
    if not argv or not all(arg.isdigit() for arg in argv):
        raise SystemExit(__doc__)
    count, *busy = (int(arg) for arg in argv)
    print(*pick(count, set(busy)))


if __name__ == "__main__":
    main(sys.argv[1:])
