"""``sensprune prune``: scores -> keep/drop index files (or loss weights)."""

from __future__ import annotations

from pathlib import Path

import click

from sensprune.cli.options import OneLineErrors
from sensprune.config import MAX_SEED
from sensprune.data.locate import record_location
from sensprune.errors import ValidationError
from sensprune.io import check_not_input, dataset_inputs, prepare_out, prepare_out_file
from sensprune.pruning.export import check_export_path
from sensprune.pruning.stage import REWEIGHTS, RULES, load_matching_dataset, select, write_selection
from sensprune.scoring.table import load_scores

UNIT_OPEN = click.FloatRange(0, 1, min_open=True, max_open=True)
UNIT_HALF = click.FloatRange(0, 1, max_open=True)


@click.command(cls=OneLineErrors)
@click.option("--scores", "scores_dir", required=True, type=click.Path(path_type=Path),
              help="Folder written by 'sensprune score'.")
@click.option("--by", required=True, help="Measure to rank by; several comma-separated are rank-averaged.")
@click.option("--rule", type=click.Choice(RULES), help="How to drop examples (or use --reweight).")
@click.option("--reweight", "reweight_method", type=click.Choice(REWEIGHTS),
              help="Keep every example and write loss weights instead of dropping.")
@click.option("--fraction", type=UNIT_OPEN, help="Fraction REMOVED (clip: fraction down-weighted).")
@click.option("--per-class", is_flag=True, help="Apply the rule inside each class.")
@click.option("--min-per-class", type=click.IntRange(min=0), default=0, show_default=True,
              help="Give small classes back examples until they keep this many.")
@click.option("--allow-empty-class", is_flag=True, help="Allow a rule to remove a whole class.")
@click.option("--low", type=UNIT_HALF, help="keep-middle: fraction removed from the bottom.")
@click.option("--high", type=UNIT_HALF, help="keep-middle: fraction removed from the top.")
@click.option("--beta", type=UNIT_HALF, default=0.0, show_default=True,
              help="stratified: hardest fraction removed before binning.")
@click.option("--bins", type=click.IntRange(min=1), default=50, show_default=True,
              help="stratified: score bins.")
@click.option("--above", help="threshold: remove scores above this (number, q0.9 quantile or z2.0 z-score).")
@click.option("--below", help="threshold: remove scores below this (number, q0.1 or z-2.0).")
@click.option("--temperature", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
              help="Reweighting temperature (larger = flatter weights).")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True,
              help="Seed of the random and stratified rules.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--force", is_flag=True, help="Replace --out (and --export-data) if it exists.")
@click.option("--export-data", "export_path", type=click.Path(path_type=Path),
              help="Also write a cleaned copy of the data (.npz, CSV, or an ImageFolder file list).")
@click.option("--data-root", type=click.Path(path_type=Path),
              help="Folder holding the data for --export-data when it moved (tried first; then the path "
                   "relative to the score folder, the recorded absolute path, the spec as typed).")
@click.option("--dataset", "dataset_spec", default=None, metavar="SPEC",
              help="For a folder made by a Tracker without dataset=: the data it scored (checked against the "
                   "Tracker's training fingerprint), recorded in --out so --export-data and bench --selection "
                   "can reload it.")
def prune(scores_dir, by, rule, reweight_method, fraction, per_class, min_per_class, allow_empty_class, low,
          high, beta, bins, above, below, temperature, seed, out, force, export_path, data_root, dataset_spec):
    """Remove (or down-weight) the most or least sensitive training examples.

    Scores are oriented higher = harder. --fraction is always the fraction
    REMOVED. Writes keep.npy/keep.txt, drop.npy/drop.txt (sorted indices into
    the training set), selection.csv, meta.json and, with --reweight,
    weights.npy (mean 1, higher score -> lower weight).

    \b
    Rules:
      drop-high    remove the highest scores      drop-low  remove the lowest
      keep-middle  remove both tails (--low/--high)
      stratified   coverage-centric (Zheng et al. 2023): drop hardest --beta,
                   then sample evenly across --bins score bins
      threshold    remove --above/--below a value, quantile q0.9 or z-score z2.0
      random       the baseline
    \b
    Examples:
      sensprune prune --scores runs/digits --by el2n --rule drop-high \\
          --fraction 0.1 --out runs/digits-pruned
      sensprune prune --scores runs/digits --by el2n,input_grad --rule stratified \\
          --fraction 0.5 --beta 0.1 --per-class --out runs/ccs
      sensprune prune --scores runs/digits --by el2n --reweight softmax \\
          --temperature 2 --out runs/weights
    """
    # Everything is validated before anything is written.
    _refuse_unused_options(rule, reweight_method)
    prepare_out(out, force=force, inputs=[scores_dir])
    if export_path is not None:
        if export_path.resolve() == out.resolve():
            raise ValidationError(f"--export-data {export_path} is the same path as --out.")
        prepare_out_file(export_path, force=force, inputs=[scores_dir], option="--export-data")
    table = load_scores(scores_dir)
    if export_path is not None:  # the extension must match the format before anything is written
        check_export_path(table.meta.get("dataset", {}).get("spec", ""), export_path)
    if export_path is not None:  # never overwrite the data the scores were made from
        check_not_input(export_path, dataset_inputs(table.meta.get("dataset", {}).get("spec")),
                        option="--export-data")
    if rule is not None:
        opts = dict(fraction=fraction, per_class=per_class, min_per_class=min_per_class, low=low, high=high,
                    beta=beta, bins=bins, above=above, below=below, allow_empty_class=allow_empty_class,
                    seed=seed)
    else:
        opts = dict(fraction=fraction, per_class=per_class, seed=seed)
    sel = select(table, by, rule, reweight_method=reweight_method, temperature=temperature, **opts)
    dataset = None
    if dataset_spec is not None:
        dataset = _tracker_dataset(sel.meta.get("dataset") or {}, dataset_spec, data_root)
        sel.meta["dataset"] = {**dataset.describe(), "train_fingerprint": sel.meta["dataset"]["train_fingerprint"]}
    if export_path is not None and dataset is None:
        dataset = load_matching_dataset(sel.meta["dataset"], data_root=data_root, folder=scores_dir)
    # folders that travel: where the data is, relative to --out too
    sel.meta["dataset"] = record_location(sel.meta["dataset"], out, read_from=scores_dir, data_root=data_root)
    fmt = write_selection(sel, out, force=force, dataset=dataset, export_path=export_path)  # both or neither
    _summary(sel)
    click.echo(f"Wrote {out}/ (keep.npy, drop.npy, selection.csv, meta.json"
               f"{', weights.npy' if sel.weights is not None else ''})")
    if fmt is not None:
        click.echo(f"Wrote {export_path} ({fmt}, {len(sel.keep)} training examples)")


def _tracker_dataset(made_from: dict, spec: str, data_root):
    """The dataset ``--dataset spec`` names, checked against a Tracker folder's training fingerprint."""
    from sensprune.data import load_dataset
    from sensprune.io import fingerprint_arrays

    if made_from.get("spec") != "python:tracker":
        raise ValidationError(f"`--dataset` is only for folders made by a Tracker without dataset=; got {spec!r}, "
                              f"but the scores record dataset {made_from.get('spec')!r} (remove --dataset).")
    want = made_from.get("train_fingerprint")
    if not want:
        raise ValidationError(f"`--dataset` {spec!r} cannot be checked: the Tracker folder records no training "
                              "fingerprint (give Tracker(..., dataset=...) or eval_data=(x, y) of the whole "
                              "training set).")
    ds = load_dataset(spec, data_root=None if data_root is None else str(data_root))
    have = fingerprint_arrays(ds.x_train, ds.y_train)
    if have != want:
        raise ValidationError(f"`--dataset` must be the data the Tracker scored (training fingerprint {want}); "
                              f"got {spec!r}, whose training split has fingerprint {have}.")
    return ds


# option -> (the rules / reweightings it applies to, why); an option given explicitly elsewhere is refused
_ALL_RULES, _FRACTION_RULES = tuple(RULES), ("drop-high", "drop-low", "keep-middle", "stratified", "random")
_APPLIES = {
    "fraction": (_FRACTION_RULES + ("clip",), "the fraction removed (with --reweight: only clip down-weights a "
                                              "fraction; softmax and inverse-rank weight every example)"),
    "low": (("keep-middle",), "keep-middle's bottom tail"),
    "high": (("keep-middle",), "keep-middle's top tail"),
    "beta": (("stratified",), "stratified's hardest fraction"),
    "bins": (("stratified",), "stratified's score bins"),
    "above": (("threshold",), "threshold's upper cut"),
    "below": (("threshold",), "threshold's lower cut"),
    "min_per_class": (_ALL_RULES, "a rule's floor on kept examples (a reweighting keeps every example)"),
    "allow_empty_class": (_ALL_RULES, "a rule's empty-class check (a reweighting keeps every example)"),
    "temperature": (REWEIGHTS, "the reweighting temperature (a rule does not weight)"),
    "seed": (("random", "stratified"), "the random draw of the random and stratified rules (the other rules "
                                       "are deterministic)"),
}


def _refuse_unused_options(rule, reweight_method) -> None:
    """Refuse an option the chosen rule or reweighting would ignore (it would silently do nothing)."""
    chosen = rule or reweight_method
    if chosen is None or (rule is not None and reweight_method is not None):
        return  # select() reports "exactly one of --rule or --reweight"
    ctx = click.get_current_context()
    what = f"--rule {rule}" if rule else f"--reweight {reweight_method}"
    for name, (applies, why) in _APPLIES.items():
        src = ctx.get_parameter_source(name)
        if src not in (None, click.core.ParameterSource.DEFAULT) and chosen not in applies:
            opt = "--" + name.replace("_", "-")
            raise ValidationError(f"{opt} does not apply to {what}: it sets {why}; remove it.")


def _summary(sel) -> None:
    c, meta = sel.meta["counts"], sel.meta
    how = f"rule {meta['rule']}" if meta["rule"] else f"reweight {meta['reweight']}"
    click.echo(f"{how} by {'+'.join(meta['measure'])} ({meta['direction']}): "
               f"removed {c['removed']} of {c['n']} ({c['removed_fraction']:.1%}), "
               f"kept {c['kept']} ({c['kept_fraction']:.1%})")
    click.echo(f"{'class':>6} {'n':>7} {'removed':>8} {'kept':>7} {'removed%':>9}")
    for k, r in c["per_class"].items():
        click.echo(f"{k:>6} {r['n']:>7} {r['removed']:>8} {r['kept']:>7} {r['removed_fraction']:>9.1%}")
    if sel.weights is not None:
        w = sel.weights
        click.echo(f"weights: mean {w.mean():.3f}, min {w.min():.3g}, max {w.max():.3g}")
