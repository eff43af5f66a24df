"""``sensprune reproduce``: the paper's six experiments at CPU scale, one verdict line each."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from sensprune.cli.options import OneLineErrors
from sensprune.config import MAX_SEED
from sensprune.errors import ValidationError


@click.command(cls=OneLineErrors)
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output folder (must not exist, or --force to replace an earlier reproduce folder).")
@click.option("--quick", is_flag=True, help="Smaller data, fewer epochs and seeds: about 2 minutes of CPU, under 5 "
                                            "minutes on 2 cores (benchmarks/paper/README.md).")
@click.option("--force", is_flag=True, help="Replace an existing --out that holds an earlier reproduce run.")
@click.option("--only", default=None, metavar="N,N,...", help="Run only these experiments (1-6), e.g. 2,3.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True,
              help=f"Base seed (runs use seed, seed+1, ...; the last at most {MAX_SEED}).")
@click.option("--seeds", type=click.IntRange(1), default=None,
              help="Seeds per experiment 2-6 (default: 3, or 5 where affordable; experiment 1's seeds are its "
                   "one-epoch runs).")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="torch CPU threads.")
@click.option("--settings", type=click.Path(path_type=Path), default=None,
              help="Settings file (TOML) with every experiment's sizes, epochs, seeds, thresholds and margins "
                   "[default: benchmarks/paper/settings.toml].")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--tiny", is_flag=True, hidden=True, help="Test-only: a few seconds per experiment.")
def reproduce(out, quick, force, only, seed, seeds, threads, settings, quiet, tiny):
    """Reproduce Arpit et al. 2017 ("A Closer Look at Memorization in Deep Networks") at CPU scale.

    \b
    1  easy vs hard examples, dispersion of per-example difficulty (§3.1, Fig. 1)
    2  Gini of full-horizon loss sensitivity, real vs random inputs (§3.2, Fig. 3)
    3  per-class full-horizon loss sensitivity, off-diagonal fraction (§3.2, Fig. 4)
    4  CSR and validation accuracy under random labels / inputs (§4, Figs. 7-9)
    5  dropout and weight decay vs memorization of random labels (§5, Figs. 10-11)
    6  epochs to fit vs proportion of Gaussian inputs (§3.3.2, Fig. 6)

    Each writes OUT/expN_*.png and .csv and a verdict (reproduced / not reproduced at this scale
    (reason) / inconclusive (CI overlaps 0)) computed from a 95% interval over seeds or examples,
    with its rule and CSV rows; all lines go to OUT/verdicts.md and OUT/meta.json (config, seeds,
    version, machine, load, wall time per experiment) and to stdout. Progress on stderr.
    Data: Fashion-MNIST at 14x14 standing in for the paper's MNIST (Debian package
    dataset-fashion-mnist).

    \b
    Examples:
      sensprune reproduce --out runs/paper --quick
      sensprune reproduce --out benchmarks/paper --force
      sensprune reproduce --out runs/gini --only 2,3 --seed 1 --seeds 5
    """
    import torch

    from sensprune.reproduce import check_seed_span, parse_only, resolve_scale, run_reproduce

    chosen = parse_only(only)
    scale = "tiny" if tiny else "quick" if quick else "full"
    sc = resolve_scale(scale, seeds, settings)[1]  # a bad settings file is refused as an input (exit 1)
    try:  # --seed with the runs of the chosen experiments: a usage error (exit 2), before anything is written
        check_seed_span(seed, sc, chosen, "--seed")
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    torch.set_num_threads(threads)
    flags = [f for f, on in (("--quick", quick), ("--force", force)) if on]
    command = " ".join(["sensprune reproduce --out", shlex.quote(str(out)), *flags]
                       + ([f"--only {','.join(map(str, chosen))}"] if only else [])
                       + ([f"--seed {seed}"] if seed else []) + ([f"--seeds {seeds}"] if seeds else [])
                       + ([f"--threads {threads}"] if threads != 1 else [])
                       + ([f"--settings {shlex.quote(str(settings))}"] if settings else []))
    meta = run_reproduce(out, scale=scale, only=chosen, seed=seed, seeds=seeds, force=force, progress=not quiet,
                         command=command, settings=settings)
    for e in meta["experiments"].values():
        for line in e["lines"]:
            click.echo(line)
    click.echo(f"wrote {out}/verdicts.md, meta.json and {2 * len(meta['experiments'])} plot/CSV files "
               f"in {meta['wall_time_s']:.0f} s", err=True)
