"""The documentation is self-contained: every link in README.md and docs/ stays inside the
repository and resolves, and every "docs/NAME.md section N" the code cites exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_link_stays_in_the_repository_and_resolves() -> None:
    bad = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)]+)\)", page.read_text()):
            path = target.split("#", 1)[0]
            resolved = (page.parent / path).resolve()
            if "://" in target or not resolved.is_relative_to(ROOT) or not resolved.exists():
                bad.append(f"{page.relative_to(ROOT)}: {target}")
    assert not bad, bad


def test_readme_is_a_short_front_door_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert ".venv/bin/mecllm demo" in text
    assert '.venv/bin/python -m pytest -m "not slow"' in text
    assert "../" not in text


def test_section_references_in_the_code_exist() -> None:
    cited = set()
    for source in (ROOT / "src").rglob("*.py"):
        cited |= set(re.findall(r"docs/(\w+)\.md section (\d+)", source.read_text()))
        for name in re.findall(r"docs/(\w+)\.md", source.read_text()):
            assert (ROOT / "docs" / f"{name}.md").exists(), (source, name)
    assert cited, "the code cites the model docs by section"
    for name, number in cited:
        text = (ROOT / "docs" / f"{name}.md").read_text()
        assert re.search(rf"^## {number}\. ", text, flags=re.M), (name, number)
