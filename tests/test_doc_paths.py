"""The docs speak of this repository: every path they cite in backticks exists, and they
cite no file from outside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
PAGES += sorted((ROOT / "examples").glob("**/README.md")) + sorted((ROOT / "bench").glob("*.md"))
CODE_SPAN = re.compile(r"`([^`\n]+)`")
REPO_PATH = re.compile(r"(?<![\w./-])((?:src|docs|examples|bench|tests)/[\w./-]*)")
#: A path with a placeholder (`examples/NAME/consumer.py`) names no one file.
PLACEHOLDER = re.compile(r"(?:^|/)[A-Z][A-Z_]+(?:/|$)")
#: Wording that cites what is not part of this repository.
OUTSIDE = re.compile(r"\bthe seed\b|\bseed's\b|shared/spec/|pubnub-wire\.md", re.IGNORECASE)


def cited_paths(text: str) -> list[str]:
    """Repository paths cited in code spans, without a trailing ``.``/``:`` or ``::test``."""
    paths = []
    for span in CODE_SPAN.findall(text):
        for path in REPO_PATH.findall(span):
            path = path.split("::", 1)[0].rstrip(".:")
            if not PLACEHOLDER.search(path):
                paths.append(path)
    return paths


def test_cited_paths_are_found_in_text() -> None:
    text = (
        "see `src/blocks_devnet/fast_path.py`, `tests/devnet/test_cli.py::test_x`, "
        "`python examples/NAME/consumer.py`, `bench/RESULTS.md`. and `docs/`"
    )
    assert cited_paths(text) == [
        "src/blocks_devnet/fast_path.py",
        "tests/devnet/test_cli.py",
        "bench/RESULTS.md",
        "docs/",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_repository_paths_exist(page: Path) -> None:
    missing = [path for path in cited_paths(page.read_text()) if not (ROOT / path).exists()]
    assert not missing, f"{page.name} cites paths that are not in the repository: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_cite_nothing_from_outside_the_repository(page: Path) -> None:
    found = sorted({m.group(0) for m in OUTSIDE.finditer(page.read_text())})
    assert not found, f"{page.name} speaks of files outside this project: {found}"
