"""``sensprune report``: an HTML page with figures for a score, prune or bench folder."""

from __future__ import annotations

from pathlib import Path

import click

from sensprune.cli.options import OneLineErrors


@click.command(cls=OneLineErrors)
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="HTML file to write [default: FOLDER/report/report.html]; with --out the PNGs go to "
                   "<stem>_files/ beside it.")
@click.option("--measure", default=None,
              help="Measure of the sensitivity map and gallery (score folders) [default: loss_sensitivity, "
                   "else input_grad, else the first].")
@click.option("--top", type=click.IntRange(1), default=16, show_default=True,
              help="Most (and least) sensitive examples shown in the gallery.")
@click.option("--force", is_flag=True,
              help="Replace an existing report (without it an existing report folder or file is an error).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def report(folder, out, measure, top, force, quiet):
    """Draw the figures of FOLDER (a score, prune or bench folder) into one HTML page.

    The page is self-contained (PNGs embedded as data URIs) and the PNGs are also
    written beside it. Nothing is written when FOLDER is not a sensprune artifact, is
    from a newer format version, or a report already exists (unless --force).

    \b
    Score folders: sensitivity map (measure vs confidence / variability, corrupted
      examples marked), Lorenz curves, Gini over epochs, per-class heatmap (with
      --per-class), accuracy and CSR over epochs, most/least sensitive examples
      (y = given label, ŷ = the warmup model's predicted label).
    Prune folders: counts per class, kept vs dropped score histograms, parent link.
    Bench folders: accuracy vs fraction removed (95% CI), paired difference vs
      random, and with injected noise the ROC curve of each score for finding
      the corrupted examples (AUROC in the legend; AUROC bars for grids that
      stored no ROC points).

    \b
    Examples:
      sensprune report runs/digits
      sensprune report runs/digits --measure el2n --top 32 --out digits.html --force
    """
    from sensprune.reporting.build import build_report

    path = build_report(folder, out=out, measure=measure, top=top, force=force, progress=not quiet)
    click.echo(f"wrote {path}")
