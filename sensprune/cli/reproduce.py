"""``sensprune reproduce``: the paper's six experiments at CPU scale, one verdict line each."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from sensprune.cli.options import OneLineErrors


@click.command(cls=OneLineErrors)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder (must not exist).")
@click.option("--quick", is_flag=True, help="Smaller data, fewer epochs and seeds: under 10 minutes on 2 cores.")
@click.option("--force", is_flag=True, help="Write into an existing --out (its files are overwritten).")
@click.option("--only", default=None, metavar="N,N,...", help="Run only these experiments (1-6), e.g. 2,3.")
@click.option("--seed", type=int, default=0, show_default=True, help="Base seed (runs use seed, seed+1, ...).")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="torch CPU threads.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--tiny", is_flag=True, hidden=True, help="Test-only: a few seconds per experiment.")
def reproduce(out, quick, force, only, seed, threads, quiet, tiny):
    """Reproduce Arpit et al. 2017 ("A Closer Look at Memorization in Deep Networks") at CPU scale.

    \b
    1  easy vs hard examples over many one-epoch runs (Fig. 1)
    2  Gini of loss sensitivity, real vs random inputs, and the unique-class control (Fig. 3)
    3  per-class loss sensitivity matrices, off-diagonal mass (Fig. 4)
    4  CSR and validation accuracy at 0-80% randY / randX noise (Fig. 9/10)
    5  dropout vs training accuracy on random labels and validation accuracy (Fig. 7/8)
    6  epochs to 99% training accuracy vs dataset size, real vs noise (Fig. 2)

    Each writes OUT/expN_*.png and .csv and one verdict line (reproduced / not reproduced /
    inconclusive, computed from the numbers); all lines go to OUT/verdicts.md and OUT/meta.json
    (config, seeds, version, machine, wall time per experiment) and to stdout. Progress on stderr.
    Data: Fashion-MNIST at 14x14 (needs the builtin fashion-mnist dataset).

    \b
    Examples:
      sensprune reproduce --out runs/paper --quick
      sensprune reproduce --out benchmarks/paper --force
      sensprune reproduce --out runs/gini --only 2,3 --seed 1
    """
    import torch

    from sensprune.reproduce import parse_only, run_reproduce

    chosen = parse_only(only)
    torch.set_num_threads(threads)
    scale = "tiny" if tiny else "quick" if quick else "full"
    flags = [f for f, on in (("--quick", quick), ("--force", force)) if on]
    command = " ".join(["sensprune reproduce --out", shlex.quote(str(out)), *flags]
                       + ([f"--only {','.join(map(str, chosen))}"] if only else [])
                       + ([f"--seed {seed}"] if seed else []) + ([f"--threads {threads}"] if threads != 1 else []))
    meta = run_reproduce(out, scale=scale, only=chosen, seed=seed, force=force, progress=not quiet,
                         command=command)
    for e in meta["experiments"].values():
        click.echo(e["line"])
    click.echo(f"wrote {out}/verdicts.md, meta.json and {2 * len(meta['experiments'])} plot/CSV files "
               f"in {meta['wall_time_s']:.0f} s", err=True)
