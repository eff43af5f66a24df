"""The plain-language verdict of a bench folder (``verdict.md``), built from the rows of ``summary.csv``.

Every sentence cites the ``summary.csv`` key it rests on. Significance is stated twice: the 95%
paired t interval of the cell (uncorrected) and the Benjamini–Hochberg adjustment across all tested
cells of the grid (:func:`sensprune.benchmark.stats.summarize`), whose rule and counts open the file.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np

from sensprune.benchmark.stats import FDR, primary_baseline


def _pts(x: float) -> str:
    return f"{100 * x:.1f}"


def corruption_label(c: str) -> str:
    """``randY:0.2`` -> ``20% symmetric label noise (randY:0.2)``."""
    kind, _, q = c.partition(":")
    names = {"randY": "symmetric label noise", "randY-asym": "asymmetric label noise (class c -> c+1)",
             "randX": "Gaussian-noise inputs"}
    return "no injected noise" if kind == "none" else f"{float(q) * 100:g}% {names.get(kind, kind)} ({c})"


def _what(row: dict) -> str:
    pct = f"{row['fraction'] * 100:.3g}%"
    rule = str(row["rule"])
    if row["measure"] == "oracle":
        return f"dropping exactly the corrupted examples ({pct}, oracle)"
    if rule.startswith("reweight:"):
        method = rule.split(":", 1)[1]
        tail = f", {pct} down-weighted" if method == "clip" else ""
        return f"reweighting the loss by {row['measure']} ({method}{tail})"
    if rule.startswith("selection:"):
        return f"the selection {row['measure']} ({rule.split(':', 1)[1]}, {pct} removed)"
    side = {"drop-high": "top", "drop-low": "bottom"}.get(rule)
    if side:
        return f"dropping the {side} {pct} by {row['measure']}"
    return f"removing {pct} by {row['measure']} with rule {rule}"


def _bh(row: dict) -> str:
    q = row.get("q_bh", float("nan"))
    if not np.isfinite(q):
        return ""
    return f"; BH q = {q:.3g}{', survives' if row.get('sig_bh') else ''}"


def sentence(row: dict, vs: str = "random") -> str:
    """One verdict sentence for a summary row, citing its key."""
    m, h, n = row[f"d_{vs}_mean"], row[f"d_{vs}_ci95"], row[f"d_{vs}_n"]
    if not np.isfinite(m):
        return f"{_what(row)}: no paired result vs {vs} (n={n}). [`{row['key']}`]"
    effect = f"{'raises' if m > 0 else 'lowers'} test accuracy by {_pts(abs(m))} ± {_pts(h)} points vs {vs}"
    tested = row.get("vs") == vs and np.isfinite(row.get("q_bh", float("nan")))
    sig = row["sig_bh"] if tested else row[f"d_{vs}_sig"]  # the BH rule where the cell was tested
    tail = "" if sig else " — no significant difference"
    if tested and row[f"d_{vs}_sig"] and not sig:
        tail += " after the BH adjustment (the unadjusted interval excludes 0)"
    bh = _bh(row) if tested else ""
    return (f"{_what(row)[0].upper()}{_what(row)[1:]} {effect}{tail} (95% CI of the paired difference, n={n} seeds"
            f"{bh}; {_pts(row['test_acc_mean'])}% test accuracy). [`{row['key']}`]")


def rule_text(summary: Sequence[dict], fdr: float = FDR) -> str:
    """The statistics paragraph: the paired design, the tests, the BH rule and how many cells survive."""
    tested = [r for r in summary if np.isfinite(r.get("q_bh", float("nan")))]
    survive = [r for r in tested if r.get("sig_bh")]
    raw = [r for r in tested if r.get("p_value", 1.0) < fdr]
    return (f"Paired design: for each seed every run shares init and batch order; ± is the half-width of the "
            f"95% paired Student-t interval (scipy.stats.ttest_rel) of the per-seed difference. Each arm is "
            f"tested against its baseline (pruning arms: random at the same fraction; reweighting arms: the full "
            f"set). Rule: a difference counts as significant when its Benjamini–Hochberg adjusted p-value "
            f"(scipy.stats.false_discovery_control, across all {len(tested)} tested cells of this grid) is below "
            f"{fdr:g}. {len(raw)} of {len(tested)} cells have an unadjusted p < {fdr:g}; **{len(survive)} survive "
            f"the adjustment**. Keys in [brackets] are rows of `summary.csv` (dataset|corruption|measure|rule|"
            f"fraction).")


def verdict(summary: Sequence[dict], detection: Sequence[dict], *, question: str = "loss_sensitivity",
            header: str = "") -> str:
    """The plain-language answer per dataset and corruption; every sentence cites a summary.csv key."""
    lines = ["# Verdict: does pruning training examples by a measure improve test accuracy?", ""]
    if header:
        lines += [header, ""]
    lines += [rule_text(summary), ""]
    groups: OrderedDict[tuple, list[dict]] = OrderedDict()
    for r in summary:
        groups.setdefault((r["dataset"], r["corruption"]), []).append(r)
    selections = any(str(r["rule"]).startswith("selection:") for r in summary)
    for (ds, corr), rs in groups.items():
        lines += [f"## {ds} — {corruption_label(corr)}", ""]
        full = next((r for r in rs if r["measure"] == "full"), None)
        if full is not None:
            lines.append(f"- Full training set: {_pts(full['test_acc_mean'])} ± {_pts(full['test_acc_ci95'])}% "
                         f"test accuracy (n={full['n']}). [`{full['key']}`]")
        if selections:
            lines.append("- **Your selections** (vs a random selection of the same size per class, and vs full):")
            for r in (r for r in rs if str(r["rule"]).startswith("selection:")):
                lines += [f"  - {sentence(r, r['vs'] or 'random')}", f"  - {sentence(r, 'full')}"]
        else:
            lines += _question(rs, question)
        for r in rs:
            if r["measure"] == "oracle":
                text = sentence(r, "full")
                lines.append(f"- Oracle: {text[0].lower()}{text[1:]}")
        rew = [r for r in rs if str(r["rule"]).startswith("reweight:")]
        if rew:
            lines.append("- Reweighting (all examples kept, per-example loss weights of `sensprune prune "
                         "--reweight`), vs the full set:")
            lines += [f"  - {sentence(r, 'full')}" for r in rew]
        sig = [r for r in rs if primary_baseline(r["measure"], r["rule"]) == "random" and r["sig_bh"]
               and not (r["measure"] == question and r["rule"] == "drop-high")
               and not str(r["rule"]).startswith("selection:")]
        if sig:
            lines.append("- Other arms that differ from random at the same fraction after the BH adjustment:")
            lines += [f"  - {sentence(r)}" for r in sig]
        elif not selections:
            lines.append("- No other measure × rule × fraction differs from random at the same fraction after the "
                         "BH adjustment.")
        for r in (r for r in rs if r["n_failed"]):
            lines.append(f"- {r['n_failed']} run(s) failed: {r['error']} [`{r['key']}`]")
        det = [d for d in detection if d["dataset"] == ds and d["corruption"] == corr and d["n"]]
        if det:
            best = max(det, key=lambda d: d["auroc_mean"])
            lines.append("- Detecting the corrupted examples (`detection.csv`, mean AUROC over seeds): " +
                         ", ".join(f"{d['measure']} {d['auroc_mean']:.3f}" for d in det) +
                         f"; best: {best['measure']}.")
        lines.append("")
    return "\n".join(lines)


def _question(rs: list[dict], question: str) -> list[str]:
    q = [r for r in rs if r["measure"] == question and r["rule"] == "drop-high"]
    proxy = [r for r in rs if str(r["measure"]).startswith(question + "_h") and r["rule"] == "drop-high"]
    if not q and proxy:
        names = ", ".join(sorted({r["measure"] for r in proxy}))
        return [f"- **The question:** this grid has only the proxy {names}, not the paper's measure {question}; "
                "its drop-high rows answer the question for the proxy:", *(f"  - {sentence(r)}" for r in proxy)]
    if not q:
        return [f"- **The question:** {question} was not among this grid's measures (or did not run); "
                f"add it to [grid] measures to answer it."]
    return [f"- **The question ({question}, drop-high):**", *(f"  - {sentence(r)}" for r in q)]
