"""The README is true when pasted (issue 13): its command blocks run, in order, on a fresh clone.

* Default run: a static check of every ``sensprune`` line (each parses with the real options; no ``--out`` is
  written twice without ``--force``; every folder a command or a Python block reads was written by an earlier
  command; every ``--config`` exists), then the cheap commands run for real in a fresh folder: the first
  ``score`` (with ``--epochs 1 --seeds 1`` appended, the last value wins, to keep it cheap), then every
  ``info``, ``prune`` and ``report`` line and the Python blocks that only read their outputs, in README order.
* ``-m slow``: every block as written, in order, except ``make`` targets (timed separately), ``pip install``
  lines (the install itself), SLURM and ``torchrun`` lines, ``. .venv/bin/activate`` and the full
  open-question grid (hours on 2 cores).
"""

import fnmatch
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from sensprune.cli import cli

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BIN = Path(sys.executable).parent
SKIP = (re.compile(r"^make\b"), re.compile(r"^pip install\b"), re.compile(r"^\. \.venv/bin/activate"),
        re.compile(r"\$SLURM"), re.compile(r"^torchrun\b"))
HOURS = re.compile(r"bench .*--config benchmarks/open_question/(digits|mnist1d|fashion-mnist)\.toml")
READS_ONLY = ("info", "prune", "report", "bench-merge")  # commands that train nothing


def steps():
    """[(kind, text, line number)] of the README's bash lines (continuations joined) and Python blocks."""
    out, lines, i = [], README.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        m = re.match(r"^```(\w+)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        if m.group(1) == "python":
            out.append(("python", "\n".join(body), start + 1))
        elif m.group(1) == "bash":
            logical, first = "", None
            for k, ln in enumerate(body):
                first = first if logical else start + 1 + k
                if ln.rstrip().endswith("\\"):
                    logical += ln.rstrip()[:-1] + " "
                    continue
                logical += ln
                text = _strip_comment(logical).strip()
                if text:
                    out.append(("bash", text, first))
                logical = ""
    return out


def _strip_comment(line):
    """Drop a trailing ``# comment`` (outside quotes); a line starting with # is all comment."""
    try:
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split, lex.commenters = True, "#"
        list(lex)
    except ValueError:
        return line
    cut = re.search(r"(^|\s)#", line)
    return line[:cut.start()] if cut else line


def _runnable(text):
    return not any(p.search(text) for p in SKIP)


def _sensprune_argv(text):
    """The argv of each ``sensprune ...`` command in a shell line (``for v in a b; do ...; done`` expanded)."""
    loop = re.match(r"^for (\w+) in ([^;]+); do (.*?)\s*[;&]\s*done", text)
    if loop:
        var, values, body = loop.groups()
        return [argv for v in values.split() for argv in _sensprune_argv(body.replace(f"${var}", v))]
    out = []
    for part in re.split(r";|&&|&(?!&)", text):
        words = shlex.split(part)
        if words[:1] == ["sensprune"]:
            out.append(words[1:])
    return out


def _option(argv, name):
    return argv[argv.index(name) + 1] if name in argv else None


def _inputs(argv):
    cmd, rest = argv[0], argv[1:]
    if cmd == "prune":
        return [_option(argv, "--scores")]
    if cmd in ("info", "report"):
        return [a for a in rest if not a.startswith("-")][:1]
    if cmd == "bench-merge":
        return [a for a in rest[:rest.index("--out")] if not a.startswith("-")]
    if cmd == "bench" and "--selection" in rest:  # --selection DIR [DIR ...]
        after = rest[rest.index("--selection") + 1:]
        return [a for a in after[:next((k for k, a in enumerate(after) if a.startswith("-")), len(after))]]
    return []


@pytest.fixture
def clone(tmp_path):
    """A fresh folder that sees the repository's committed benchmark configs, as a fresh clone would."""
    (tmp_path / "benchmarks").symlink_to(REPO / "benchmarks")
    return tmp_path


def test_readme_commands_parse_do_not_collide_and_read_what_was_written(clone, monkeypatch):
    monkeypatch.chdir(clone)  # each --out is made as an empty folder, so path checks see what exists by then
    written, problems = [], []
    for kind, text, line in steps():
        if kind == "python":
            for path in re.findall(r"""["'](runs/[^"']+)["']""", text):
                if "save(" in text and f'save("{path}")' in text:
                    written.append(path)
                elif not any(path == w or path.startswith(w + "/") for w in written):
                    problems.append(f"README:{line}: Python reads {path}, which no earlier command writes")
            continue
        if not _runnable(text) or "$SLURM" in text:
            continue
        for argv in _sensprune_argv(text):
            cmd = cli.get_command(None, argv[0])
            try:
                cmd.make_context(argv[0], list(argv[1:]), resilient_parsing=False)
            except click.ClickException as exc:
                problems.append(f"README:{line}: sensprune {argv[0]} does not parse: {exc.format_message()}")
                continue
            for inp in _inputs(argv):
                if not any(fnmatch.fnmatch(w, inp) or w == inp for w in written):
                    problems.append(f"README:{line}: {inp} is read before any command writes it")
            config = _option(argv, "--config")
            if config and not (REPO / config).is_file():
                problems.append(f"README:{line}: --config {config} does not exist")
            out = _option(argv, "--out")
            if out:
                if out in written and "--force" not in argv:
                    problems.append(f"README:{line}: --out {out} was written by an earlier command")
                written.append(out)
                Path(out).mkdir(parents=True, exist_ok=True)
    assert not problems, "\n".join(problems)


def _run(kind, text, cwd, timeout=1800):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "TQDM_DISABLE": "1"}
    argv = ["bash", "-euc", text] if kind == "bash" else [sys.executable, "-c", text]
    r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{kind} failed ({r.returncode}):\n{text}\n--- stderr ---\n{r.stderr[-3000:]}"
    return r


def test_readme_cheap_commands_run_in_order(clone):
    ran, first_score = [], True
    for kind, text, line in steps():
        if kind == "python":
            reads = re.findall(r"""["'](runs/[^"']+)["']""", text)
            if reads and all((clone / p).exists() for p in reads) and "sp.score" not in text:
                _run(kind, text, clone)
                ran.append(line)
            continue
        if not _runnable(text):
            continue
        argvs = _sensprune_argv(text)
        if len(argvs) != 1:
            continue
        cmd = argvs[0][0]
        if cmd == "score" and first_score:
            _run(kind, text + " --epochs 1 --seeds 1 --quiet", clone)
            first_score = False
            ran.append(line)
        elif cmd in READS_ONLY and all((clone / p).exists() for p in _inputs(argvs[0])):
            _run(kind, text, clone)
            ran.append(line)
    # the tour's score, info, two prune lines and report, and the two Python blocks that read the prune folder
    assert len(ran) >= 7, ran


@pytest.mark.slow
def test_readme_every_block_runs_in_order(clone):
    skipped = []  # outputs of skipped lines: a line that reads one is skipped too
    for kind, text, line in steps():
        if kind == "bash":
            argvs = _sensprune_argv(text) if _runnable(text) else []
            reads = [p for a in argvs for p in _inputs(a)]
            if not _runnable(text) or HOURS.search(text) or any(p in skipped for p in reads):
                skipped += [_option(a, "--out") for a in argvs]
                continue
        _run(kind, text, clone, timeout=3600)
