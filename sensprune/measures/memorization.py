"""Memorization scores of Feldman & Zhang ("What Neural Networks Memorize and Why: Discovering the Long Tail
via Influence Estimation", NeurIPS 2020), the subsampled estimator; defined in docs/measures.md §9.

The paper's §2 defines the label memorization of example i by algorithm A on data S (its Eq. 1)::

    mem(A, S, i) = P_{h ← A(S)}[h(x_i) = y_i] − P_{h ← A(S \\ i)}[h(x_i) = y_i]

and, because training once per left-out example is out of reach, the subsampled memorization mem_m: the same
difference over random subsets I of m of the n examples, estimated from M models h_1..h_M trained on seeded
random subsets (the paper: m = 0.7 n)::

    mem_i = mean_{k: i ∈ S_k} 1[h_k(x_i) = y_i] − mean_{k: i ∉ S_k} 1[h_k(x_i) = y_i]

Our choices (``sensprune score --measures memorization``): M = ``--mem-models`` (default 200), subsets of exactly
round(``--mem-subset`` · N) examples (default 0.7), each model trained with the score run's model and optimizer
under the bench's ``fit`` rule (:mod:`sensprune.train.fit`: eval-mode training accuracy 0.99 on its subset,
checked after every epoch, at most 100 epochs, constant lr); a model that does not fit by the cap is kept in the
estimate and counted in ``meta.json``. The standard error is the plug-in binomial one of a difference of two
proportions, sqrt(p_in(1 − p_in)/n_in + p_out(1 − p_out)/n_out); an example that no model (or every model)
included has NaN.

Two paths give the same models: one at a time through the training loop (:func:`sensprune.train.loop.train`),
or, for a plain SGD model without BatchNorm or dropout, all at once as one vectorized ensemble
(``torch.func.stack_module_state`` + ``functional_call`` + ``vmap``), each model with its own init seed, subset
mask and batch order (the loop's :func:`~sensprune.train.loop.epoch_order`) and the loop's SGD update. Each
finished model's subset and predictions are written atomically to the work dir, so a killed run resumes from
the models it finished.

``mem_jobs`` = N > 1 (``sensprune score --jobs N``) trains in N worker processes with one torch thread each: one
at a time, each worker takes the next model; as an ensemble, the models to train are split into N contiguous
chunks, one vectorized ensemble per worker. A model depends only on its seed and subset, so the values are those
of one process (tests/test_memorization.py); the workers write the finished models as the parent would.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sensprune.errors import ValidationError
from sensprune.io import read_npz, write_npz
from sensprune.train.fit import FIT_MAX_EPOCHS, FIT_SCHEDULE, FIT_THRESHOLD

NAMES = ("memorization", "memorization_se", "memorization_n_in")


def subset_mask(n: int, fraction: float, base_seed: int, k: int) -> np.ndarray:
    """(n,) bool: the k-th model's random subset of exactly round(fraction · n) examples (seeded by base seed, k)."""
    m = subset_size(n, fraction)
    rng = np.random.default_rng(np.random.SeedSequence([int(base_seed), 26, int(k)]))
    mask = np.zeros(n, bool)
    mask[rng.choice(n, size=m, replace=False)] = True
    return mask


def model_seed(base_seed: int, k: int) -> int:
    """The k-th model's training seed (init and batch order): independent of its subset's stream."""
    return int(np.random.SeedSequence([int(base_seed), 27, int(k)]).generate_state(1)[0])


def subset_size(n: int, fraction: float) -> int:
    m = int(round(fraction * n))
    if not 1 <= m <= n - 1:
        raise ValidationError(f"`--mem-subset` {fraction} keeps {m} of the {n} training examples; each subset "
                              "must leave at least one example in and one out.")
    return m


def estimate_from(inside: np.ndarray, correct: np.ndarray) -> dict[str, np.ndarray]:
    """mem_i, its standard error and n_in from (M, N) bool ``inside`` (i ∈ S_k) and ``correct`` (h_k(x_i) = y_i).

    NaN where an example was in every subset or in none (one of the two proportions is undefined).
    """
    inside, correct = np.asarray(inside, bool), np.asarray(correct, bool)
    n_in = inside.sum(0).astype(np.float64)
    n_out = inside.shape[0] - n_in
    with np.errstate(invalid="ignore", divide="ignore"):
        p_in = (correct & inside).sum(0) / n_in
        p_out = (correct & ~inside).sum(0) / n_out
        se = np.sqrt(p_in * (1 - p_in) / n_in + p_out * (1 - p_out) / n_out)
    return {"memorization": p_in - p_out, "memorization_se": se, "memorization_n_in": n_in}


def check(dataset, config) -> None:
    """What can be refused before anything trains: data in memory, a subset size that leaves examples out, worker
    processes for a model they cannot rebuild."""
    from sensprune.train import distributed as D

    if not hasattr(dataset, "x_train"):
        raise ValidationError("memorization needs the data in memory; drop --stream or this measure.")
    if D.world_size() > 1:
        raise ValidationError("memorization does not support data-parallel (torchrun) runs; run it in a single "
                              "process.")
    subset_size(dataset.n_train, config.measure_options.mem_subset)
    jobs = config.measure_options.mem_jobs
    if jobs > 1 and config.model_factory is not None:
        raise ValidationError(f"memorization in {jobs} worker processes (--jobs, mem_jobs) needs a model given by "
                              f"name, which each worker builds; got the Python object {config.model}. Use 1 job.")


def estimate(dataset, config, *, workdir: Path | None = None, progress: bool = True, ensemble: bool | None = None,
             max_epochs: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Train the M subset models (those not already in ``workdir``) and return the per-example arrays of
    :data:`NAMES` and the note for ``meta.json`` (each model's seed, training accuracy, epochs and fit).

    ``config``: the score config (model, optimizer, ``train.seed`` = the base seed, ``measure_options``, whose
    ``mem_jobs`` is the number of worker processes);
    ``ensemble``: None = vectorized when the model allows it (else one at a time, said once on stderr);
    ``max_epochs``: the fit rule's epoch cap, None = the measure option ``mem_max_epochs`` (``--mem-max-epochs``),
    whose None is :data:`~sensprune.train.fit.FIT_MAX_EPOCHS` (the bench's); a larger cap lets models fit noisy
    labels (stored in the note; a model of ``workdir`` trained under another cap is trained again).
    """
    opts, n = config.measure_options, dataset.n_train
    M, frac, base, jobs = opts.mem_models, opts.mem_subset, config.train.seed, opts.mem_jobs
    if max_epochs is None:
        max_epochs = opts.mem_max_epochs
    cap = FIT_MAX_EPOCHS if max_epochs is None else max_epochs
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ValidationError(f"max_epochs must be an integer >= 1; got {max_epochs!r}.")
    masks = [subset_mask(n, frac, base, k) for k in range(M)]
    done = _load_done(workdir, masks, cap)
    todo = [k for k in range(M) if k not in done]
    why = ensemble_refusal(dataset, config)
    use_ensemble = why is None if ensemble is None else ensemble
    if ensemble and why is not None:
        raise ValidationError(f"memorization: the ensemble path cannot train this model ({why}).")
    if todo and why is not None and ensemble is None:
        print(f"memorization: training the {len(todo)} subset models one at a time ({why}).", file=sys.stderr)
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    path = "ensemble" if use_ensemble and todo else "sequential"
    if jobs > 1 and len(todo) > 1:
        trained = _train_in_workers(dataset, config, path, todo, masks, cap, workdir, jobs, progress)
    else:
        trained = _keep(_trainer(path)(dataset, config, todo, masks, progress, cap), masks, cap, workdir)
    for k, rec in trained:
        done[k] = rec
    inside = np.stack(masks)
    correct = np.stack([done[k]["correct"] for k in range(M)])
    values = estimate_from(inside, correct)
    models = [{"model": k, "seed": model_seed(base, k), "train_acc": float(done[k]["train_acc"]),
               "epochs": int(done[k]["epochs"]), "fit": bool(done[k]["train_acc"] >= FIT_THRESHOLD)}
              for k in range(M)]
    n_fit = sum(m["fit"] for m in models)
    note = {"estimator": "Feldman & Zhang 2020 §2, subsampled memorization mem_m (docs/measures.md §9)",
            "models": M, "subset_fraction": frac, "subset_size": subset_size(n, frac),
            "fit_rule": {"threshold": FIT_THRESHOLD, "max_epochs": cap, "schedule": FIT_SCHEDULE},
            "models_fit": n_fit, "models_not_fit": M - n_fit,
            "path": "ensemble" if use_ensemble else "sequential", "jobs": jobs,
            "se": "plug-in binomial SE of p_in - p_out", "per_model": models}
    if n_fit < M:
        print(f"memorization: {M - n_fit} of {M} subset models did not fit (train accuracy < {FIT_THRESHOLD} after "
              f"{cap} epochs); they are kept in the estimate and listed in meta.json.", file=sys.stderr)
    return values, note


def matrices(dataset, config, workdir: Path, *, max_epochs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(M, N) bool ``inside`` (i ∈ S_k) and ``correct`` (h_k(x_i) = y_i) of the M models :func:`estimate` wrote to
    ``workdir`` (same ``config`` and ``max_epochs``), for analyses of those same models, e.g. split halves
    (``estimate_from(inside[:M // 2], correct[:M // 2])``); every model must be there."""
    opts = config.measure_options
    cap = FIT_MAX_EPOCHS if max_epochs is None else max_epochs
    masks = [subset_mask(dataset.n_train, opts.mem_subset, config.train.seed, k) for k in range(opts.mem_models)]
    done = _load_done(workdir, masks, cap)
    if len(done) < len(masks):
        raise ValidationError(f"{workdir} must hold the {len(masks)} finished models of this config; got {len(done)}.")
    return np.stack(masks), np.stack([done[k]["correct"] for k in range(len(masks))])


def _file(k: int) -> str:
    return f"model_{k:05d}.npz"


def _load_done(workdir: Path | None, masks: list[np.ndarray], cap: int) -> dict[int, dict]:
    """The finished models of an interrupted run (a file whose subset is not the k-th mask, or whose epoch cap is
    not ``cap``, is ignored; a file without a cap is from before the cap could change: the default one)."""
    done: dict[int, dict] = {}
    if workdir is None or not workdir.is_dir():
        return done
    for k, mask in enumerate(masks):
        f = workdir / _file(k)
        if f.is_file():
            arrs = read_npz(f)
            its_cap = int(arrs["max_epochs"].reshape(-1)[0]) if "max_epochs" in arrs else FIT_MAX_EPOCHS
            if np.array_equal(arrs["mask"], mask) and its_cap == cap:
                done[k] = {"correct": arrs["correct"].astype(bool),  # npz keeps a scalar as a (1,) array
                           "train_acc": np.float64(arrs["train_acc"].reshape(-1)[0]),
                           "epochs": np.int64(arrs["epochs"].reshape(-1)[0])}
    return done


def ensemble_refusal(dataset, config) -> str | None:
    """Why the M models cannot be stacked into one vectorized ensemble, or None when they can."""
    from sensprune.train.models import build_model, has_batchnorm

    t = config.train
    if config.model_factory is not None or config.model not in ("mlp", "cnn"):
        return f"model {config.model!r} is not a built-in mlp/cnn"
    if t.optimizer != "sgd":
        return f"optimizer {t.optimizer!r}; the ensemble implements the loop's SGD only"
    if config.dropout:
        return "dropout draws from the global RNG"
    if t.amp != "none" or t.augment != "none" or t.compile:
        return "--amp, --augment and --compile are for one model at a time"
    m = build_model(config.model, dataset.num_classes, dataset.input_shape, widths=config.widths)
    if has_batchnorm(m):
        return "BatchNorm couples the examples of a batch"
    return None


def _fit_config(config, k: int, cap: int):
    return replace(config.train, seed=model_seed(config.train.seed, k), epochs=cap, schedule=FIT_SCHEDULE)


def _trainer(path: str):
    """The training function of a path, looked up when called (so a test can wrap it)."""
    return _train_ensemble if path == "ensemble" else _train_sequential


def _keep(trained, masks, cap: int, workdir: Path | None):
    """Pass ``(k, record)`` through, first writing the model's file to ``workdir`` (atomically) when given."""
    for k, rec in trained:
        if workdir is not None:
            write_npz(workdir / _file(k), {"mask": masks[k], "max_epochs": np.int64(cap), **rec})
        yield k, rec


@dataclass(frozen=True)
class _Arrays:
    """What a worker process needs of the dataset (the training split in memory)."""

    x_train: np.ndarray
    y_train: np.ndarray
    num_classes: int
    input_shape: tuple
    n_train: int


_WORKER: dict[str, Any] = {}


def _init_worker(data, config, path, masks, cap, workdir) -> None:
    import torch

    from sensprune.progress import use_thread_lock

    torch.set_num_threads(1)
    use_thread_lock()  # no multiprocessing lock (a semaphore) for the trainers' disabled bars
    _WORKER.update(data=data, config=config, path=path, masks=masks, cap=cap, workdir=workdir)


def _work(chunk: list[int]) -> list[tuple[int, dict]]:
    w = _WORKER
    trained = _trainer(w["path"])(w["data"], w["config"], chunk, w["masks"], False, w["cap"])
    return list(_keep(trained, w["masks"], w["cap"], w["workdir"]))


def _train_in_workers(dataset, config, path, todo, masks, cap, workdir, jobs, progress):
    """``todo`` trained in ``jobs`` spawned processes (one torch thread each): one model per task one at a time,
    one contiguous chunk per worker as ensembles. Each worker writes its models to ``workdir``."""
    import multiprocessing as mp

    from sensprune.progress import progress_bar, use_thread_lock

    chunks = ([[k] for k in todo] if path == "sequential"
              else [c.tolist() for c in np.array_split(np.asarray(todo), min(jobs, len(todo)))])
    data = _Arrays(np.asarray(dataset.x_train), np.asarray(dataset.y_train), int(dataset.num_classes),
                   tuple(dataset.input_shape), int(dataset.n_train))
    use_thread_lock()  # tqdm's default multiprocessing lock leaks a semaphore under spawn
    bar = progress_bar(total=len(todo), desc=f"memorization models ({jobs} jobs)", enabled=progress, leave=False)
    try:
        with mp.get_context("spawn").Pool(min(jobs, len(chunks)), _init_worker,
                                          (data, config, path, masks, cap, workdir)) as pool:
            for part in pool.imap_unordered(_work, chunks):
                bar.update(len(part))
                yield from part
            pool.close()  # let the workers exit on their own (the context's exit would terminate them)
            pool.join()
    finally:
        bar.close()


def _train_sequential(dataset, config, todo, masks, progress, cap=FIT_MAX_EPOCHS):
    """One model at a time through the training loop, stopped by the ``fit`` rule."""
    from sensprune.progress import progress_bar

    from sensprune.train.fit import fit_stop
    from sensprune.train.loop import resolve_device, train
    from sensprune.train.sources import ArraySource, evaluate, predict_logits

    device = resolve_device(config.train.device)
    src = ArraySource(dataset.x_train, dataset.y_train, device)
    y = np.asarray(dataset.y_train)

    def build():
        return config.build_model(dataset.num_classes, dataset.input_shape)
    for k in progress_bar(todo, desc="memorization models", enabled=progress, leave=False):
        tcfg, mask = _fit_config(config, k, cap), masks[k]
        kept = ArraySource(dataset.x_train[mask], dataset.y_train[mask], device)
        res = train(build, src, tcfg, mask=mask, stop=fit_stop(kept, FIT_THRESHOLD, tcfg.eval_batch_size),
                    progress=False)
        pred = predict_logits(res.model, src, tcfg.eval_batch_size).argmax(1).cpu().numpy()
        acc = evaluate(res.model, kept, tcfg.eval_batch_size)["acc"]
        yield k, {"correct": pred == y, "train_acc": np.float64(acc), "epochs": np.int64(len(res.history))}


def _train_ensemble(dataset, config, todo, masks, progress, cap=FIT_MAX_EPOCHS):
    """All models of ``todo`` at once: stacked parameters, ``vmap`` over models of the loop's step.

    Per model the same init (the global generator seeded by its seed, as the loop does), the same batch order
    (:func:`epoch_order` of its seed and mask; every subset has the same size, so the batches line up), the same
    loss (:func:`batch_loss`) and torch.optim.SGD's update (weight decay, momentum without dampening). A model
    leaves the ensemble at the end of the epoch where it fits (eval-mode accuracy on its subset, the loop's
    ``fit`` rule) or at the cap. The batched matrix products may round differently from one model's, so
    parameters agree to float rounding, not bit for bit (tests/test_memorization.py).
    """
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call, grad, stack_module_state, vmap
    from sensprune.progress import progress_bar

    from sensprune.train.loop import batch_loss, epoch_order, private_rng, resolve_device

    t = config.train
    device = resolve_device(t.device)
    x = torch.as_tensor(dataset.x_train).to(device)
    y = torch.as_tensor(np.asarray(dataset.y_train)).long().to(device)
    n = len(y)
    seeds = [model_seed(t.seed, k) for k in todo]
    models = []
    for s in seeds:
        with private_rng(device):
            torch.default_generator.manual_seed(int(s))
            models.append(config.build_model(dataset.num_classes, dataset.input_shape).to(device))
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    del models
    mask_t = torch.as_tensor(np.stack([masks[k] for k in todo]))
    active = list(range(len(todo)))  # positions (into todo) still training
    mom = {name: None for name in params}

    def loss_fn(p, b, xb, yb):
        logits = functional_call(base, (p, b), (xb,))
        return batch_loss(F.cross_entropy(logits, yb, reduction="none"))
    step_grad = vmap(grad(loss_fn))

    def correct_all(p, b) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for i in range(0, n, t.eval_batch_size):
                xb = x[i:i + t.eval_batch_size]
                logits = vmap(lambda p_, b_: functional_call(base, (p_, b_), (xb,)))(p, b)
                out.append(logits.argmax(-1) == y[i:i + t.eval_batch_size])
        return torch.cat(out, 1)

    bar = progress_bar(total=len(todo), desc="memorization ensemble", enabled=progress, leave=False)
    for epoch in range(cap):
        lr = replace(t, epochs=cap, schedule=FIT_SCHEDULE).lr_at(epoch)
        orders = torch.stack([epoch_order(n, seeds[a], epoch, mask_t[a]) for a in active]).to(device)
        for j in range(0, orders.shape[1], t.batch_size):
            idx = orders[:, j:j + t.batch_size]
            g = step_grad(params, buffers, x[idx], y[idx])
            with torch.no_grad():
                for name, p in params.items():
                    d = g[name].add(p, alpha=t.weight_decay) if t.weight_decay else g[name]
                    if t.momentum:
                        buf = mom[name]
                        mom[name] = d.clone() if buf is None else buf.mul_(t.momentum).add_(d)
                        d = mom[name]
                    p.add_(d, alpha=-lr)
        corr = correct_all(params, buffers)
        acc = [float(corr[i][mask_t[a].to(device)].float().mean()) for i, a in enumerate(active)]
        last = epoch + 1 == cap
        leave = [i for i, v in enumerate(acc) if v >= FIT_THRESHOLD or last]
        for i in leave:
            yield todo[active[i]], {"correct": corr[i].cpu().numpy(), "train_acc": np.float64(acc[i]),
                                    "epochs": np.int64(epoch + 1)}
        bar.update(len(leave))
        if len(leave) == len(active):
            break
        if leave:
            stay = torch.as_tensor([i for i in range(len(active)) if i not in leave], device=device)
            params = {k_: v.index_select(0, stay).detach() for k_, v in params.items()}
            buffers = {k_: v.index_select(0, stay) for k_, v in buffers.items()}
            mom = {k_: None if v is None else v.index_select(0, stay) for k_, v in mom.items()}
            active = [active[i] for i in stay.tolist()]
    bar.close()
