"""vix_ttl's default serializer for shared stores against aiocache's JSON one, in one run.

The same value both can hold (a dict of str keys, lists, floats, text): what keeping
tuples, int keys and the rest costs on a hit, where it is decoded. (The whole Redis hit,
native client against aiocache's, is ``test_decorator_bench``'s.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiocache.serializers import JsonSerializer
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.conftest import compare
from vix_ttl import _typed as typed

VALUE = {
    "match": "match-42",
    "odds": [{"book": f"book-{n}", "home": 2.1 + n / 100, "draw": 3.4, "away": 3.05} for n in range(12)],
    "updated": "2026-06-11T20:00:00+02:00",
}


def decodes(loads: Callable[[Any], Any], payload: Any) -> Callable[[int], None]:
    def many(n: int) -> None:
        for _ in range(n):
            loads(payload)

    return many


@pytest.mark.benchmark(group="serializer")
def test_default_serializer_hit_vs_aiocache_json(benchmark: BenchmarkFixture) -> None:
    json = JsonSerializer()
    compare(
        benchmark,
        "decoding a hit, same value: vix_ttl's serializer / aiocache's JsonSerializer",
        decodes(typed.loads, typed.dumps(VALUE)),
        decodes(json.loads, json.dumps(VALUE)),
        1.3,
    )
