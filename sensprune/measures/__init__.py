"""Registry of per-example measures: name → direction, description and the hook that computes it.

A measure is computed online by a :class:`sensprune.train.hooks.Hook` that exposes ``values()`` →
``{name: ndarray (N,)}``. Several measures may share one hook (a *group*). Every value is oriented
so that **higher = more sensitive / harder / more suspicious**.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from sensprune.config import MeasureOptions
from sensprune.errors import ValidationError


@dataclass(frozen=True)
class MeasureSpec:
    name: str
    group: str
    direction: str
    description: str


@dataclass(frozen=True)
class HookContext:
    """What a hook builder may use: N, number of classes, the score config and the dataset."""

    n: int
    num_classes: int
    config: Any
    dataset: Any


MEASURES: dict[str, MeasureSpec] = {}
GROUPS: dict[str, Callable[[HookContext], Any]] = {}
# extra, non-per-example outputs switched on by a truthy ``measure_options[option]``:
# name -> (option, builder(ctx) -> Hook with extras(), summarize(mean array) -> dict for meta.json)
EXTRAS: dict[str, tuple[str, Callable[[HookContext], Any], Callable[[Any], dict]]] = {}
# measures that are their own set of training runs, not a hook of the warmup: group -> (check(dataset, config),
# estimate(dataset, config, *, workdir, progress) -> ({name: (N,)}, note for meta.json)); the score stage runs
# them beside the warmup. COMPANIONS: the columns a requested measure always brings along (its standard error...).
STANDALONE: dict[str, tuple[Callable[..., None], Callable[..., Any]]] = {}
COMPANIONS: dict[str, tuple[str, ...]] = {}


def register(group: str, builder: Callable[[HookContext], Any], specs: list[tuple[str, str, str]]) -> None:
    """Register a hook ``builder(ctx) -> Hook`` computing the measures ``(name, direction, description)``."""
    GROUPS[group] = builder
    for name, direction, description in specs:
        MEASURES[name] = MeasureSpec(name, group, direction, description)


def register_extra(name: str, option: str, builder: Callable[[HookContext], Any],
                   summarize: Callable[[Any], dict]) -> None:
    """Register a hook computing an extra array ``name`` (e.g. a (K, K) matrix), on when ``option`` is set."""
    EXTRAS[name] = (option, builder, summarize)


def register_standalone(group: str, check: Callable[..., None], estimate: Callable[..., Any],
                        specs: list[tuple[str, str, str]]) -> None:
    """Register a measure group computed by its own training runs (see :data:`STANDALONE`); the first spec is the
    measure, the others its companion columns."""
    STANDALONE[group] = (check, estimate)
    for name, direction, description in specs:
        MEASURES[name] = MeasureSpec(name, group, direction, description)
    COMPANIONS[specs[0][0]] = tuple(name for name, _, _ in specs[1:])


def measure_spec(name: Any) -> MeasureSpec | None:
    """The measure called ``name``: a registered one, or the truncated proxy ``loss_sensitivity_hH`` of any
    horizon H, built from its name (a pure lookup: nothing is registered); None for an unknown name."""
    if name in MEASURES:
        return MEASURES[name]
    h = truncated_horizon(name) if isinstance(name, str) else None
    return None if h is None else _truncated_spec(h)


def hook_builder(group: str) -> Callable[[HookContext], Any]:
    """The hook builder of a measure group (:attr:`MeasureSpec.group`), the truncated proxies' included."""
    if group in GROUPS:
        return GROUPS[group]
    h = truncated_horizon(group)
    if h is None:
        raise KeyError(group)
    return lambda ctx: _loss_sensitivity_truncated(ctx, h)


def check_measures(names) -> list[str]:
    """``names`` without duplicates, in order; an unknown name or none at all is a ValidationError (no side effect)."""
    bad = [m for m in names if measure_spec(m) is None]
    if bad:
        raise ValidationError(f"Unknown measure(s) {', '.join(map(repr, bad))}. Choose from: "
                              f"{', '.join(MEASURES)}.")
    if not names:
        raise ValidationError("At least one measure is needed (--measures).")
    return list(dict.fromkeys(names))


def estimator_text(note: Any) -> str:
    """How a sensitivity column was computed, from its ``measure_notes`` entry ('' for other measures): the
    paper's full-horizon measure (K of T steps, or exact) or a named PROXY."""
    if not isinstance(note, dict) or "mode" not in note:
        return ""
    k = f", K={note['probe_times']} of T={note['steps']} steps" if "probe_times" in note and "steps" in note else ""
    pe, se = note.get("probe_every", 1), note.get("step_every", 1)  # the h1 proxy's own approximations
    if isinstance(pe, int) and pe > 1:
        k += f", APPROXIMATION: probe gradient reused for {pe} steps"
    if isinstance(se, int) and se > 1:
        k += f", APPROXIMATION: 1 step in {se} scored"
    return f"{note['mode']}{k}"


def _input_grad(ctx: HookContext):
    from sensprune.measures.input_grad import CheckpointInputGradHook, InputGradHook

    if ctx.config.at_checkpoints:
        return CheckpointInputGradHook(ctx.n, list(ctx.config.at_checkpoints))
    return InputGradHook(ctx.n)


def _dynamics(ctx: HookContext):
    from sensprune.measures.peers import DynamicsHook

    return DynamicsHook(ctx.n)


def _el2n(ctx: HookContext):
    from sensprune.measures.peers import EL2NHook

    return EL2NHook(ctx.n, ctx.config.resolved_el2n_epoch)


register("input_grad", _input_grad, [
    ("input_grad", "higher = larger direct input gradient ‖∇ₓℓ‖₁ = more sensitive",
     "mean over presentations of the L1 norm of the per-example input gradient (direct term only)"),
])
register("dynamics", _dynamics, [
    ("loss", "higher = larger loss = harder", "mean per-example cross-entropy over presentations"),
    ("forgetting", "higher = forgotten more often = harder (never learned = presentations + 1)",
     "count of correct→incorrect transitions between presentations (Toneva et al. 2019)"),
    ("aum", "higher = lower margin = more suspicious (value is −AUM)",
     "minus the mean over presentations of assigned logit − largest other logit (Pleiss et al. 2020)"),
    ("confidence", "higher = less confident = harder (value is 1 − mean p(y|x))",
     "dataset cartography confidence, inverted (Swayamdipta et al. 2020)"),
    ("variability", "higher = more variable p(y|x) across presentations = more ambiguous",
     "std over presentations of p(y|x) (Swayamdipta et al. 2020)"),
    ("correctness", "higher = more often wrong (value is 1 − fraction correct)",
     "fraction of presentations classified wrongly"),
])
register("el2n", _el2n, [
    ("el2n", "higher = larger error vector = harder",
     "‖softmax(f(x)) − onehot(y)‖₂ at --el2n-epoch, eval mode (Paul et al. 2021)"),
])


def _opt(ctx: HookContext, key: str, default=None):
    """The measure option ``key`` (a :class:`sensprune.config.MeasureOptions` field), else ``default``."""
    return MeasureOptions.from_value(ctx.config.measure_options).get(key, default)


def _model(ctx: HookContext):
    return ctx.config.build_model(ctx.num_classes, ctx.dataset.input_shape)


def _probe(ctx: HookContext):
    from sensprune.measures.loss_sensitivity.exact import stratified_probe

    return stratified_probe(ctx.dataset.y_train, _opt(ctx, "probe_size"), seed=0)


def _steps(ctx: HookContext) -> int:
    t = ctx.config.train
    return t.epochs * -(-ctx.n // t.batch_size)


def _loss_sensitivity(ctx: HookContext):
    """The paper's measure, full horizon: sampled probe steps (default) or exact (``probe_times="all"``)."""
    from sensprune.measures.loss_sensitivity import sampled as S
    from sensprune.measures.loss_sensitivity import exact as U
    from sensprune.train.loop import resolve_device

    horizon, times = _opt(ctx, "horizon", None), _opt(ctx, "probe_times", None)
    if horizon not in (None, "all"):
        raise ValidationError(f"--horizon {horizon} is the truncated proxy: request it as the measure "
                              f"loss_sensitivity_h{horizon}, not loss_sensitivity.")
    if _opt(ctx, "probe", "fixed") != "fixed":
        raise ValidationError("--probe next-batch belongs to the one-step proxy; use --measures loss_sensitivity_h1 "
                              "(or --horizon 1) with it.")
    for flag in ("probe_every", "step_every"):
        if _opt(ctx, flag, 1) != 1:
            raise ValidationError(f"--{flag.replace('_', '-')} belongs to the one-step proxy; use --measures "
                                  "loss_sensitivity_h1 (or --horizon 1) with it.")
    model, t = _model(ctx), ctx.config.train
    U.check_replayable(t.optimizer)
    probe, direct = _probe(ctx), bool(_opt(ctx, "include_direct", False))
    steps = _steps(ctx)
    if horizon == "all":
        times = "all"
    k = min(S.DEFAULT_PROBE_TIMES, steps) if times is None else S.check_probe_times(times, steps)
    budget = _opt(ctx, "sensitivity_memory", None)
    plan = S.memory_plan(model, t.optimizer, n=ctx.n, input_shape=ctx.dataset.input_shape, batch_size=t.batch_size,
                         steps=steps, adjoints=k, budget=budget, device=str(resolve_device(t.device)),
                         momentum=t.momentum)
    hook = S.SampledSensitivityHook(ctx.n, probe, "all" if times == "all" else k, include_direct=direct,
                                    memory=budget)
    hook.plan_preview = plan
    return hook


def truncated_horizon(name: str) -> int | None:
    """H of a truncated-proxy measure name ``loss_sensitivity_hH``, else None."""
    m = re.fullmatch(r"loss_sensitivity_h([1-9][0-9]*)", name)
    return int(m.group(1)) if m else None


def _loss_sensitivity_truncated(ctx: HookContext, horizon: int):
    from sensprune.measures.loss_sensitivity import proxy as TR
    from sensprune.measures.loss_sensitivity import exact as U

    if _opt(ctx, "probe_times", None) is not None:
        raise ValidationError(f"--probe-times belongs to the full-horizon loss_sensitivity, not to the proxy "
                              f"loss_sensitivity_h{horizon}.")
    if _opt(ctx, "horizon", None) not in (None, horizon):
        raise ValidationError(f"--horizon {_opt(ctx, 'horizon')} disagrees with the measure "
                              f"loss_sensitivity_h{horizon}.")
    model, t = _model(ctx), ctx.config.train
    U.check_unrollable(model, t.optimizer)
    return TR.LossSensitivityHook(ctx.n, _probe(ctx), horizon, bool(_opt(ctx, "include_direct", False)),
                                  probe_mode=_opt(ctx, "probe", "fixed"), probe_every=_opt(ctx, "probe_every", 1),
                                  step_every=_opt(ctx, "step_every", 1))


def _grand(ctx: HookContext):
    import torch

    from sensprune.measures.grand import GraNdHook, check_grand

    epochs = list(_opt(ctx, "grand_epochs", None) or [ctx.config.resolved_el2n_epoch])
    bad = [e for e in epochs if not (isinstance(e, int) and 1 <= e <= ctx.config.train.epochs)]
    if bad:
        raise ValidationError(f"--grand-epochs must be in 1..{ctx.config.train.epochs} (the warmup's epochs); "
                              f"got {bad[0]!r}.")
    d = ctx.dataset
    check_grand(_model(ctx), torch.as_tensor(d.x_train[:2]), torch.as_tensor(d.y_train[:2]))
    return GraNdHook(ctx.n, epochs)


def _per_class(ctx: HookContext):
    """Per-class g_ij with loss_sensitivity's estimator: full horizon (default) or the one-step proxy."""
    from sensprune.measures.loss_sensitivity import sampled as S
    from sensprune.measures.per_class import PerClassFullHook, PerClassHook
    from sensprune.measures.loss_sensitivity.exact import check_replayable, check_unrollable

    horizon, times = _opt(ctx, "horizon", None), _opt(ctx, "probe_times", None)
    if horizon == 1:
        check_unrollable(_model(ctx), ctx.config.train.optimizer, "--per-class --horizon 1")
        return PerClassHook(ctx.dataset.y_train, ctx.num_classes, _probe(ctx), _opt(ctx, "per_class_every", 1))
    if horizon not in (None, "all"):
        raise ValidationError(f"--per-class supports the full horizon (--probe-times) or --horizon 1; "
                              f"got --horizon {horizon}.")
    if _opt(ctx, "per_class_every", 1) != 1:
        raise ValidationError("--per-class-every applies to the one-step proxy (--horizon 1) only; the full-horizon "
                              "per-class matrix uses --probe-times.")
    check_replayable(ctx.config.train.optimizer, "--per-class")
    steps = _steps(ctx)
    k = (S.check_probe_times("all" if horizon == "all" else times, steps) if horizon == "all" or times is not None
         else min(S.DEFAULT_PROBE_TIMES, steps))
    return PerClassFullHook(ctx.dataset.y_train, ctx.num_classes, _probe(ctx), k)


def _csr(ctx: HookContext):
    import torch

    from sensprune.measures.csr import CSRHook, _logits, lass_parameters

    d = ctx.dataset
    model = _model(ctx).eval()
    with torch.no_grad():
        _logits(model, torch.as_tensor(d.x_test[:2]))
    params = lass_parameters(d.info.get("input_range", 1.0))
    return CSRHook(d.x_test, params, _opt(ctx, "csr_samples", 500), seed=ctx.config.train.seed)


def _per_class_summary(g) -> dict:
    from sensprune.measures.per_class import off_diagonal_fraction

    return {"off_diagonal_fraction": off_diagonal_fraction(g), "file": "per_class.npy, per_class.csv"}


def _csr_summary(curve) -> dict:
    return {"curve": [float(v) for v in curve], "file": "csr.csv"}


register("loss_sensitivity", _loss_sensitivity, [
    ("loss_sensitivity", "higher = larger ‖∂L_t/∂x‖₁ through the SGD updates = more sensitive",
     "Arpit et al. 2017 §3.2, the paper's measure: mean over steps t of the L1 norm of the gradient of the probe "
     "loss L_t w.r.t. the input, through every earlier parameter update; estimated from --probe-times K sampled "
     "steps, each exact (unbiased), or exact at every step with --probe-times all"),
])


def _truncated_spec(h: int) -> MeasureSpec:
    """The truncated proxy of horizon ``h`` (group = its name; its hook: :func:`_loss_sensitivity_truncated`)."""
    name = f"loss_sensitivity_h{h}"
    return MeasureSpec(name, name, "higher = larger truncated ‖∂L_t/∂x‖₁ = more sensitive (a proxy)",
                       f"PROXY, not the paper's measure: loss sensitivity truncated to the last {h} SGD update(s) "
                       "before each step" + (" (a one-step influence surrogate)" if h == 1 else "") + "; its ranking "
                       "agrees with the paper's measure only at Spearman 0.5-0.7 on digits "
                       "(benchmarks/unrolled_accuracy/results.txt)")


_h1 = _truncated_spec(1)  # listed among the measures; any other horizon is built by name (measure_spec)
register(_h1.group, hook_builder(_h1.group), [(_h1.name, _h1.direction, _h1.description)])
register("grand", _grand, [
    ("grand", "higher = larger per-example gradient norm = harder",
     "‖∇_θ ℓ‖₂ over all parameters, eval mode, at --grand-epochs (Paul et al. 2021), torch.func vmap"),
])


def _memorization_check(dataset, config) -> None:
    from sensprune.measures.memorization import check

    check(dataset, config)


def _memorization(dataset, config, *, workdir=None, progress=True):
    from sensprune.measures.memorization import estimate

    return estimate(dataset, config, workdir=workdir, progress=progress)


register_standalone("memorization", _memorization_check, _memorization, [
    ("memorization", "higher = the label is fitted only when the example is trained on = more memorized",
     "Feldman & Zhang 2020 §2, subsampled memorization: P(h(x)=y | x in S) - P(h(x)=y | x not in S) over "
     "--mem-models models trained to fit (the bench's fit rule) on random --mem-subset subsets S "
     "(docs/measures.md §9)"),
    ("memorization_se", "higher = less certain memorization estimate (not a ranking of examples)",
     "standard error of memorization: sqrt(p_in(1-p_in)/n_in + p_out(1-p_out)/n_out), binomial plug-in"),
    ("memorization_n_in", "higher = more subset models trained on the example (a count, not a ranking of examples)",
     "n_in of memorization; the other --mem-models minus n_in models estimate p_out"),
])
register_extra("per_class", "per_class", _per_class, _per_class_summary)
register_extra("csr", "csr", _csr, _csr_summary)

DEFAULT_MEASURES = ("input_grad", "loss", "el2n", "forgetting", "aum", "confidence", "variability",
                    "correctness")
