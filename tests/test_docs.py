"""Every Python example of the documentation site (docs/) runs as written, as the README's do.

An example that names a local server's port runs against this run's own server of that
kind (tests/test_readme.py says which), and is skipped, saying why, without servers.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from aiocache import caches

import vix_ttl
from tests.test_readme import PORT, README, on_this_runs_servers

DOCS = Path(__file__).parent.parent / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
# A fenced block, at the margin or indented (inside a list item or an admonition).
BLOCK = re.compile(r"^([ \t]*)```python\n(.*?)^\1```", flags=re.S | re.M)
EXAMPLES = [
    (page, number, textwrap.dedent(match[2]))
    for page in PAGES
    for number, match in enumerate(BLOCK.finditer(page.read_text()))
]


@pytest.mark.parametrize(
    ("page", "source"),
    [
        pytest.param(page, source, marks=[pytest.mark.redis] if PORT.search(source) else [])
        for page, _, source in EXAMPLES
    ],
    ids=[f"{page.relative_to(DOCS).as_posix()}-{number}" for page, number, _ in EXAMPLES],
)
def test_docs_example_runs(page: Path, source: str) -> None:
    try:
        exec(compile(on_this_runs_servers(source), str(page), "exec"), {"__name__": "docs_example"})
    finally:
        caches.set_config({"default": {"cache": "aiocache.SimpleMemoryCache"}})


def test_the_docs_have_examples() -> None:
    assert len(EXAMPLES) >= 20


def test_the_reference_names_every_public_name_of_the_package() -> None:
    index = (DOCS / "reference" / "index.md").read_text()
    missing = [name for name in vix_ttl.__all__ if f"[`{name}`]" not in index]
    assert not missing, f"docs/reference/index.md does not name {missing}"


def test_the_readme_stays_a_landing_page() -> None:
    assert len(README.read_bytes()) <= 10_240, "the README is a landing page: move the detail into docs/"
