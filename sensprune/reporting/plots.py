"""Figures of the report: each function takes arrays (never folders) and an output path.

Every function draws one matplotlib ``Figure`` (object-oriented API: no pyplot, no global backend
switch, no display needed), writes it as a PNG
atomically (temporary file, then rename) and returns the path. Scores are oriented
**higher = more sensitive / harder**, as everywhere in sensprune.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sensprune.io import atomic_write_bytes

DPI = 100

#: one colour per measure, the same in every figure (line, marker and bar); ``random``/``oracle``/``full`` are
#: the bench's baselines. Names not listed (a rank-averaged combination, a plugin) get a stable colour from
#: :data:`_SPARE`, chosen by a hash of the name.
MEASURE_COLORS = {
    "loss_sensitivity": "#d62728", "input_grad": "#1f77b4", "loss": "#ff7f0e", "el2n": "#17becf",
    "grand": "#9467bd", "forgetting": "#2ca02c", "aum": "#8c564b", "confidence": "#e377c2",
    "variability": "#bcbd22", "correctness": "#7f7f7f", "random": "#4d4d4d", "oracle": "#000000",
    "memorization": "#6a3d9a",
}
_SPARE = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354")
#: Line style and marker per selection rule: the question's rule (drop-high) solid; reweighting arms (nothing removed,
#: drawn at fraction 0) as squares; rules not listed cycle through the spare styles.
_RULE_STYLES = {"drop-high": ("-", "o"), "drop-low": (":", "o"), "keep-middle": ("-.", "o"), "stratified": ("--", "o")}
_SPARE_STYLES = ("--", "-.", (0, (1, 3)))
#: where legends go: outside the axes, on the right, so they never cover data
_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}


def measure_color(name: str) -> str:
    """The colour of measure ``name`` in every figure (``loss_sensitivity_hH`` proxies: a lighter red)."""
    name = str(name)
    if name in MEASURE_COLORS:
        return MEASURE_COLORS[name]
    if name.startswith("loss_sensitivity_h"):
        return "#ff9896"
    return _SPARE[zlib.crc32(name.encode("utf-8")) % len(_SPARE)]


def _split_label(label: str) -> tuple[str, str | None]:
    """``"el2n / drop-high"`` -> (``"el2n"``, ``"drop-high"``); ``"random"`` -> (``"random"``, None)."""
    measure, sep, rule = str(label).partition(" / ")
    return measure, (rule if sep else None)


def _save(fig, out: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize, layout: str | None = None, **kw):
    """matplotlib's object-oriented API: a ``Figure`` (no pyplot, no global backend switch) and its axes."""
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(nrows, ncols, **kw)


def _yscale(ax, values: np.ndarray) -> None:
    """Log scale when the values are positive and span more than two decades."""
    v = values[np.isfinite(values)]
    if v.size and v.min() > 0 and v.max() / v.min() > 100:
        ax.set_yscale("log")


def sensitivity_map(score: np.ndarray, out: str | Path, *, p_label: np.ndarray | None = None,
                    variability: np.ndarray | None = None, corrupted: np.ndarray | None = None,
                    measure: str = "score") -> Path:
    """Scatter of one measure against mean p(y|x) and/or variability, one point per example.

    Parameters
    ----------
    score : (N,) float, higher = more sensitive
    p_label : (N,) float or None
        Mean probability of the given label over presentations (1 − the stored ``confidence``).
    variability : (N,) float or None
        Std of p(y|x) over presentations.
    corrupted : (N,) bool or None
        Colours corrupted (injected-noise) examples apart from correct ones.
    """
    score = np.asarray(score, np.float64)
    axes_x = [(a, lab) for a, lab in ((p_label, "confidence: mean p(given label | x) over training"),
                                      (variability, "variability: std of p(given label | x)")) if a is not None]
    if not axes_x:
        axes_x = [(np.arange(len(score)), "example index")]
    fig, axs = _subplots(1, len(axes_x), figsize=(6 * len(axes_x), 4.5), squeeze=False)
    for ax, (x, xlabel) in zip(axs[0], axes_x):
        x = np.asarray(x, np.float64)
        if corrupted is not None:
            c = np.asarray(corrupted, bool)
            ax.scatter(x[~c], score[~c], s=6, alpha=0.5, c="tab:blue", label=f"correct label ({(~c).sum()})")
            ax.scatter(x[c], score[c], s=10, alpha=0.8, c="tab:red", marker="x",
                       label=f"corrupted label ({c.sum()})")
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, borderaxespad=0.0)
        else:
            ax.scatter(x, score, s=6, alpha=0.5, c="tab:blue")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{measure} (higher = more sensitive)")
        _yscale(ax, score)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Sensitivity map: {measure}, {len(score)} training examples")
    return _save(fig, out)


def score_histogram(score: np.ndarray, out: str | Path, *, measure: str = "score",
                    corrupted: np.ndarray | None = None, bins: int = 40,
                    value_range: tuple[float, float] | None = None) -> Path:
    """Histogram of one measure's (N,) finite values, with corrupted and correct labels stacked apart when
    ``corrupted`` (N,) bool is given; ``value_range`` fixes the bins' span (memorization: [-1, 1])."""
    score = np.asarray(score, np.float64)
    ok = np.isfinite(score)
    edges = np.histogram_bin_edges(score[ok] if ok.any() else [0.0, 1.0], bins=bins, range=value_range)
    fig, ax = _subplots(figsize=(6, 4))
    if corrupted is not None:
        c = np.asarray(corrupted, bool)
        ax.hist([score[ok & ~c], score[ok & c]], bins=edges, stacked=True, color=[measure_color(measure), "tab:red"],
                label=[f"correct label ({int((ok & ~c).sum())})", f"corrupted label ({int((ok & c).sum())})"])
        ax.legend(fontsize=8, **_OUTSIDE)
    else:
        ax.hist(score[ok], bins=edges, color=measure_color(measure))
    ax.set_xlabel(f"{measure} (higher = more {'memorized' if measure == 'memorization' else 'sensitive'})")
    ax.set_ylabel("training examples")
    nan = f", {int((~ok).sum())} undefined (NaN) left out" if (~ok).any() else ""
    ax.set_title(f"{measure}: {int(ok.sum())} examples{nan}")
    ax.grid(alpha=0.3)
    return _save(fig, out)


def score_scatter(x: np.ndarray, y: np.ndarray, out: str | Path, *, xlabel: str, ylabel: str,
                  corrupted: np.ndarray | None = None) -> Path:
    """One point per example: measure ``y`` (N,) against measure ``x`` (N,) (examples finite in both), their
    Spearman rank correlation in the title; corrupted labels as red crosses when ``corrupted`` is given."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    c = np.zeros(len(x), bool) if corrupted is None else np.asarray(corrupted, bool)
    fig, ax = _subplots(figsize=(6, 4.5))
    ax.scatter(x[ok & ~c], y[ok & ~c], s=6, alpha=0.5, c="tab:blue",
               label=f"correct label ({int((ok & ~c).sum())})" if corrupted is not None else None)
    if corrupted is not None:
        ax.scatter(x[ok & c], y[ok & c], s=10, alpha=0.8, c="tab:red", marker="x",
                   label=f"corrupted label ({int((ok & c).sum())})")
        ax.legend(fontsize=8, **_OUTSIDE)
    rho = spearmanr(x[ok], y[ok]).statistic if ok.sum() > 2 else float("nan")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _yscale(ax, y[ok])
    v = x[ok]
    if v.size and v.min() > 0 and v.max() / v.min() > 100:
        ax.set_xscale("log")
    ax.set_title(f"{int(ok.sum())} examples; Spearman ρ = {rho:.3f}")
    ax.grid(alpha=0.3)
    return _save(fig, out)


def lorenz_curves(curves: Mapping[str, Sequence[float]], out: str | Path, *,
                  gini: Mapping[str, float | None] | None = None) -> Path:
    """Lorenz curve of each measure: share of total score held by the lowest-scoring fraction.

    ``curves`` maps a measure to (P,) cumulative shares at P evenly spaced fractions from 0 to 1.
    """
    fig, ax = _subplots(figsize=(6, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="equality")
    for name, y in curves.items():
        y = np.asarray(y, np.float64)
        g = (gini or {}).get(name)
        ax.plot(np.linspace(0, 1, len(y)), y, color=measure_color(name),
                label=name + (f" (Gini {g:.3f})" if g is not None else ""))
    ax.set_xlabel("fraction of examples (lowest score first)")
    ax.set_ylabel("cumulative share of total score")
    ax.set_title("Lorenz curves (more bowed = score concentrated on fewer examples)")
    ax.legend(fontsize=8, **_OUTSIDE)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def gini_over_epochs(gini: Mapping[str, Sequence[float | None]], out: str | Path, *,
                     computed_at: Mapping[str, Sequence[int]] | None = None) -> Path:
    """Gini coefficient of each measure after each epoch (``None`` = undefined yet, skipped).

    A measure in ``computed_at`` (e.g. EL2N and GraNd, computed once at their epoch) is drawn as
    markers at those epochs only: its running value does not change in between, so a line would
    show a trend that is not there.
    """
    fig, ax = _subplots(figsize=(6, 4.5))
    computed_at = computed_at or {}
    for name, g in gini.items():
        g = np.array([np.nan if v is None else v for v in g], np.float64)
        epochs = np.arange(1, len(g) + 1)
        at = sorted({int(e) for e in computed_at.get(name, ()) if 1 <= int(e) <= len(g)})
        if at:
            e = np.array(at)
            ax.plot(e, g[e - 1], ls="none", marker="D", ms=6, color=measure_color(name),
                    label=f"{name} (computed at epoch {', '.join(map(str, at))})")
        else:
            ax.plot(epochs, g, marker="o", ms=3, color=measure_color(name), label=name)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("Gini coefficient")
    ax.set_title("Gini of each measure over the warmup")
    ax.legend(fontsize=8, **_OUTSIDE)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def per_class_heatmap(matrix: np.ndarray, out: str | Path, *, off_diagonal: float | None = None) -> Path:
    """(K, K) per-class loss sensitivity g_ij on a log colour scale (row i = whose loss, column j = inputs)."""
    g = np.abs(np.asarray(matrix, np.float64))
    pos = g[g > 0]
    norm = LogNorm(vmin=pos.min(), vmax=pos.max()) if pos.size and pos.max() > pos.min() else None
    fig, ax = _subplots(figsize=(6, 5))
    im = ax.imshow(np.where(g > 0, g, np.nan), norm=norm, cmap="viridis")
    fig.colorbar(im, ax=ax, label="g_ij (log scale)")
    ax.set_xlabel("class j (inputs perturbed)")
    ax.set_ylabel("class i (loss)")
    title = "Per-class loss sensitivity"
    if off_diagonal is not None:
        title += f"\noff-diagonal mass fraction {off_diagonal:.3f}"
    ax.set_title(title)
    return _save(fig, out)


def accuracy_and_csr(test_acc: Mapping[str, Sequence[float]], out: str | Path, *,
                     train_acc: Mapping[str, Sequence[float]] | None = None,
                     csr: Sequence[float] | None = None) -> Path:
    """Test (and train) accuracy per seed over epochs; the critical sample ratio on a second axis."""
    fig, ax = _subplots(figsize=(7, 4.5))
    for s, acc in test_acc.items():
        ax.plot(np.arange(1, len(acc) + 1), acc, marker="o", ms=3, label=f"test acc (seed {s})")
    for s, acc in (train_acc or {}).items():
        ax.plot(np.arange(1, len(acc) + 1), acc, ls=":", label=f"train acc (seed {s})")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if csr is not None and len(csr):
        ax2 = ax.twinx()
        h = ax2.plot(np.arange(1, len(csr) + 1), csr, "k-s", ms=3, label="CSR (test)")
        ax2.set_ylabel("critical sample ratio")
        handles, labels = handles + h, labels + ["CSR (test)"]
    right = 1.12 if csr is not None and len(csr) else 1.02  # beyond the CSR axis' tick labels
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(right, 1.0), borderaxespad=0.0)
    ax.set_title("Accuracy" + (" and critical sample ratio" if csr is not None and len(csr) else "")
                 + " over the warmup")
    return _save(fig, out)


def gallery(x: np.ndarray, captions: Sequence[str], out: str | Path, *, title: str = "",
            cols: int = 8) -> Path:
    """Grid of examples: images for (n, H, W) / (n, C, H, W) inputs, line plots for (n, D)."""
    x = np.asarray(x, np.float64)
    n = len(x)
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    image = x.ndim >= 3
    fig, axs = _subplots(rows, cols, figsize=(1.7 * cols, (1.9 if image else 1.5) * rows), squeeze=False)
    for k, ax in enumerate(axs.ravel()):
        if k >= n:
            ax.axis("off")
            continue
        xi = x[k]
        if image:
            if xi.ndim == 3:
                xi = xi[0] if xi.shape[0] == 1 else np.moveaxis(xi[:3], 0, -1)
            lo, hi = np.nanmin(xi), np.nanmax(xi)
            xi = (xi - lo) / (hi - lo) if hi > lo else np.zeros_like(xi)
            ax.imshow(xi, cmap="gray_r" if xi.ndim == 2 else None, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.plot(xi.ravel(), lw=1)
            ax.set_xticks([])
            ax.tick_params(labelsize=6)
        ax.set_title(captions[k], fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, out)


def _rule_style(rule: str | None, rules: list[str]) -> tuple[Any, str]:
    if rule is None:
        return "-", "o"
    if rule.startswith("reweight"):
        return "--", "s"
    if rule in _RULE_STYLES:
        return _RULE_STYLES[rule]
    return _SPARE_STYLES[rules.index(rule) % len(_SPARE_STYLES)], "o"


def bench_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
                 out: str | Path, *, ylabel: str, title: str, zero_line: bool = False,
                 reference: float | None = None) -> Path:
    """Mean ± 95% CI band against the fraction removed, one line per label.

    ``curves`` maps a label (e.g. "el2n / drop-high") to (fractions, means, CI half-widths), each (F,).
    """
    fig, ax = _subplots(figsize=(7, 4.5))
    rules = list(dict.fromkeys(r for r in (_split_label(lab)[1] for lab in curves) if r is not None))
    for label, (f, m, h) in curves.items():
        f, m, h = (np.asarray(a, np.float64) for a in (f, m, h))
        order = np.argsort(f)
        f, m, h = f[order], m[order], np.nan_to_num(h[order])
        measure, rule = _split_label(label)  # colour = measure, line style = rule
        ls, marker = _rule_style(rule, rules)
        line, = ax.plot(f, m, marker=marker, ms=4 if marker == "s" else 3, ls=ls, color=measure_color(measure),
                        label=label)
        ax.fill_between(f, m - h, m + h, color=line.get_color(), alpha=0.15)
    if zero_line:
        ax.axhline(0, color="k", lw=1)
    if reference is not None:
        ax.axhline(reference, color="k", ls="--", lw=1, label="full data")
    ax.set_xlabel("fraction of training examples removed")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, **_OUTSIDE)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def auroc_bars(labels: Sequence[str], auroc: Sequence[float], ci: Sequence[float], out: str | Path, *,
               title: str = "Detection of corrupted examples") -> Path:
    """AUROC (mean over seeds, 95% CI error bars) per measure; 0.5 = chance."""
    a, c = np.asarray(auroc, np.float64), np.nan_to_num(np.asarray(ci, np.float64))
    fig, ax = _subplots(figsize=(max(5, 0.6 * len(a) + 2), 4))
    ax.bar(np.arange(len(a)), a, yerr=c, capsize=3, color=[measure_color(lab) for lab in labels])
    ax.axhline(0.5, color="k", ls="--", lw=1, label="chance")
    ax.set_xticks(np.arange(len(a)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("AUROC")
    ax.set_title(title)
    ax.legend(fontsize=8, **_OUTSIDE)
    return _save(fig, out)


def kept_dropped_hist(score: np.ndarray, label: np.ndarray, kept: np.ndarray, out: str | Path, *,
                      measure: str = "score", bins: int = 30) -> Path:
    """Per-class histograms of the score of kept and dropped examples (shared bins)."""
    score, label, kept = np.asarray(score, np.float64), np.asarray(label), np.asarray(kept, bool)
    classes = np.unique(label)
    cols = min(5, len(classes))
    rows = -(-len(classes) // cols)
    finite = score[np.isfinite(score)]
    edges = np.histogram_bin_edges(finite if finite.size else [0, 1], bins=bins)
    fig, axs = _subplots(rows, cols, figsize=(3 * cols, 2.3 * rows + 0.6), squeeze=False, sharex=True,
                         layout="constrained")
    for ax, c in zip(axs.ravel(), classes):
        m = label == c
        ax.hist(score[m & kept], bins=edges, color="tab:blue", alpha=0.7, label="kept")
        ax.hist(score[m & ~kept], bins=edges, color="tab:red", alpha=0.7, label="dropped")
        # the counts go in the title: a legend inside each small panel would cover its bars
        ax.set_title(f"class {c}: kept {int((m & kept).sum())}, dropped {int((m & ~kept).sum())}", fontsize=8)
    for ax in axs.ravel()[len(classes):]:
        ax.axis("off")
    handles, names = axs.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside upper right", ncol=2, fontsize=8)
    fig.suptitle(f"{measure}: kept vs dropped per class")
    fig.supxlabel(measure)
    return _save(fig, out)


def roc_curves(tpr: dict[str, np.ndarray], auroc: dict[str, float], out: str | Path, *,
               title: str = "Detection of corrupted examples (ROC)") -> Path:
    """ROC curve per measure: ``tpr[measure]`` (F,) at false-positive rates evenly spaced in [0, 1]."""
    fig, ax = _subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    for name, t in tpr.items():
        fpr = np.linspace(0.0, 1.0, len(t))
        ax.step(fpr, t, where="post", color=measure_color(name),
                label=f"{name} (AUROC {auroc.get(name, float('nan')):.3f})")
    ax.set_xlabel("false-positive rate (correct examples flagged)")
    ax.set_ylabel("true-positive rate (corrupted found)")
    ax.set_title(title)
    ax.legend(fontsize=7, **_OUTSIDE)
    ax.grid(alpha=0.3)
    return _save(fig, out)
