"""The documentation holds together: relative links resolve, the definitions file is cited by its path, and every
section the code cites exists in ``docs/measures.md``."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md"))
MEASURES_DOC = REPO / "docs" / "measures.md"

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
# a citation: docs/measures.md (optionally in backticks) followed by §N, §N.M or §Nb (whitespace may break the line)
CITATION = re.compile(r"docs/measures\.md`{0,2}\s+§(\d+(?:\.\d+)*[a-z]?)")
# a numbered heading: "## 1. Title", "## §1 Title", "### 1b. Title", "### §1.2 Title"
HEADING = re.compile(r"^#{1,6}\s+§?(\d+(?:\.\d+)*[a-z]?)\.?(?=\s|$)", re.M)
OLD_NAMES = ("MEASURES" + " §", "MEASURES" + ".md")  # split so that this file does not cite them


def _links(path: Path) -> list[str]:
    text = CODE_SPAN.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    return LINK.findall(text)


def _sections() -> set[str]:
    return set(HEADING.findall(MEASURES_DOC.read_text(encoding="utf-8")))


def _files(*roots: str) -> list[Path]:
    out = []
    for root in roots:
        p = REPO / root
        out += [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    return out


def test_the_definitions_file_exists_with_its_sections():
    assert MEASURES_DOC.is_file()
    assert {str(n) for n in range(1, 9)} <= _sections(), sorted(_sections())


@pytest.mark.parametrize("doc", [REPO / "README.md", *DOCS], ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc):
    broken = []
    for target in _links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http(s), mailto and other schemes; anchors within the page
        rel = target.split("#", 1)[0].split("?", 1)[0]
        if not (doc.parent / rel).exists():
            broken.append(target)
    assert not broken, f"{doc.relative_to(REPO)}: links to missing files {broken}"


def test_no_citation_of_the_old_definitions_file():
    this = Path(__file__).resolve()
    hits = []
    for f in _files("sensprune", "tests", "README.md", "docs"):
        if f.resolve() == this:
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        for i, line in enumerate(text.splitlines(), 1):
            if any(old in line for old in OLD_NAMES):
                hits.append(f"{f.relative_to(REPO)}:{i}")
    assert not hits, f"cite docs/measures.md §N instead: {hits}"


def test_every_section_cited_in_the_code_exists():
    sections = _sections()
    cited, missing = 0, []
    for f in _files("sensprune"):
        if f.suffix != ".py":
            continue
        for m in CITATION.finditer(f.read_text(encoding="utf-8")):
            cited += 1
            if m.group(1) not in sections:
                missing.append(f"{f.relative_to(REPO)}: §{m.group(1)}")
    assert cited > 0, "no citation of docs/measures.md §N found in sensprune/ (the pattern is stale)"
    assert not missing, f"sections missing from docs/measures.md: {missing}"
