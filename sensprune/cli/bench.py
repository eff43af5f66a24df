"""``sensprune bench`` and ``sensprune bench-merge``: the paired retrain grid and its statistics."""

from __future__ import annotations

from pathlib import Path

import click

from sensprune.cli.options import MAX_SEEDS, OneLineErrors, RegularFile


def _shard(ctx, param, value):
    if value is None:
        return (0, 1)
    i, sep, n = str(value).partition("/")
    try:
        i, n = int(i), int(n)
    except ValueError:
        raise click.BadParameter(f"the shard must be i/n like 0/4; got {value!r}.") from None
    if not sep or n < 1 or not 0 <= i < n:
        raise click.BadParameter(f"the shard must be i/n with 0 <= i < n; got {value!r}.")
    return (i, n)


@click.command(cls=OneLineErrors)
@click.option("--config", "config_path", default=None, type=RegularFile(path_type=Path),
              help="Grid TOML ([grid], [data], [train], [score], [bench]); with --selection only its training "
                   "settings and seeds are used.")
@click.option("--selection", "selection", default=None, type=click.Path(path_type=Path), metavar="DIR [DIR ...]",
              help="Bench your own `sensprune prune` folders instead of a grid: each against a random selection "
                   "of the same size per class and against the full set.")
@click.argument("more_selections", nargs=-1, type=click.Path(path_type=Path), metavar="")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--resume", is_flag=True, help="Skip the units already finished in --out (same config required).")
@click.option("--force", is_flag=True, help="Replace an existing bench in --out (the old one stays until the new "
                                            "one is complete).")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True, help="Local worker processes.")
@click.option("--shard", default=None, callback=_shard, metavar="i/n",
              help="Run only units i, i+n, i+2n, ... (0-based) of the plan; join with bench-merge.")
@click.option("--seeds", type=click.IntRange(1, MAX_SEEDS), default=None, help="Override [grid] seeds with 0..N-1.")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Override [train] epochs.")
@click.option("--device", default=None,
              help="Override [train] device: auto | cpu | cuda | cuda:i | mps ([train] default auto = CUDA if "
                   "available, else MPS, else CPU).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def bench(config_path, selection, more_selections, out, resume, force, jobs, shard, seeds, epochs, device, quiet):
    """Retrain on pruned subsets over a grid and answer: does pruning help?

    Grid (--config): datasets × corruptions × measures × rules × fractions × seeds, plus the
    baselines random (each fraction), full and oracle; rules may include the reweighting arms
    reweight:inverse-rank, reweight:softmax and reweight:clip (compared with full). Selections
    (--selection DIR [DIR ...]): your prune folders, each against a random selection of the same
    size per class and against full, with paired seeds. Writes OUT/results.csv, summary.csv,
    detection.csv, verdict.md and prints the verdict.

    \b
    Examples:
      sensprune bench --config benchmarks/open_question/digits.toml --out runs/bench --jobs 2
      sensprune bench --config grid.toml --out runs/bench --resume
      sensprune bench --config grid.toml --out runs/shard0 --shard 0/4   # then bench-merge
      sensprune prune --scores runs/digits --by el2n --rule drop-high --fraction 0.2 --out runs/p
      sensprune bench --selection runs/p --seeds 3 --epochs 10 --out runs/bench_p
    """
    from sensprune.benchmark.config import BenchConfig, load_config

    if more_selections and selection is None:
        raise click.UsageError(f"Got unexpected extra argument(s) ({' '.join(map(str, more_selections))}); "
                               "several folders follow --selection.")
    if selection is None and config_path is None:
        raise click.UsageError("Pass --config GRID.toml (a grid) or --selection DIR [DIR ...] (your prune folders).")
    if resume and force:
        raise click.UsageError("--resume and --force contradict each other (--resume continues the grid in --out, "
                               "--force starts it over); pass one of them.")
    if selection is not None and (resume or shard != (0, 1) or jobs != 1):
        raise click.UsageError("--resume, --shard and --jobs apply to --config grids, not to --selection.")
    cfg = load_config(config_path, require_grid=selection is None) if config_path else BenchConfig()
    cfg = cfg.with_overrides(seeds=seeds, epochs=epochs, device=device)
    if selection is not None:
        from sensprune.benchmark.selection import run_selections

        res = run_selections([selection, *more_selections], out, cfg, force=force, progress=not quiet)
    else:
        from sensprune.benchmark.grid import run_grid

        res = run_grid(cfg, out, jobs=jobs, shard=shard, resume=resume, force=force, progress=not quiet)
    _report(res)


@click.command("bench-merge", cls=OneLineErrors)
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Merged folder.")
@click.option("--force", is_flag=True, help="Replace an existing grid in --out.")
def bench_merge(dirs, out, force):
    """Join the shard folders DIRS of one grid into OUT and recompute summary, detection and verdict.

    \b
    Example (4 shards of one grid, e.g. a SLURM job array):
      sensprune bench --config grid.toml --out runs/g$SLURM_ARRAY_TASK_ID --shard $SLURM_ARRAY_TASK_ID/4
      sensprune bench-merge runs/g0 runs/g1 runs/g2 runs/g3 --out runs/grid
    """
    from sensprune.benchmark.grid import merge

    _report(merge(dirs, out, force=force))


def _report(res) -> None:
    out = res["out"]
    click.echo((Path(out) / "verdict.md").read_text(encoding="utf-8"))
    msg = f"{res['rows']} retrain rows ({res['failed']} failed)"
    if res["missing_units"]:
        msg += f"; {len(res['missing_units'])} unit(s) missing"
    click.echo(f"wrote {out}/results.csv, summary.csv, detection.csv, verdict.md  [{msg}]", err=True)
