"""docs/: the specification the code cites is in the repository, and every citation resolves."""

from __future__ import annotations

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
SOURCES = [
    path
    for folder in ("shared", "functions", "tools", "tests", "deploy")
    for path in (REPO / folder).rglob("*")
    if path.suffix in (".py", ".proto", ".tf", ".sh", ".yaml", ".md")
    and "_pb2" not in path.name
    and path.name != "test_docs.py"
] + [REPO / "README.md"]
# `docs/rules.md "Limits"` or `docs/rules.md ("Limits", "Other")`: a page and the sections cited.
CITATION = re.compile(r'docs/(?P<page>[a-z_]+\.md)(?:\s*\(?(?P<sections>"[^"]+"(?:,\s*"[^"]+")*))?')


def headings(page: pathlib.Path) -> list[str]:
    return [line.lstrip("#").strip() for line in page.read_text().splitlines() if line.startswith("#")]


def citations() -> list[tuple[str, str, list[str]]]:
    found = []
    for path in SOURCES:
        text = path.read_text(errors="replace")
        # A citation may wrap onto the next comment line.
        text = re.sub(r"\n\s*(#|//)?\s*", " ", text)
        for match in CITATION.finditer(text):
            sections = re.findall(r'"([^"]+)"', match["sections"] or "")
            found.append((str(path.relative_to(REPO)), match["page"], sections))
    return found


def test_no_file_cites_a_specification_outside_the_repository():
    offenders = [
        str(path.relative_to(REPO))
        for path in SOURCES
        if re.search(r"CONTRACT\.md|GCP_FACTS", path.read_text(errors="replace"))
    ]
    assert offenders == []


def test_the_code_cites_docs():
    assert len(citations()) >= 10


@pytest.mark.parametrize("where, page, sections", citations(), ids=lambda value: str(value))
def test_every_citation_names_a_page_and_sections_that_exist(where, page, sections):
    assert (DOCS / page).is_file(), f"{where} cites docs/{page}, which does not exist"
    titles = headings(DOCS / page)
    for section in sections:
        assert any(title.startswith(section) for title in titles), f"{where}: docs/{page} has no section {section!r}"


def test_the_index_lists_every_page():
    index = (DOCS / "README.md").read_text()
    for page in DOCS.glob("*.md"):
        if page.name != "README.md":
            assert f"({page.name})" in index, page.name
