"""Statistics of a bench grid: per-cell means with 95% t intervals, paired differences, detection, verdict.

A *cell* is ``(dataset, corruption, measure, rule, fraction)``; its values are one per seed. The
paired difference of a cell vs ``random`` (same fraction) or vs ``full`` is taken per seed (both
runs share init and batch order) and summarised by its mean and Student-t 95% interval;
"significant" means the interval excludes 0 (no correction for the number of cells; the verdict
says how many were tested).
"""

from __future__ import annotations

import csv
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from sensprune.io import atomic_write_text, write_csv

SUMMARY_COLUMNS = ("key", "dataset", "corruption", "measure", "rule", "fraction", "n", "n_failed", "n_train",
                   "test_acc_mean", "test_acc_std", "test_acc_ci95", "test_loss_mean", "train_acc_mean",
                   "gen_gap_mean", "corrupted_kept_mean",
                   "d_random_mean", "d_random_ci95", "d_random_lo", "d_random_hi", "d_random_n", "d_random_sig",
                   "d_full_mean", "d_full_ci95", "d_full_lo", "d_full_hi", "d_full_n", "d_full_sig", "error")
DETECTION_SUMMARY_COLUMNS = ("dataset", "corruption", "measure", "n", "n_failed", "k_mean", "auroc_mean",
                             "auroc_std", "auroc_ci95", "ap_mean", "ap_std", "precision_at_k_mean",
                             "precision_at_k_std", "roc_tpr_mean")
#: false-positive rates at which ROC curves are stored (TPR at FPR <= f, a step ROC), 21 points
ROC_FPR = np.linspace(0.0, 1.0, 21)
NAN = float("nan")


def t_quantile(p: float, df: int) -> float:
    """Student-t quantile (scipy, a dependency of scikit-learn, imported lazily)."""
    from scipy.stats import t

    return float(t.ppf(p, df))


def mean_ci(values: Iterable[float], level: float = 0.95) -> tuple[float, float, int, float]:
    """(mean, sample std, n, half-width of the ``level`` t interval); NaN where undefined (n < 2)."""
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    n = len(v)
    if n == 0:
        return NAN, NAN, 0, NAN
    if n == 1:
        return float(v[0]), NAN, 1, NAN
    sd = float(v.std(ddof=1))
    return float(v.mean()), sd, n, t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)


def fkey(f: float) -> str:
    return f"{float(f):g}"


def cell_key(dataset: str, corruption: str, measure: str, rule: str, fraction: float) -> str:
    return f"{dataset}|{corruption}|{measure}|{rule}|{fkey(fraction)}"


def _sig(mean: float, half: float) -> int:
    if not (np.isfinite(mean) and np.isfinite(half)):
        return 0
    return int(np.sign(mean)) if abs(mean) > half else 0


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-cell statistics of result rows (plan order kept)."""
    cells: OrderedDict[str, list[dict]] = OrderedDict()
    for r in rows:
        cells.setdefault(cell_key(r["dataset"], r["corruption"], r["measure"], r["rule"], r["fraction"]), []).append(r)
    acc = {k: {r["seed"]: r["test_acc"] for r in v if r["status"] == "ok"} for k, v in cells.items()}
    out = []
    for key, rs in cells.items():
        ds, corr, measure, rule, frac = key.split("|")
        ok = [r for r in rs if r["status"] == "ok"]
        mean, sd, n, half = mean_ci(r["test_acc"] for r in ok)
        row = {"key": key, "dataset": ds, "corruption": corr, "measure": measure, "rule": rule,
               "fraction": float(frac), "n": n, "n_failed": len(rs) - len(ok),
               "n_train": float(np.mean([r["n_train"] for r in ok])) if ok else NAN,
               "test_acc_mean": mean, "test_acc_std": sd, "test_acc_ci95": half,
               "test_loss_mean": _mean(r["test_loss"] for r in ok), "train_acc_mean": _mean(r["train_acc"] for r in ok),
               "gen_gap_mean": _mean(r["gen_gap"] for r in ok),
               "corrupted_kept_mean": _mean(r["n_corrupted_kept"] for r in ok),
               "error": next((r["message"] for r in rs if r["status"] != "ok"), "")}
        bases = {"random": None if measure == "random" else cell_key(ds, corr, "random", "random", float(frac)),
                 "full": None if measure == "full" else cell_key(ds, corr, "full", "none", 0.0)}
        for name, bkey in bases.items():
            base = acc.get(bkey, {}) if bkey else {}
            diffs = [acc[key][s] - base[s] for s in acc[key] if s in base]
            m, _, dn, h = mean_ci(diffs) if bkey else (NAN, NAN, 0, NAN)
            row.update({f"d_{name}_mean": m, f"d_{name}_ci95": h, f"d_{name}_lo": m - h, f"d_{name}_hi": m + h,
                        f"d_{name}_n": dn, f"d_{name}_sig": _sig(m, h)})
        out.append(row)
    return out


def _mean(values: Iterable[float]) -> float:
    v = [x for x in values if np.isfinite(x)]
    return float(np.mean(v)) if v else NAN


def summarize_detection(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (dataset, corruption, measure): mean ± std over seeds of AUROC, AP and precision@k."""
    groups: OrderedDict[tuple, list[dict]] = OrderedDict()
    for r in rows:
        groups.setdefault((r["dataset"], r["corruption"], r["measure"]), []).append(r)
    out = []
    for (ds, corr, m), rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        am, asd, n, ah = mean_ci(r["auroc"] for r in ok)
        pm, psd, _, _ = mean_ci(r["ap"] for r in ok)
        km, ksd, _, _ = mean_ci(r["precision_at_k"] for r in ok)
        curves = [np.array(r["roc_tpr"].split(), np.float64) for r in ok if r.get("roc_tpr")]
        roc = " ".join(f"{v:.4f}" for v in np.mean(curves, axis=0)) if curves else ""
        out.append({"dataset": ds, "corruption": corr, "measure": m, "n": n, "n_failed": len(rs) - len(ok),
                    "k_mean": _mean(r["k"] for r in ok), "auroc_mean": am, "auroc_std": asd, "auroc_ci95": ah,
                    "ap_mean": pm, "ap_std": psd, "precision_at_k_mean": km, "precision_at_k_std": ksd,
                    "roc_tpr_mean": roc})
    return out


# -- detection -----------------------------------------------------------------------------------------

def cv_confidence(x: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """1 − out-of-fold probability of the given label (N,), higher = more suspicious.

    Standardised inputs, logistic regression, stratified ``folds``-fold ``cross_val_predict``
    (the confident-learning input popularised by cleanlab).
    """
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x2 = x.reshape(len(x), -1)
    counts = np.bincount(y)
    k = max(2, min(folds, int(counts[counts > 0].min())))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = cross_val_predict(model, x2, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed),
                              method="predict_proba")
    classes = np.unique(y)
    col = np.searchsorted(classes, y)
    return 1.0 - p[np.arange(len(y)), col]


def detection_metrics(scores: np.ndarray, corrupted: np.ndarray) -> dict[str, float]:
    """AUROC, average precision and precision@k (k = number corrupted) of ``scores`` (N,) for the
    boolean ``corrupted`` (N,); higher score = predicted corrupted. Ties in the top-k go to lower index."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    s = np.nan_to_num(np.asarray(scores, np.float64), nan=np.nanmedian(scores) if np.isfinite(scores).any() else 0)
    from sklearn.metrics import roc_curve

    k = int(corrupted.sum())
    top = np.argsort(-s, kind="stable")[:k]
    fpr, tpr, _ = roc_curve(corrupted, s)
    roc = [float(tpr[fpr <= f + 1e-12].max()) for f in ROC_FPR]
    return {"k": k, "auroc": float(roc_auc_score(corrupted, s)), "ap": float(average_precision_score(corrupted, s)),
            "precision_at_k": float(corrupted[top].mean()) if k else float("nan"),
            "roc_tpr": " ".join(f"{v:.4f}" for v in roc)}


# -- verdict ---------------------------------------------------------------------------------------------

def _pts(x: float) -> str:
    return f"{100 * x:.1f}"


def _corr_label(c: str) -> str:
    kind, _, q = c.partition(":")
    names = {"randY": "symmetric label noise", "randY-asym": "asymmetric label noise (class c -> c+1)",
             "randX": "Gaussian-noise inputs"}
    return "no injected noise" if kind == "none" else f"{float(q) * 100:g}% {names.get(kind, kind)} ({c})"


def _what(row: dict) -> str:
    pct = f"{row['fraction'] * 100:g}%"
    if row["measure"] == "oracle":
        return f"dropping exactly the corrupted examples ({pct}, oracle)"
    side = {"drop-high": "top", "drop-low": "bottom"}.get(row["rule"])
    if side:
        return f"dropping the {side} {pct} by {row['measure']}"
    return f"removing {pct} by {row['measure']} with rule {row['rule']}"


def sentence(row: dict, vs: str = "random") -> str:
    """One verdict sentence for a summary row, citing its key."""
    m, h, n = row[f"d_{vs}_mean"], row[f"d_{vs}_ci95"], row[f"d_{vs}_n"]
    if not np.isfinite(m):
        return f"{_what(row)}: no paired result vs {vs} (n={n}). [`{row['key']}`]"
    effect = f"{'raises' if m > 0 else 'lowers'} test accuracy by {_pts(abs(m))} ± {_pts(h)} points vs {vs}"
    tail = "" if row[f"d_{vs}_sig"] else " — no significant difference"
    return (f"{_what(row).capitalize()} {effect}{tail} (95% CI of the paired difference, n={n} seeds; "
            f"{_pts(row['test_acc_mean'])}% test accuracy). [`{row['key']}`]")


def verdict(summary: Sequence[dict], detection: Sequence[dict], *, question: str = "loss_sensitivity",
            header: str = "") -> str:
    """The plain-language answer per dataset and corruption; every sentence cites a summary.csv key."""
    lines = ["# Verdict: does pruning training examples by a measure improve test accuracy?", ""]
    if header:
        lines += [header, ""]
    tested = [r for r in summary if r["measure"] not in ("random", "full") and r["d_random_n"] >= 2]
    lines += [f"Paired design: for each seed every selection shares init and batch order; ± is the half-width of "
              f"the 95% Student-t interval of the per-seed difference; *significant* = the interval excludes 0. "
              f"{len(tested)} cells were compared with random, uncorrected — about {0.05 * len(tested):.1f} "
              f"would pass by chance alone. Keys in [brackets] are rows of `summary.csv` "
              f"(dataset|corruption|measure|rule|fraction).", ""]
    groups: OrderedDict[tuple, list[dict]] = OrderedDict()
    for r in summary:
        groups.setdefault((r["dataset"], r["corruption"]), []).append(r)
    for (ds, corr), rs in groups.items():
        lines += [f"## {ds} — {_corr_label(corr)}", ""]
        full = next((r for r in rs if r["measure"] == "full"), None)
        if full is not None:
            lines.append(f"- Full training set: {_pts(full['test_acc_mean'])} ± {_pts(full['test_acc_ci95'])}% "
                         f"test accuracy (n={full['n']}). [`{full['key']}`]")
        q = [r for r in rs if r["measure"] == question and r["rule"] == "drop-high"]
        if q:
            lines.append(f"- **The question ({question}, drop-high):**")
            lines += [f"  - {sentence(r)}" for r in q]
        else:
            lines.append(f"- **The question:** {question} was not among this grid's measures (or did not run); "
                         f"add it to [grid] measures to answer it.")
        for r in rs:
            if r["measure"] == "oracle":
                text = sentence(r, "full")
                lines.append(f"- Oracle: {text[0].lower()}{text[1:]}")
        sig = [r for r in rs if r["measure"] not in ("random", "full", "oracle", question) or
               (r["measure"] == question and r["rule"] != "drop-high")]
        sig = [r for r in sig if r["d_random_sig"]]
        if sig:
            lines.append("- Significant differences vs random at the same fraction:")
            lines += [f"  - {sentence(r)}" for r in sig]
        else:
            lines.append("- No other measure × rule × fraction differs significantly from random at the same "
                         "fraction.")
        failed = [r for r in rs if r["n_failed"]]
        for r in failed:
            lines.append(f"- {r['n_failed']} run(s) failed: {r['error']} [`{r['key']}`]")
        det = [d for d in detection if d["dataset"] == ds and d["corruption"] == corr and d["n"]]
        if det:
            best = max(det, key=lambda d: d["auroc_mean"])
            lines.append("- Detecting the corrupted examples (`detection.csv`, mean AUROC over seeds): " +
                         ", ".join(f"{d['measure']} {d['auroc_mean']:.3f}" for d in det) +
                         f"; best: {best['measure']}.")
        lines.append("")
    return "\n".join(lines)


# -- files -----------------------------------------------------------------------------------------------

def aggregate(cfg, out: Path, units) -> dict[str, Any]:
    """Concatenate the unit files of ``units`` (plan order) and write results/summary/detection/verdict."""
    from sensprune.bench import DETECTION_COLUMNS, RESULT_COLUMNS, unit_paths

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
    write_csv(out / "results.csv", RESULT_COLUMNS, ([r.get(c, "") for c in RESULT_COLUMNS] for r in rows))
    write_csv(out / "detection_per_seed.csv", DETECTION_COLUMNS,
              ([r.get(c, "") for c in DETECTION_COLUMNS] for r in det))
    summary, dsum = summarize(rows), summarize_detection(det)
    write_csv(out / "summary.csv", SUMMARY_COLUMNS, ([r[c] for c in SUMMARY_COLUMNS] for r in summary))
    write_csv(out / "detection.csv", DETECTION_SUMMARY_COLUMNS,
              ([r[c] for c in DETECTION_SUMMARY_COLUMNS] for r in dsum))
    t = cfg.train
    header = (f"Grid: datasets {', '.join(cfg.grid.datasets)} (subsample {cfg.data.subsample or 'none'}); "
              f"model {cfg.score.model} {list(cfg.score.widths)}; retrain {t.epochs} epochs, {t.optimizer} "
              f"lr {t.lr}, batch {t.batch_size}; warmup {cfg.score.epochs or t.epochs} epochs; "
              f"seeds {list(cfg.grid.seeds)}.")
    if missing:
        header += f"\n\n**Incomplete:** {len(missing)} unit(s) not run yet: {', '.join(missing)}."
    atomic_write_text(out / "verdict.md", verdict(summary, dsum, header=header))
    n_failed = sum(r["status"] != "ok" for r in rows)
    from sensprune.io import base_meta, write_json

    write_json(out / "meta.json", {
        **base_meta("bench"), "config": cfg.to_dict(), "units": [u.key for u in units],
        "missing_units": missing, "retrain_rows": len(rows), "failed_rows": n_failed,
        "files": ["results.csv", "summary.csv", "detection.csv", "detection_per_seed.csv", "verdict.md"],
        "statistics": "per cell mean, std, n and 95% Student-t CI; paired per-seed differences vs random (same "
                      "fraction) and vs full with 95% CI; significant = the CI excludes 0, uncorrected"})
    return {"out": out, "rows": len(rows), "failed": n_failed, "missing_units": missing, "summary": summary,
            "detection": dsum}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Read a unit/results CSV back with numbers as numbers (empty cells -> NaN or '')."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k, v in r.items():
            if k in _INT_COLS and v != "":
                r[k] = int(v)
            elif k not in _TEXT_COLS:
                r[k] = float(v) if v != "" else float("nan")
    return rows


_TEXT_COLS = {"dataset", "corruption", "measure", "rule", "status", "message", "roc_tpr"}
_INT_COLS = {"seed", "n_total", "n_train", "n_corrupted", "n_corrupted_kept", "epochs", "k"}
