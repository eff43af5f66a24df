"""The documentation holds together: relative links (and their anchors) in the README and ``docs/`` resolve, the
README's result tables are quoted from the committed files they name, the definitions file is cited by its path,
and every section the code cites exists in ``docs/measures.md``."""

import csv
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


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (``-`` and ``_`` kept), spaces → ``-``."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M)}


def test_slug_follows_github():
    assert _slug("Stage 3 — `sensprune bench`: does pruning help?") == "stage-3--sensprune-bench-does-pruning-help"
    assert _slug("The paper's measure against exact mode") == "the-papers-measure-against-exact-mode"


@pytest.mark.parametrize("doc", [REPO / "README.md", *DOCS], ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc):
    broken, links = [], _links(doc)
    for target in links:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # http(s), mailto and other schemes
        rel, _, anchor = target.partition("#")
        path = doc if not rel else doc.parent / rel.split("?", 1)[0]
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target} (no such heading)")
    assert links or doc.name != "README.md", "the README links to nothing (the link pattern is stale)"
    assert not broken, f"{doc.relative_to(REPO)}: broken links {broken}"


def _tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in ``text`` as rows of stripped cells, the header first (the ``---`` row dropped)."""
    tables, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(cells)
        elif rows:
            tables.append(rows)
            rows = []
    return tables


def _readme_section(heading: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"README has no section '## {heading}'"
    return m.group(1)


def test_readme_answer_table_is_quoted_from_the_answer_file_it_names():
    """Each row of the README's answer table is a whole row of a table, with the same header, of the committed
    ``answer.md`` the section names (so no cell is quoted from another row)."""
    section = _readme_section("Does dropping the memorized examples help?")
    named = re.findall(r"benchmarks/[\w./-]*answer\.md", section)
    assert named, "the answer section names no committed answer.md"
    source = REPO / named[0]
    tables = _tables(section)
    assert len(tables) == 1 and len(tables[0]) > 1, "the answer section should hold one small table"
    header, *rows = tables[0]
    quoted = {tuple(r) for t_header, *t_rows in _tables(source.read_text(encoding="utf-8")) if t_header == header
              for r in t_rows}
    wrong = [" | ".join(r) for r in rows if tuple(r) not in quoted]
    assert not wrong, f"README rows not found in {named[0]}: {wrong}"


def test_readme_measure_table_is_quoted_from_detection_csv():
    """The AUROCs of 'Which measure for what' are the ``auroc_mean`` of the named ``detection.csv`` files, in
    the order digits / MNIST-1D / Fashion-MNIST, to 3 decimals."""
    section = _readme_section("Which measure for what")
    assert "benchmarks/open_question/v2/{digits,mnist1d,fashion-mnist}-fit/detection.csv" in section
    auroc = {}
    for ds in ("digits", "mnist1d", "fashion-mnist"):
        path = REPO / "benchmarks" / "open_question" / "v2" / f"{ds}-fit" / "detection.csv"
        with open(path, newline="") as fh:
            for r in csv.DictReader(fh):
                auroc[(ds, r["corruption"], r["measure"])] = f"{float(r['auroc_mean']):.3f}"
    (header, *rows), = _tables(section)
    noises = [re.search(r"`(rand[^`]+)`", h).group(1) for h in header[1:3]]
    assert noises == ["randY:0.2", "randX:0.2"], header
    wrong, checked = [], 0
    for r in rows:
        measure = r[0].strip("`")
        for noise, cell in zip(noises, r[1:3]):
            want = " / ".join(auroc[(ds, noise, measure)] for ds in ("digits", "mnist1d", "fashion-mnist"))
            checked += 1
            if cell != want:
                wrong.append(f"{measure} {noise}: README {cell}, detection.csv {want}")
    assert checked >= 10 and not wrong, wrong


def test_readme_memorization_column_is_quoted_from_the_memorization_benchmark():
    """The memorization column of 'Which measure for what' is the mean over scoring seeds of the clean rows'
    ``spearman`` in ``benchmarks/memorization/results.csv``, digits / MNIST-1D / Fashion-MNIST 14x14, to 3 decimals."""
    section = _readme_section("Which measure for what")
    assert "benchmarks/memorization/results.csv" in section
    spearman = {}
    with open(REPO / "benchmarks" / "memorization" / "results.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["noise"] == "none" and r["kind"] == "measure":
                spearman.setdefault((r["dataset"], r["measure"]), []).append(float(r["spearman"]))
    (header, *rows), = _tables(section)
    col = header.index("memorization, clean (`memorization`)")
    wrong = []
    for r in rows:
        measure = r[0].strip("`")
        per_ds = [spearman[(ds, measure)] for ds in ("digits", "mnist1d", "fashion-mnist-14x14")]
        means = [sum(v) / len(v) for v in per_ds]
        want = " / ".join(f"{m:.3f}" for m in means)
        if r[col] != want:
            wrong.append(f"{measure}: README {r[col]}, results.csv {want}")
    assert len(rows) >= 6 and not wrong, wrong


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
