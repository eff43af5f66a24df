"""``sensprune reproduce``: the experiments of Arpit et al., "A Closer Look at Memorization in Deep
Networks" (ICML 2017, arXiv 1706.05394), at CPU scale.

Each experiment module has ``TITLE`` and ``run(out, scale, seed, progress) -> Outcome``; it trains
through the one training loop (:func:`sensprune.train.train`, measures as hooks), writes one PNG and
one CSV, and decides its verdict — ``reproduced``, ``not reproduced`` or ``inconclusive`` — from
the numbers by the rule stated in its docstring. :func:`run_reproduce` runs the chosen experiments
and keeps ``verdicts.md`` and ``meta.json`` up to date after each one (a killed run keeps what
finished).
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from sensprune import __version__
from sensprune.errors import ValidationError
from sensprune.io import atomic_write_bytes, atomic_write_text, base_meta, prepare_out, staged_dir, write_json
from sensprune.reproduce.common import SCALES, VERDICT_WORDS, Outcome, Scale

__all__ = ["EXPERIMENTS", "SCALES", "VERDICT_WORDS", "parse_only", "run_reproduce"]

#: number -> module (each with TITLE and run)
EXPERIMENTS = {1: "easy_hard", 2: "gini", 3: "per_class", 4: "csr_noise", 5: "dropout", 6: "epochs"}


def parse_only(value: str | None) -> list[int]:
    """``"1,3"`` → [1, 3]; None or empty → all six. Anything else is a ValidationError."""
    if value is None or not str(value).strip():
        return list(EXPERIMENTS)
    out = []
    for part in str(value).split(","):
        part = part.strip()
        if not part.isdigit() or int(part) not in EXPERIMENTS:
            raise ValidationError(f"--only takes comma-separated experiment numbers from 1 to {len(EXPERIMENTS)} "
                                  f"(e.g. 1,3); got {value!r}.")
        out.append(int(part))
    return sorted(set(out))


def _module(number: int):
    return importlib.import_module(f"sensprune.reproduce.{EXPERIMENTS[number]}")


def verdict_line(number: int, outcome: Outcome) -> str:
    """``"N. TITLE: WORD — numbers"``, one line."""
    return f"{number}. {_module(number).TITLE}: **{outcome.word}** — {outcome.sentence}."


def _machine() -> dict:
    return {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(), "device": "cpu", "python": sys.version.split()[0]}


def run_reproduce(out: str | Path, *, scale: str | Scale = "full", only: list[int] | None = None, seed: int = 0,
                  force: bool = False, progress: bool = True, command: str | None = None) -> dict:
    """Run the chosen experiments into ``out``; returns ``meta`` (also written to ``out/meta.json``).

    Parameters
    ----------
    out : path
        Output folder; must not exist unless ``force``, and then only an earlier sensprune output is
        replaced (once every experiment is done; a README.md in it is kept).
    scale : "tiny", "quick", "full" or a Scale
    only : list of int, optional
        Experiment numbers (default: all six).
    seed : int
        Base seed: run r of an experiment uses ``seed + r``; corruptions use ``seed``.
    """
    out = Path(out)
    sc = SCALES[scale] if isinstance(scale, str) else scale
    only = list(EXPERIMENTS) if only is None else only
    bad = [n for n in only if n not in EXPERIMENTS]
    if bad or not only:
        raise ValidationError(f"Unknown experiment number(s) {bad or only}; choose from 1 to {len(EXPERIMENTS)}.")
    prepare_out(out, force=force)  # --force replaces only an earlier reproduce (or other sensprune) folder
    t_all = time.perf_counter()
    with staged_dir(out) as stage:  # the old folder stays until every experiment is done
        meta = _run_all(stage, sc, only, seed, progress, command, t_all)
        _carry_over(out, stage, CARRIED)
    return meta


CARRIED = ("README.md",)  # notes a user keeps beside the results (benchmarks/paper/README.md) survive --force


def _carry_over(out: Path, stage: Path, names) -> None:
    for name in names:
        if (out / name).is_file() and not (stage / name).exists():
            atomic_write_bytes(stage / name, (out / name).read_bytes())


def _run_all(stage: Path, sc: Scale, only, seed, progress, command, t_all) -> dict:
    meta = {**base_meta("reproduce"),
            "paper": "Arpit et al., A Closer Look at Memorization in Deep Networks, ICML 2017 (arXiv 1706.05394)",
            "command": command, "version": __version__,
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": _machine(),
            "config": {"scale": asdict(sc), "seed": seed, "only": only}, "experiments": {}, "wall_time_s": None}
    lines: list[str] = []
    for number in only:
        t0 = time.perf_counter()
        outcome = _module(number).run(stage, sc, seed, progress)
        line = verdict_line(number, outcome)
        lines.append(line)
        meta["experiments"][str(number)] = {
            "title": _module(number).TITLE, "verdict": outcome.word, "line": line, "numbers": outcome.numbers,
            "files": outcome.files, "config": outcome.config, "wall_time_s": round(time.perf_counter() - t0, 2)}
        meta["wall_time_s"] = round(time.perf_counter() - t_all, 2)
        _write(stage, meta, lines, sc)
    return meta


def _write(out: Path, meta: dict, lines: list[str], sc: Scale) -> None:
    head = (f"# Reproduction of Arpit et al. 2017 (arXiv 1706.05394) — scale `{sc.name}`\n\n"
            f"sensprune {meta['version']}, {meta['date']}, {meta['machine']['cpu_count']} CPU cores "
            f"({meta['machine']['torch_threads']} torch thread(s)), total wall time {meta['wall_time_s']:.0f} s.\n"
            "Verdicts are computed from the numbers by the rule in each experiment's module docstring "
            "(`sensprune/reproduce/`).\n\n")
    atomic_write_text(out / "verdicts.md", head + "\n".join(lines) + "\n")
    write_json(out / "meta.json", meta)
