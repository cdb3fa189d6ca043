"""Every Python example in the README runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiocache import caches

README = Path(__file__).parent.parent / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("source", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_readme_example_runs(source: str) -> None:
    try:
        exec(compile(source, str(README), "exec"), {"__name__": "readme_example"})
    finally:
        caches.set_config({"default": {"cache": "aiocache.SimpleMemoryCache"}})


def test_the_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 3
