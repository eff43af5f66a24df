"""Stage 3 — bench: does pruning by a measure help? A grid of paired retrains.

The grid is planned as a deterministic list of *units* ``(dataset, corruption, seed)``. One unit:

1. loads the dataset, corrupts its training split with the unit seed (the test split stays clean);
2. runs one warmup (:func:`sensprune.scoring.stage.score`, seed = unit seed) on the corrupted training
   set for the grid's measures, plus the ``cv_confidence`` baseline (K-fold out-of-sample
   probability of the given label; cleanlab's confident-learning input) when asked for or when
   noise is injected;
3. measures how well each score detects the corrupted examples (AUROC, AP, precision@k);
4. retrains from scratch, with seed = unit seed (so every selection shares init and batch order:
   a mask over the shared permutation — the differences are paired), the ``full`` set, the
   ``oracle`` (corrupted examples removed), and for each fraction ``random`` and every
   measure × rule, then evaluates on the clean test set. A *reweighting arm* (rule
   ``reweight:inverse-rank``, ``reweight:softmax`` or ``reweight:clip``) keeps every example and
   trains with the per-example loss weights of ``sensprune prune --reweight``
   (:func:`sensprune.pruning.stage.reweight`); it is compared with ``full``.

Budgets (``[bench] budget``): ``epochs`` (every retrain runs ``train.epochs``), ``steps`` (a pruned
retrain runs about as many SGD steps as the full one) or ``fit`` (train until the eval-mode accuracy
on the retrain's own, possibly noisy, training examples reaches ``fit_threshold``, or ``max_epochs``,
with the learning-rate schedule ``fit_schedule``: constant by default, cosine/step span ``max_epochs``).
``results.csv`` records the budget, the epochs used and, under ``fit``, whether the threshold was reached.

A unit's rows go atomically to ``DIR/units/<key>.csv`` (and ``<key>.detection.csv``) when it is
done, so ``resume`` skips finished units; ``jobs`` runs units in worker processes; ``shard=(i, n)``
runs ``units[i::n]``. ``DIR/results.csv`` etc. are rebuilt from the unit files in plan order, so
they do not depend on jobs, shards or interruptions (only ``wall_time_s`` does).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sensprune.benchmark.config import DEFAULT_MARGIN, BenchConfig, config_from_json
from sensprune.benchmark.plan import (DETECTION_COLUMNS, RESULT_COLUMNS, Unit, describe_training, measure_meta,
                                      plan_retrains, plan_units)
from sensprune.benchmark.unit import preflight, run_unit
from sensprune.errors import ValidationError
from sensprune.io import (atomic_write_text, base_meta, check_not_input, diff_keys, is_artifact, publish_dir, read_json,
                          staging_dir, write_csv, write_json)

CONFIG_JSON = "config.json"


def unit_paths(out: Path, unit: Unit) -> tuple[Path, Path]:
    """The unit's result file (its presence = unit done) and detection file."""
    return out / "units" / f"{unit.key}.csv", out / "units" / f"{unit.key}.detection.csv"


def _run_and_write(args) -> int:
    cfg, unit, out = args
    rows, det = run_unit(cfg, unit)
    _write_unit(out, unit, rows, det)
    return len(rows)


def _write_unit(out: Path, unit: Unit, rows: list[dict], det: list[dict]) -> None:
    res_path, det_path = unit_paths(out, unit)
    write_csv(det_path, DETECTION_COLUMNS, ([r.get(c, "") for c in DETECTION_COLUMNS] for r in det))
    write_csv(res_path, RESULT_COLUMNS, ([r.get(c, "") for c in RESULT_COLUMNS] for r in rows))


def prepare_dir(cfg: BenchConfig, out: Path, *, resume: bool, force: bool) -> Path:
    """Check ``out`` and return the folder to work in, holding ``config.json``.

    A new folder is ``out`` itself. An existing grid needs ``resume`` (same config: work in ``out``)
    or ``force``: then the new grid is built in a staging folder beside ``out`` and replaces it only
    when complete (:func:`finish_dir`), so a failed or killed ``--force`` run leaves the old grid intact.
    """
    path = out / CONFIG_JSON
    replace_old = False
    if path.exists():
        if force:
            if not _replaceable_grid(out):  # refused now, not after the whole grid has run
                raise ValidationError(f"{out} holds a config.json but is not a sensprune output; --force replaces "
                                      "only sensprune's own folders. Choose another --out.")
            replace_old = True
        elif not resume:
            raise ValidationError(f"{out} already holds a bench grid; pass --resume to continue it or --force "
                                  "to start over.")
        else:
            # resolve the stored config, so keys added with defaults since it was written compare equal
            have = config_from_json(read_json(path)).to_dict()
            if have != cfg.to_dict():
                raise ValidationError(f"Cannot resume {out}: it was run with another config (differs in: "
                                      f"{', '.join(diff_keys(have, cfg.to_dict()))}); pass --force to start over.")
    elif out.exists() and not out.is_dir():
        raise ValidationError(f"{out} exists and is not a folder; choose another --out.")
    elif out.exists() and any(out.iterdir()):
        if not (force and is_artifact(out)):  # --force never replaces a folder sensprune did not write
            raise ValidationError(f"{out} exists and is not a bench folder; choose another --out"
                                  + (" or pass --force." if is_artifact(out) else "."))
        replace_old = True
    work = staging_dir(out) if replace_old else out
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / CONFIG_JSON, cfg.to_dict())
    return work


def _replaceable_grid(folder: Path) -> bool:
    """A sensprune output (``meta.json`` says so), or a grid from before bench wrote ``meta.json``."""
    return is_artifact(folder) or ((folder / CONFIG_JSON).is_file() and (folder / "units").is_dir())


def finish_dir(work: Path, out: Path) -> None:
    """Publish a grid built in a staging folder over ``out`` (no-op when it was built in place)."""
    if work.resolve() != out.resolve():
        publish_dir(work, out, replaceable=_replaceable_grid)


def run_grid(cfg: BenchConfig, out: str | Path, *, jobs: int = 1, shard: tuple[int, int] = (0, 1),
             resume: bool = False, force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run (the shard ``i/n`` of) the grid into ``out`` and write the aggregate files.

    Returns the dict of :func:`aggregate` (paths and counts).
    """
    from sensprune.progress import progress_bar, use_thread_lock

    out = Path(out)
    i, n = shard
    if not (isinstance(n, int) and n >= 1 and isinstance(i, int) and 0 <= i < n):
        raise ValidationError(f"--shard must be i/n with 0 <= i < n; got {i}/{n}.")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValidationError(f"--jobs must be an integer >= 1; got {jobs!r}.")
    units = plan_units(cfg)[i::n]
    preflight(cfg)
    work = prepare_dir(cfg, out, resume=resume, force=force)
    try:
        write_json(work / "shard.json", {"shard": [i, n], "units": [u.key for u in units]})
        todo = [u for u in units if not unit_paths(work, u)[0].exists()]
        total = sum(len(plan_retrains(cfg, u)) for u in todo)
        bar = progress_bar(total=total, desc="bench retrains", enabled=progress, dynamic_ncols=True)
        _exit_on_sigterm()  # so a killed grid also stops its worker processes (finished units stay)
        try:
            if jobs == 1 or len(todo) <= 1:
                for u in todo:
                    rows, det = run_unit(cfg, u, on_retrain=lambda: bar.update(1))
                    _write_unit(work, u, rows, det)
            else:
                import multiprocessing as mp

                use_thread_lock()  # tqdm's default multiprocessing lock leaks a semaphore under spawn
                with mp.get_context("spawn").Pool(min(jobs, len(todo))) as pool:
                    for k in pool.imap_unordered(_run_and_write, [(cfg, u, work) for u in todo]):
                        bar.update(k)
        finally:
            bar.close()
        res = aggregate(cfg, work, units)
        finish_dir(work, out)
    except BaseException:
        if work.resolve() != out.resolve():  # a --force grid's stage, never resumable: nothing left behind
            shutil.rmtree(work, ignore_errors=True)
        raise
    return {**res, "out": out}


def _exit_on_sigterm() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(143)))


def merge(dirs: Sequence[str | Path], out: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Join shard folders (same config) into ``out`` and recompute the aggregate files over the full plan."""
    dirs, out = [Path(d) for d in dirs], Path(out)
    if not dirs:
        raise ValidationError("bench-merge needs at least one shard folder.")
    configs = []
    for d in dirs:
        if not (d / CONFIG_JSON).exists():
            raise ValidationError(f"{d} is not a bench folder (no {CONFIG_JSON}).")
        configs.append(config_from_json(read_json(d / CONFIG_JSON)).to_dict())
    for d, c in zip(dirs[1:], configs[1:]):
        if c != configs[0]:
            raise ValidationError(f"{d} was run with another config than {dirs[0]}; only shards of one grid merge.")
    cfg = config_from_json(configs[0])
    check_not_input(out, dirs)  # the shards are inputs: the merged grid goes to a folder of its own
    work = prepare_dir(cfg, out, resume=True, force=force)
    for d in dirs:
        for f in sorted((d / "units").glob("*.csv")) if (d / "units").is_dir() else []:
            dest = work / "units" / f.name
            if dest.resolve() != f.resolve():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)
    res = aggregate(cfg, work, plan_units(cfg))
    finish_dir(work, out)
    return {**res, "out": out}


def aggregate(cfg: BenchConfig, out: Path, units) -> dict[str, Any]:
    """Concatenate the unit files of ``units`` (plan order) and write results/summary/detection/verdict."""
    out = Path(out)
    rows, det, missing = [], [], []
    for u in units:
        res_path, det_path = unit_paths(out, u)
        if not res_path.exists():
            missing.append(u.key)
            continue
        rows += read_rows(res_path)
        if det_path.exists():
            det += read_rows(det_path)
    header = f"Grid: datasets {', '.join(cfg.grid.datasets)} (subsample {cfg.data.subsample or 'none'}); " + \
        describe_training(cfg) + f"; seeds {list(cfg.grid.seeds)}."
    if missing:
        header += f"\n\n**Incomplete:** {len(missing)} unit(s) not run yet: {', '.join(missing)}."
    meta = {"config": cfg.to_dict(), "units": [u.key for u in units], "missing_units": missing,
            "measures": measure_meta(cfg)}
    arms_of = tuple(m for m in cfg.score_measures if m == "memorization")  # stated arm by arm in verdict.md
    return {**write_outputs(out, rows, det, header=header, meta=meta, margin=cfg.bench.margin, arms_of=arms_of),
            "missing_units": missing}


def write_outputs(out: Path, rows: list[dict], det: list[dict], *, header: str, meta: dict[str, Any],
                  question: str = "loss_sensitivity", margin: float = DEFAULT_MARGIN,
                  arms_of: Sequence[str] = ()) -> dict[str, Any]:
    """Write results.csv, detection_per_seed.csv, summary.csv, detection.csv, verdict.md and meta.json;
    ``margin`` is the equivalence margin of the three-way call (``[bench] margin``), ``arms_of`` the measures
    whose every arm verdict.md states (:func:`sensprune.benchmark.verdict.verdict`)."""
    from sensprune.benchmark.stats import (CALLS, DETECTION_SUMMARY_COLUMNS, FDR, SUMMARY_COLUMNS, summarize,
                                           summarize_detection)
    from sensprune.benchmark.verdict import verdict

    write_csv(out / "results.csv", RESULT_COLUMNS, ([r.get(c, "") for c in RESULT_COLUMNS] for r in rows))
    write_csv(out / "detection_per_seed.csv", DETECTION_COLUMNS,
              ([r.get(c, "") for c in DETECTION_COLUMNS] for r in det))
    summary, dsum = summarize(rows, margin=margin), summarize_detection(det)
    write_csv(out / "summary.csv", SUMMARY_COLUMNS, ([r[c] for c in SUMMARY_COLUMNS] for r in summary))
    write_csv(out / "detection.csv", DETECTION_SUMMARY_COLUMNS,
              ([r[c] for c in DETECTION_SUMMARY_COLUMNS] for r in dsum))
    text = verdict(summary, dsum, header=header, question=question, margin=margin, arms_of=arms_of)
    atomic_write_text(out / "verdict.md", text)
    n_failed = sum(r["status"] != "ok" for r in rows)
    tested = [r for r in summary if np.isfinite(r["q_bh"])]
    write_json(out / "meta.json", {
        **base_meta("bench"), **meta, "retrain_rows": len(rows), "failed_rows": n_failed,
        "files": ["results.csv", "summary.csv", "detection.csv", "detection_per_seed.csv", "verdict.md"],
        "statistics": "per cell mean, std, n and 95% Student-t CI; paired per-seed differences vs random (same "
                      "fraction, or the random selection matched to a user selection) and vs full: paired t-test "
                      "(scipy.stats.ttest_rel), 95% CI, p-value; d_*_sig = the CI excludes 0 (uncorrected); "
                      f"q_bh = Benjamini-Hochberg adjusted p of each arm vs its baseline (vs), across all tested "
                      f"cells; sig_bh = q_bh < {FDR}; upper_95 = one-sided 95% upper bound of the primary "
                      f"difference (gains above it are ruled out); tost_p = two one-sided t-tests at +-margin "
                      f"({margin:g}), q_tost its BH adjustment; call = better/worse (sig_bh), equivalent "
                      f"(q_tost < {FDR}), inconclusive otherwise",
        "bh": {"fdr": FDR, "tested": len(tested), "survive": sum(bool(r["sig_bh"]) for r in tested)},
        "margin": margin, "calls": {c: sum(r["call"] == c for r in tested) for c in CALLS}})
    return {"out": out, "rows": len(rows), "failed": n_failed, "summary": summary, "detection": dsum}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Read a unit/results CSV back with numbers as numbers (empty cells -> NaN or '')."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k, v in r.items():
            if k in _INT_COLS and v != "":
                r[k] = int(v)
            elif k == "fit_reached":
                r[k] = int(float(v)) if v not in ("", "nan") else ""
            elif k not in _TEXT_COLS:
                r[k] = float(v) if v != "" else float("nan")
    return rows


_TEXT_COLS = {"dataset", "corruption", "measure", "rule", "status", "message", "roc_tpr", "budget", "warmup_budget"}


_INT_COLS = {"seed", "n_total", "n_train", "n_corrupted", "n_corrupted_kept", "epochs", "steps", "k", "warmup_epochs"}
