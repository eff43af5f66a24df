"""``sensprune score``: warmup training with per-example measures computed online."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click
import numpy as np

from sensprune.cli.options import (MAX_SEEDS, OneLineErrors, dataset_options, int_list, load_data, model_options,
                                   str_list, train_options)
from sensprune.config import MEM_MAX_EPOCHS_MAX
from sensprune.errors import SensPruneError, ValidationError
from sensprune.io import check_not_input, check_writable, dataset_inputs, prepare_out
from sensprune.measures import DEFAULT_MEASURES, MEASURES, estimator_text


@click.command(cls=OneLineErrors)
@dataset_options
@model_options
@train_options
@click.option("--seeds", type=click.IntRange(1, MAX_SEEDS), default=1, show_default=True,
              help="Number of warmup runs (seeds seed..seed+N-1); scores are the mean, per-seed arrays kept.")
@click.option("--measures", default=",".join(DEFAULT_MEASURES), show_default=True, callback=str_list,
              help="Comma-separated measures: " + ", ".join(MEASURES))
@click.option("--el2n-epoch", type=click.IntRange(1), default=None,
              help="Epoch (1-based) at which EL2N is taken [default: 10% of --epochs, at least 1].")
@click.option("--at-checkpoints", default=None, callback=int_list, metavar="E1,E2",
              help="Measure input_grad in eval mode over all examples at these epochs (needed with BatchNorm).")
@click.option("--probe-times", default=None, metavar="K|all",
              help="loss_sensitivity (the paper's measure, full horizon): number K of sampled steps t at which "
                   "dL_t/dx is taken exactly through every earlier SGD update (one per stratum of training, seeded, "
                   "stored in meta.json; an unbiased estimate of the mean over t); 'all' = every step = exact mode "
                   "(cost grows with T^2). Also used by --per-class.  [default: 16]")
@click.option("--horizon", default=None, metavar="H|all",
              help="PROXY: truncate loss_sensitivity to the last H updates before each step; the column is then "
                   "named loss_sensitivity_hH (H = 1: a one-step influence surrogate, Spearman 0.5-0.7 with the "
                   "paper's measure). 'all' = exact mode (same as --probe-times all). Not with --probe-times.")
@click.option("--probe-size", type=click.IntRange(1), default=2048, show_default=True,
              help="loss_sensitivity / --per-class: probe set size for L_t (all training data when N <= this, "
                   "else a stratified sample, seed 0).")
@click.option("--probe", "probe_mode", type=click.Choice(["fixed", "next-batch"]), default="fixed",
              show_default=True,
              help="loss_sensitivity_h1 (--horizon 1): L_{s+1} = mean loss of the fixed probe set (see --probe-size), "
                   "or of the next training minibatch at theta_{s+1} (reuses the training gradient: no probe "
                   "pass; a stochastic estimate of the whole-training-set probe that, sampling without "
                   "replacement, misses each example's own loss; the last step uses the fixed probe).")
@click.option("--probe-every", type=click.IntRange(1), default=1, show_default=True, metavar="K",
              help="loss_sensitivity_h1 with the fixed probe, APPROXIMATION: recompute the probe gradient only every "
                   "K-th step and reuse it in between (about K times less probe work; its measured error is stored "
                   "in meta.json). 1 = the proxy as defined.")
@click.option("--step-every", type=click.IntRange(1), default=1, show_default=True, metavar="S",
              help="loss_sensitivity_h1 with the fixed probe, APPROXIMATION: score only every S-th SGD step "
                   "(the mean over those steps; more variance). 1 = every step.")
@click.option("--sensitivity-memory", default=None, metavar="SIZE",
              help="loss_sensitivity: memory budget of the reverse sweep, e.g. 2GB or 512MiB; when the whole replayed "
                   "trajectory does not fit, states are checkpointed every ~sqrt(T) steps and recomputed (same "
                   "values). The plan is printed and stored in meta.json.  [default: 70% of free memory]")
@click.option("--include-direct", is_flag=True,
              help="loss_sensitivity: add the direct term dl(theta_t; x, y)/dx for probe examples.")
@click.option("--per-class", is_flag=True,
              help="Also compute the K x K per-class loss sensitivity g_ij (paper Fig. 4) with the same estimator as "
                   "loss_sensitivity (full horizon, --probe-times; the one-step proxy with --horizon 1): "
                   "per_class.npy/.csv.")
@click.option("--per-class-every", type=click.IntRange(1), default=1, show_default=True,
              help="--per-class with --horizon 1 only: use every k-th step.")
@click.option("--csr", is_flag=True,
              help="Also compute the critical sample ratio (LASS) of test examples after every epoch: csr.csv.")
@click.option("--csr-samples", type=click.IntRange(1), default=500, show_default=True,
              help="Random test examples per CSR evaluation.")
@click.option("--grand-epochs", default=None, callback=int_list, metavar="E1,E2",
              help="Epochs (1-based) at which grand is taken, averaged [default: the EL2N epoch].")
@click.option("--mem-models", default="200", show_default=True, metavar="M",
              help="memorization (Feldman & Zhang 2020): number of subset models, each trained to fit (the bench's "
                   "fit rule) on a seeded random subset; 2..10000.")
@click.option("--mem-subset", default="0.7", show_default=True, metavar="F",
              help="memorization: fraction of the training set each subset model trains on, in (0, 1).")
@click.option("--mem-max-epochs", type=click.IntRange(1, MEM_MAX_EPOCHS_MAX), default=None, metavar="E",
              help="memorization: epoch cap of each subset model's fit rule (training accuracy 0.99 on its subset); "
                   "noisy labels need more than the default (digits with 20% flipped labels: about 140).  "
                   "[default: 100, the bench's cap]")
@click.option("--jobs", type=click.IntRange(1), default=1, show_default=True, metavar="N",
              help="memorization only: train its subset models in N worker processes (one torch thread each); "
                   "same values as --jobs 1. Refused without memorization in --measures.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run with the same config.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def score(dataset, data_root, subsample, label_column, corrupt, stream, workers, model, widths, dropout, epochs,
          batch_size, optimizer, lr, momentum, weight_decay, schedule, seed, device, amp, compile_, augment, seeds,
          measures, el2n_epoch, at_checkpoints, probe_times, horizon, probe_size, probe_mode, probe_every, step_every,
          sensitivity_memory, include_direct, per_class,
          per_class_every, csr,
          csr_samples, grand_epochs, mem_models, mem_subset, mem_max_epochs, jobs, out, force, resume,
          quiet):
    """Train warmup model(s) and score every training example (higher = harder).

    Writes OUT/scores.csv, OUT/scores.npz and OUT/meta.json, and prints a summary.

    \b
    Examples:
      sensprune score --dataset digits --out runs/digits
      sensprune score --dataset fashion-mnist --subsample 10000 --model cnn --epochs 10 --seeds 3 --out runs/fm
      sensprune score --dataset npz:my.npz --measures input_grad,el2n --el2n-epoch 2 --out runs/my
      sensprune score --dataset digits --corrupt randY:0.2 --out runs/noisy
      sensprune score --dataset digits --measures loss_sensitivity,grand --per-class --csr --out runs/paper
      sensprune score --dataset digits --measures loss_sensitivity --probe-times all --epochs 5 --out runs/exact
      sensprune score --dataset npz:cifar_small.npz --model resnet18 --optimizer adamw --augment crop-flip
          --measures loss_sensitivity --sensitivity-memory 4GB --out runs/resnet
      sensprune score --dataset digits --measures loss_sensitivity_h1 --probe next-batch --out runs/proxy
      sensprune score --dataset digits --measures memorization --mem-models 50 --out runs/mem
      sensprune score --dataset digits --measures loss_sensitivity_h1 --probe-size 256 --probe-every 4
          --out runs/proxy-fast
      torchrun --nproc_per_node 4 -m sensprune score --dataset cifar10 --data-root data
          --model resnet18 --device cuda --amp bf16 --at-checkpoints 5,10 --out runs/cifar
    """
    from sensprune.config import TrainConfig, check_seed_range, default_epochs
    from sensprune.io import write_npy
    from sensprune.scoring.stage import ScoreConfig, run_score, summary_rows
    from sensprune.train import distributed as D
    from sensprune.train.loop import autocast_dtype, resolve_device
    from sensprune.train.model_check import check_model

    if jobs != 1 and "memorization" not in measures:
        raise click.UsageError("--jobs applies to the memorization measure only; add it to --measures or drop --jobs.")
    try:  # the runs are seeded --seed .. --seed+--seeds-1: the last one too must be a valid seed
        check_seed_range(seed, seeds, "--seed", "--seeds")
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    partial = _check_out(out, force, resume, dataset, data_root)
    tcfg = TrainConfig(epochs=epochs or default_epochs(measures), batch_size=batch_size, optimizer=optimizer,
                       lr=lr, momentum=momentum, weight_decay=weight_decay, schedule=schedule, seed=seed,
                       device=device, amp=amp, compile=compile_, augment=augment)
    D.init_from_env(device)
    autocast_dtype(tcfg, resolve_device(device))  # refuse --amp fp16 on CPU before anything is written
    data, corrupted = load_data(dataset, data_root, subsample, label_column, corrupt, seed, stream)
    cfg = ScoreConfig(dataset=dataset, model=model, widths=widths or (256, 128), dropout=dropout,
                      measures=measures, seeds=seeds, el2n_epoch=el2n_epoch, at_checkpoints=at_checkpoints,
                      data_options={"data_root": data_root, "subsample": subsample, "label_column": label_column,
                                    "corrupt": corrupt, "stream": stream, "workers": workers if stream else 0},
                      measure_options={"horizon": horizon, "probe_times": probe_times, "probe_size": probe_size,
                                       "probe": probe_mode, "probe_every": probe_every, "step_every": step_every,
                                       "include_direct": include_direct, "per_class": per_class,
                                       "sensitivity_memory": sensitivity_memory,
                                       "per_class_every": per_class_every, "csr": csr, "csr_samples": csr_samples,
                                       "grand_epochs": list(grand_epochs) if grand_epochs else None,
                                       "mem_models": mem_models, "mem_subset": mem_subset,
                                       "mem_max_epochs": mem_max_epochs, "mem_jobs": jobs},
                      train=tcfg)
    check_model(cfg.build_model, data, f"--model {model}")  # one forward on one example, before anything is written
    extra = {} if corrupted is None else {"corrupted.npy": lambda p: write_npy(p, np.asarray(corrupted, np.int64))}
    fresh = not os.path.lexists(partial)
    try:
        table = run_score(data, cfg, out, force=force, resume=resume, progress=not quiet, extra_files=extra)
    except SensPruneError:  # a refused run writes nothing: drop the checkpoint folder this run created
        if fresh and D.is_main():
            shutil.rmtree(partial, ignore_errors=True)
        raise
    if D.is_main():
        _echo_summary(table, summary_rows(table), out)


def _check_out(out: Path, force: bool, resume: bool, dataset: str, data_root) -> Path:
    """Refuse a bad --out before any data is loaded; returns the checkpoint folder ``<out>.partial``."""
    partial = out.parent / (out.name + ".partial")
    if resume and force:
        raise click.UsageError("--resume and --force contradict each other (--resume continues the interrupted "
                               "run, --force discards it and starts over); pass one of them.")
    check_not_input(out, [data_root], allow_inside=True)  # runs may live inside the data root, not above it
    inputs = dataset_inputs(dataset)
    if resume:
        check_writable(out)
    else:
        prepare_out(out, force=force, inputs=inputs)
    if os.path.lexists(partial) and (not partial.is_dir() or not (partial / "config.json").is_file()):
        raise ValidationError(f"{partial} exists and is not an interrupted sensprune run (no config.json); "
                              "choose another --out or remove it yourself.")
    return partial


def _echo_summary(table, rows, out: Path) -> None:
    meta = table.meta
    ds = meta["dataset"]
    click.echo(f"dataset {ds['spec']}  n_train={ds['n_train']}  classes={ds['num_classes']}  "
               f"fingerprint={ds['fingerprint']}")
    for s, hist in meta["history"].items():
        last = hist[-1]
        click.echo(f"seed {s}: train_acc={last['train_acc']:.4f}  test_acc={last.get('test_acc', float('nan')):.4f}"
                   f"  ({len(hist)} epochs)")
    w = max([13] + [len(r[0]) + 2 for r in rows])
    click.echo(f"{'measure':<{w}}{'mean':>11}{'std':>11}{'min':>11}{'median':>11}{'max':>11}{'gini':>8}")
    for name, *vals in rows:
        click.echo(f"{name:<{w}}" + "".join(f"{v:>11.4g}" for v in vals[:-1]) + f"{vals[-1]:>8.3f}")
    for name, note in meta.get("measure_notes", {}).items():  # say which estimator made each sensitivity
        if estimator_text(note):
            click.echo(f"{name}: {estimator_text(note)}")
    for name, info in meta.get("extras", {}).items():
        if "off_diagonal_fraction" in info:
            click.echo(f"{name}: off-diagonal mass fraction {info['off_diagonal_fraction']:.4f}")
        if "curve" in info and info["curve"]:
            click.echo(f"{name}: " + " ".join(f"{v:.3f}" for v in info["curve"]))
    click.echo(f"wrote {out}/scores.csv, scores.npz, meta.json  ({meta['wall_time_s']:.1f} s)")
