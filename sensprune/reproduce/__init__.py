"""``sensprune reproduce``: the experiments of Arpit et al., "A Closer Look at Memorization in Deep
Networks" (ICML 2017, arXiv 1706.05394 v2), at CPU scale.

Each experiment module has ``TITLE`` and ``run(out, scale, seed, progress) -> Outcome``; it trains
through the one training loop (:func:`sensprune.train.loop.train`, measures as hooks) over several seeds,
writes one PNG and one CSV, and decides its verdict from a 95% interval of the effect
(:mod:`sensprune.reproduce.verdict`): ``reproduced``, ``not reproduced at this scale (reason)`` or
``inconclusive (CI overlaps 0)``, by the rule stated in its docstring and printed beside the verdict.
:func:`run_reproduce` runs the chosen experiments in a staging folder and publishes it when all are done.
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
from sensprune.config import check_seed_range
from sensprune.errors import ValidationError
from sensprune.io import (atomic_write_bytes, atomic_write_text, base_meta, is_artifact, prepare_out, read_json,
                          staged_dir, write_json)
from sensprune.reproduce.common import STAND_IN, Outcome, Scale
from sensprune.reproduce.settings import SCALES, Settings, load_settings, provenance
from sensprune.reproduce.verdict import VERDICT_WORDS

__all__ = ["EXPERIMENTS", "SCALES", "VERDICT_WORDS", "check_seed_span", "parse_only", "resolve_scale",
           "run_reproduce"]

#: number -> module (each with TITLE and run)
EXPERIMENTS = {1: "easy_hard", 2: "gini", 3: "per_class", 4: "csr_noise", 5: "dropout", 6: "epochs"}
#: number -> the Scale field counting its runs, seeded ``seed .. seed+count-1`` (experiment 1: its one-epoch runs)
SEED_COUNTS = {1: "easy_runs", 2: "sens_seeds", 3: "sens_seeds", 4: "csr_seeds", 5: "reg_seeds", 6: "fit_seeds"}


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


def verdict_lines(number: int, outcome: Outcome, settings: str = "") -> list[str]:
    """``"N. TITLE: **WORD** (detail) — evidence. Rule: …. CSV: …. Settings: …."`` and one indented line per
    extra row (each ending with the settings file and commit, ``settings``, when given)."""
    v = outcome.verdict
    detail = f" ({v.detail})" if v.detail else ""
    tail = f" Settings: {settings}." if settings else ""
    lines = [f"{number}. {_module(number).TITLE}: **{v.word}**{detail} — {outcome.evidence}. "
             f"Rule: {outcome.rule} CSV: {outcome.rows}.{tail}"]
    for name, ev, text in outcome.extra:
        d = f" ({ev.detail})" if ev.detail else ""
        lines.append(f"    - {name}: **{ev.word}**{d} — {text}.{tail}")
    return lines


def check_seeds(seeds) -> int | None:
    """``--seeds``: None (the scale's own) or an integer >= 1."""
    if seeds is None:
        return None
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValidationError(f"--seeds must be an integer >= 1; got {seeds!r}.")
    return seeds


def resolve_scale(scale: str | Scale = "full", seeds: int | None = None,
                  settings: str | Path | None = None) -> tuple[Settings, Scale]:
    """The settings file read and the Scale of a run: ``scale`` by name (or as given), with ``seeds`` seeds in
    experiments 2-6 when given. An unknown scale or a bad ``seeds`` is a ValidationError."""
    st = load_settings(settings)
    if isinstance(scale, str) and scale not in st.scales:
        raise ValidationError(f"Unknown scale {scale!r}; choose one of {', '.join(st.scales)} (in {st.path}).")
    sc = st.scales[scale] if isinstance(scale, str) else scale
    k = check_seeds(seeds)
    return st, sc if k is None else sc.with_seeds(k)


def check_seed_span(seed, sc: Scale, only: list[int], name: str = "seed") -> int:
    """``seed`` as an int when every run of the experiments ``only`` at scale ``sc`` has a seed in 0..MAX_SEED:
    an experiment of n runs seeds them ``seed .. seed+n-1`` (:func:`sensprune.config.check_seed_range`, with n
    the most runs of one chosen experiment). ``name`` is ``"--seed"`` for the CLI."""
    n = max(getattr(sc, SEED_COUNTS[k]) for k in only)
    return check_seed_range(seed, n, name, "seeds per experiment")


def _reproduce_or_empty(out: Path) -> None:
    """--force replaces only an earlier ``reproduce`` folder (or an empty one), not another sensprune output."""
    if out.is_dir() and is_artifact(out):
        kind = read_json(out / "meta.json").get("kind")
        if kind != "reproduce":
            raise ValidationError(f"{out} holds a sensprune {kind!r} output, not a reproduce folder; "
                                  "choose another --out.")


def _machine() -> dict:
    return {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(), "device": "cpu", "python": sys.version.split()[0]}


def run_reproduce(out: str | Path, *, scale: str | Scale = "full", only: list[int] | None = None, seed: int = 0,
                  seeds: int | None = None, force: bool = False, progress: bool = True,
                  command: str | None = None, settings: str | Path | None = None) -> dict:
    """Run the chosen experiments into ``out``; returns ``meta`` (also written to ``out/meta.json``).

    Parameters
    ----------
    out : path
        Output folder; must not exist unless ``force``, and then only an earlier sensprune output is
        replaced (once every experiment is done; a README.md in it is kept).
    scale : a scale of the settings file ("tiny", "quick", "full") or a Scale
    only : list of int, optional
        Experiment numbers (default: all six).
    seed : int
        Base seed: run r of an experiment uses ``seed + r``; corruptions use ``seed``. The last run's seed must
        be at most :data:`sensprune.config.MAX_SEED` (:func:`check_seed_span`).
    seeds : int, optional
        Seeds per experiment 2-6 (default: the scale's, 3-5); experiment 1's seeds are its one-epoch runs.
    settings : path, optional
        The settings file (default ``benchmarks/paper/settings.toml``, :mod:`sensprune.reproduce.settings`);
        every verdict line names it and the git commit it was read at.
    """
    out = Path(out)
    st, sc = resolve_scale(scale, seeds, settings)
    only = list(EXPERIMENTS) if only is None else only
    bad = [n for n in only if n not in EXPERIMENTS]
    if bad or not only:
        raise ValidationError(f"Unknown experiment number(s) {bad or only}; choose from 1 to {len(EXPERIMENTS)}.")
    seed = check_seed_span(seed, sc, only)  # every run's seed, before anything is written
    prepare_out(out, force=force)  # an existing folder needs --force, and must be a sensprune output ...
    _reproduce_or_empty(out)  # ... of kind reproduce
    t_all = time.perf_counter()
    with staged_dir(out) as stage:  # the old folder stays until every experiment is done
        meta = _run_all(stage, sc, only, seed, progress, command, t_all, st)
        _carry_over(out, stage, CARRIED)
    return meta


CARRIED = ("README.md",)  # notes a user keeps beside the results (benchmarks/paper/README.md) survive --force


def _carry_over(out: Path, stage: Path, names) -> None:
    for name in names:
        if (out / name).is_file() and not (stage / name).exists():
            atomic_write_bytes(stage / name, (out / name).read_bytes())


def _run_all(stage: Path, sc: Scale, only, seed, progress, command, t_all, st) -> dict:
    where = provenance(st.path)
    meta = {**base_meta("reproduce"),
            "paper": "Arpit et al., A Closer Look at Memorization in Deep Networks, ICML 2017 (arXiv 1706.05394)",
            "command": command, "version": __version__,
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": _machine(),
            "config": {"scale": asdict(sc), "seed": seed, "only": only, "settings": where,
                       "changes": list(st.changes)}, "stand_in": STAND_IN,
            "load_average_start": _load(), "experiments": {}, "wall_time_s": None}
    lines: list[str] = []
    for number in only:
        t0 = time.perf_counter()
        outcome = _module(number).run(stage, sc, seed, progress)
        exp_lines = verdict_lines(number, outcome, f"{where} [scale.{sc.name}]")
        lines.extend(exp_lines)
        meta["experiments"][str(number)] = {
            "title": _module(number).TITLE, "verdict": outcome.word, "verdict_label": outcome.verdict.label,
            "rule": outcome.rule, "lines": exp_lines, "numbers": outcome.numbers, "files": outcome.files,
            "config": outcome.config, "wall_time_s": round(time.perf_counter() - t0, 2), "load_average_end": _load()}
        meta["wall_time_s"] = round(time.perf_counter() - t_all, 2)
        _write(stage, meta, lines, sc, st.changes)
    return meta


def _load() -> list[float] | None:
    """1-, 5- and 15-minute load averages (the machine is shared; timings depend on them)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _changes(changes, only) -> str:
    """The settings changed after a result was seen (the settings file's ``[[changes]]``), for verdicts.md."""
    rows = [c for c in changes if int(c["experiment"]) in only]
    if not rows:
        return ""
    items = [f"- exp {c['experiment']}, `{c['setting']}` {c['from']} → {c['to']}: earlier result "
             f"{c['earlier_result']}; {c['reason']}." for c in rows]
    return "\n\n## Settings changed after a result was seen\n\n" + "\n".join(items)


def _write(out: Path, meta: dict, lines: list[str], sc: Scale, changes=()) -> None:
    head = (f"# Reproduction of Arpit et al. 2017 (arXiv 1706.05394) — scale `{sc.name}`\n\n"
            f"sensprune {meta['version']}, {meta['date']}, {meta['machine']['cpu_count']} CPU cores "
            f"({meta['machine']['torch_threads']} torch thread(s)), total wall time {meta['wall_time_s']:.0f} s, "
            f"load average {meta['load_average_start']} at the start.\n"
            f"{STAND_IN}; the other stand-ins are listed in `sensprune/reproduce/common.py`.\n"
            "Each verdict compares a 95% interval of the effect (positive = the paper's direction) with 0: "
            "above 0 → reproduced, below 0 → not reproduced at this scale, containing 0 → inconclusive. "
            "Intervals are paired t-intervals over seeds unless the line says otherwise "
            "(sensprune.benchmark.stats). "
            f"Settings: {meta['config']['settings']} [scale.{sc.name}], fixed before the run; exps 2-3 count only "
            f"runs with training accuracy >= {sc.rules.fit_threshold:g}.\n\n")
    only = [int(k) for k in meta["experiments"]]
    atomic_write_text(out / "verdicts.md", head + "\n".join(lines) + _changes(changes, only) + "\n")
    write_json(out / "meta.json", meta)
