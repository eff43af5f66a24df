"""The bench-folder page of ``sensprune report``: accuracy vs fraction removed, paired differences, detection."""

from __future__ import annotations

import csv
import html
from pathlib import Path
from typing import Any

import numpy as np

from sensprune.io import regular_file
from sensprune.reporting.page import Page


def _read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV with numeric-looking cells as floats."""
    if not path.exists():
        return []
    regular_file(path, str(path))  # a FIFO would block the read
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k, v in r.items():
            try:
                r[k] = float(v)
            except (TypeError, ValueError):
                pass
    return rows


def bench_page(page: Page, folder: Path) -> None:
    """Accuracy vs fraction removed (95% CI bands), paired difference vs random, AUROC bars."""
    from sensprune.reporting import plots

    summary, det = _read_csv(folder / "summary.csv"), _read_csv(folder / "detection.csv")
    if (folder / "verdict.md").exists():
        regular_file(folder / "verdict.md", str(folder / "verdict.md"))
        page.raw(f"<pre>{html.escape((folder / 'verdict.md').read_text(encoding='utf-8'))}</pre>")
    groups = list(dict.fromkeys((r.get("dataset"), r.get("corruption")) for r in summary))
    for k, (ds, corr) in enumerate(groups):
        rows = [r for r in summary if (r.get("dataset"), r.get("corruption")) == (ds, corr)]
        full = next((r.get("test_acc_mean") for r in rows if r.get("measure") == "full"), None)
        acc, diff = {}, {}
        for r in rows:
            if r.get("measure") == "full":
                continue
            # a random selection matched to a user selection (rule "matched:NAME") gets its own curve
            plain = r["measure"] in ("random", "oracle") and not str(r.get("rule", "")).startswith("matched:")
            label = r["measure"] if plain else f"{r['measure']} / {r['rule']}"
            for d, mean, ci in ((acc, "test_acc_mean", "test_acc_ci95"), (diff, "d_random_mean", "d_random_ci95")):
                if d is diff and r["measure"] in ("random", "oracle"):
                    continue
                d.setdefault(label, ([], [], []))
                for lst, v in zip(d[label], (r.get("fraction"), r.get(mean), r.get(ci))):
                    lst.append(v if isinstance(v, float) else np.nan)
        page.h2(f"{ds}, corruption {corr}")
        if acc:
            page.figure(f"bench_acc_{k}", f"{ds} / {corr}: test accuracy (mean over seeds, 95% CI band) vs "
                        "fraction removed; dashed = full data",
                        lambda p, acc=acc, full=full: plots.bench_curves(
                            acc, p, ylabel="test accuracy", title="Test accuracy after pruning",
                            reference=full if isinstance(full, float) else None))
        if diff:
            page.figure(f"bench_diff_{k}", f"{ds} / {corr}: paired difference in test accuracy vs random "
                        "pruning at the same fraction and seed (95% CI band)",
                        lambda p, diff=diff: plots.bench_curves(
                            diff, p, ylabel="test acc − random (paired)", title="Paired difference vs random",
                            zero_line=True))
        drows = [r for r in det if (r.get("dataset"), r.get("corruption")) == (ds, corr)
                 and isinstance(r.get("auroc_mean"), float) and np.isfinite(r["auroc_mean"])]
        curves = {r["measure"]: np.array(str(r.get("roc_tpr_mean") or "").split(), np.float64) for r in drows}
        if drows and all(len(c) for c in curves.values()):
            page.figure(f"bench_roc_{k}", f"{ds} / {corr}: ROC of each score for finding the corrupted examples "
                        "(mean TPR over seeds at 21 false-positive rates; AUROC in the legend)",
                        lambda p, c=curves, d=drows: plots.roc_curves(
                            c, {r["measure"]: r["auroc_mean"] for r in d}, p))
        elif drows:
            page.figure(f"bench_auroc_{k}", f"{ds} / {corr}: AUROC of each score for finding the corrupted "
                        "examples (mean over seeds, 95% CI); this grid stored no ROC points",
                        lambda p, d=drows: plots.auroc_bars([r["measure"] for r in d], [r["auroc_mean"] for r in d],
                                                            [r.get("auroc_ci95", np.nan) for r in d], p))
    if not groups:
        page.p("summary.csv is empty or missing: the grid has no finished cells yet.", "note")
