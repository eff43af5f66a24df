"""The plain-language verdict of a bench folder (``verdict.md``), built from the rows of ``summary.csv``.

Every sentence cites the ``summary.csv`` key it rests on and names the training budget its runs had.
A tested cell opens with its three-way call (:func:`sensprune.benchmark.stats.call`: better, worse,
equivalent within the margin, inconclusive), then the 95% paired t interval (uncorrected), the largest
gain the data rule out (one-sided 95% upper bound), the TOST and Benjamini–Hochberg adjusted
p-values; the rule and the counts open the file. No sentence says more than its call.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np

from sensprune.benchmark.stats import CALLS, FDR, primary_baseline

#: each budget in words, as every verdict sentence names it
BUDGET_WORDS = {"epochs": "budget `epochs` (the same epochs for every run)",
                "steps": "budget `steps` (about the full run's SGD steps)",
                "fit": "budget `fit` (each run trained until it fits its own training set; reweighting arms the "
                       "full run's steps)",
                "fit-steps": "budget `fit-steps` (equal compute: every run the SGD steps the full run needed to "
                             "fit)"}


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
    """One verdict sentence for a summary row, citing its key; a tested comparison opens with its call."""
    m, h, n = row[f"d_{vs}_mean"], row[f"d_{vs}_ci95"], row[f"d_{vs}_n"]
    budget = BUDGET_WORDS.get(row.get("budget") or "", "")
    under = f"Under {budget}, " if budget else ""
    what = _what(row) if under else _what(row)[0].upper() + _what(row)[1:]
    if not np.isfinite(m):
        return f"{under}{what}: no paired result vs {vs} (n={n}). [`{row['key']}`]"
    effect = f"{'raises' if m > 0 else 'lowers'} test accuracy by {_pts(abs(m))} ± {_pts(h)} points vs {vs}"
    tested = row.get("vs") == vs and np.isfinite(row.get("q_bh", float("nan")))
    if tested and row.get("call"):
        margin = row.get("margin", float("nan"))
        head = {"better": f"**better** than {vs}", "worse": f"**worse** than {vs}",
                "equivalent": f"**equivalent** to {vs} within ±{_pts(margin)} points",
                "inconclusive": f"**inconclusive** vs {vs} (neither a significant difference nor equivalence "
                                f"within ±{_pts(margin)} points)"}[row["call"]]
        upper = row.get("upper_95", float("nan"))
        rules_out = f"; gains above {100 * upper:+.1f} points ruled out (one-sided 95%)" if np.isfinite(upper) else ""
        tost = row.get("q_tost", float("nan"))
        tost = f"; TOST q = {tost:.3g}" if np.isfinite(tost) else ""
        return (f"{under}{what}: {head} — it {effect} (95% CI of the paired difference, n={n} seeds{rules_out}"
                f"{tost}{_bh(row)}; {_pts(row['test_acc_mean'])}% test accuracy). [`{row['key']}`]")
    sig = row[f"d_{vs}_sig"]
    tail = "" if sig else " — no significant difference"
    return (f"{under}{what} {effect}{tail} (95% CI of the paired difference, n={n} seeds, unadjusted; "
            f"{_pts(row['test_acc_mean'])}% test accuracy). [`{row['key']}`]")


def rule_text(summary: Sequence[dict], fdr: float = FDR, margin: float | None = None) -> str:
    """The statistics paragraph: the paired design, the tests, the BH rule, the calls and their counts."""
    tested = [r for r in summary if np.isfinite(r.get("q_bh", float("nan")))]
    margin = margin if margin is not None else next((r["margin"] for r in tested if "margin" in r), 0.01)
    counts = ", ".join(f"{sum(r.get('call') == c for r in tested)} {c}" for c in CALLS)
    survive = [r for r in tested if r.get("sig_bh")]
    raw = [r for r in tested if r.get("p_value", 1.0) < fdr]
    return (f"Paired design: for each seed every run shares init and batch order; ± is the half-width of the "
            f"95% paired Student-t interval (scipy.stats.ttest_rel) of the per-seed difference. Each arm is "
            f"tested against its baseline (pruning arms: random at the same fraction; reweighting arms: the full "
            f"set). Rule: a difference counts as significant when its Benjamini–Hochberg adjusted p-value "
            f"(scipy.stats.false_discovery_control, across all {len(tested)} tested cells of this grid) is below "
            f"{fdr:g}. {len(raw)} of {len(tested)} cells have an unadjusted p < {fdr:g}; **{len(survive)} survive "
            f"the adjustment**. Each tested cell gets a call: **better** / **worse** (significant after BH), "
            f"**equivalent** within ±{_pts(margin)} points (two one-sided t-tests at the margin, TOST, BH-adjusted "
            f"q < {fdr:g}), **inconclusive** otherwise; calls: {counts}. \"Gains above X ruled out\" is the "
            f"one-sided 95% upper bound of the difference. Keys in [brackets] are rows of `summary.csv` "
            f"(dataset|corruption|measure|rule|fraction).")


def verdict(summary: Sequence[dict], detection: Sequence[dict], *, question: str = "loss_sensitivity",
            header: str = "", margin: float | None = None, arms_of: Sequence[str] = ()) -> str:
    """The plain-language answer per dataset and corruption; every sentence cites a summary.csv key.

    ``question``'s drop-high rows are stated first; every pruning arm (each rule and fraction) of the measures
    ``arms_of`` (e.g. memorization) follows, whatever its call.
    """
    lines = ["# Verdict: does pruning training examples by a measure improve test accuracy?", ""]
    if header:
        lines += [header, ""]
    lines += [rule_text(summary, margin=margin), ""]
    groups: OrderedDict[tuple, list[dict]] = OrderedDict()
    for r in summary:
        groups.setdefault((r["dataset"], r["corruption"]), []).append(r)
    selections = any(str(r["rule"]).startswith("selection:") for r in summary)
    for (ds, corr), rs in groups.items():
        lines += [f"## {ds} — {corruption_label(corr)}", ""]
        full = next((r for r in rs if r["measure"] == "full"), None)
        if full is not None:
            lines.append(f"- Full training set: {_pts(full['test_acc_mean'])} ± {_pts(full['test_acc_ci95'])}% "
                         f"test accuracy (n={full['n']}{_compute(full)}). [`{full['key']}`]")
        if selections:
            lines.append("- **Your selections** (vs a random selection of the same size per class, and vs full):")
            for r in (r for r in rs if str(r["rule"]).startswith("selection:")):
                lines += [f"  - {sentence(r, r['vs'] or 'random')}", f"  - {sentence(r, 'full')}"]
        else:
            lines += _question(rs, question)
            lines += _arms(rs, arms_of)
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
               and not (r["measure"] == question and r["rule"] == "drop-high") and r["measure"] not in arms_of
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


def _compute(row: dict) -> str:
    """", 212 SGD steps (23.6 epochs) on average, 5 of 5 reached the fit threshold" where known."""
    steps, epochs = row.get("steps_mean", float("nan")), row.get("epochs_mean", float("nan"))
    out = f", {steps:.0f} SGD steps ({epochs:.1f} epochs) on average" if np.isfinite(steps) else ""
    frac = row.get("fit_reached_frac", float("nan"))
    if np.isfinite(frac) and row.get("budget") in ("fit", "fit-steps"):
        out += f", {round(frac * row['n'])} of {row['n']} reached the fit threshold"
    return out


def _arms(rs: list[dict], measures: Sequence[str]) -> list[str]:
    """Each pruning arm of ``measures`` vs random at the same fraction, by rule then fraction."""
    lines = []
    for m in measures:
        mine = [r for r in rs if r["measure"] == m and primary_baseline(r["measure"], r["rule"]) == "random"]
        if mine:
            lines.append(f"- **{m}** (every rule and fraction, vs random at the same fraction):")
            lines += [f"  - {sentence(r)}" for r in sorted(mine, key=lambda r: (str(r["rule"]), r["fraction"]))]
    return lines


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
