"""Registry of per-example measures: name → direction, description and the hook that computes it.

A measure is computed online by a :class:`sensprune.train.Hook` that exposes ``values()`` →
``{name: ndarray (N,)}``. Several measures may share one hook (a *group*). Every value is oriented
so that **higher = more sensitive / harder / more suspicious**.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sensprune.errors import ValidationError
from sensprune.options import MeasureOptions


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


def register(group: str, builder: Callable[[HookContext], Any], specs: list[tuple[str, str, str]]) -> None:
    """Register a hook ``builder(ctx) -> Hook`` computing the measures ``(name, direction, description)``."""
    GROUPS[group] = builder
    for name, direction, description in specs:
        MEASURES[name] = MeasureSpec(name, group, direction, description)


def register_extra(name: str, option: str, builder: Callable[[HookContext], Any],
                   summarize: Callable[[Any], dict]) -> None:
    """Register a hook computing an extra array ``name`` (e.g. a (K, K) matrix), on when ``option`` is set."""
    EXTRAS[name] = (option, builder, summarize)


def check_measures(names) -> list[str]:
    bad = [m for m in names if m not in MEASURES]
    if bad:
        raise ValidationError(f"Unknown measure(s) {', '.join(map(repr, bad))}. Choose from: "
                              f"{', '.join(MEASURES)}.")
    if not names:
        raise ValidationError("At least one measure is needed (--measures).")
    return list(dict.fromkeys(names))


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
    """The measure option ``key`` (a :class:`sensprune.options.MeasureOptions` field), else ``default``."""
    return MeasureOptions.from_value(ctx.config.measure_options).get(key, default)


def _model(ctx: HookContext):
    from sensprune.models import build_model

    c = ctx.config
    return build_model(c.model, ctx.num_classes, ctx.dataset.input_shape, widths=c.widths, dropout=c.dropout)


def _probe(ctx: HookContext):
    from sensprune.measures.unrolled import DEFAULT_PROBE_SIZE, stratified_probe

    return stratified_probe(ctx.dataset.y_train, _opt(ctx, "probe_size", DEFAULT_PROBE_SIZE), seed=0)


def _loss_sensitivity(ctx: HookContext):
    from sensprune.measures import truncated as TR
    from sensprune.measures import unrolled as U

    horizon = U.parse_horizon(_opt(ctx, "horizon", 1))
    model, t = _model(ctx), ctx.config.train
    U.check_unrollable(model, t.optimizer)
    probe, direct = _probe(ctx), bool(_opt(ctx, "include_direct", False))
    probe_mode = TR.parse_probe_mode(_opt(ctx, "probe", "fixed"))
    if horizon == "all" and probe_mode != "fixed":
        raise ValidationError("--probe next-batch works with --horizon 1 only; use --probe fixed with --horizon all.")
    if horizon == "all":
        steps = t.epochs * -(-ctx.n // t.batch_size)
        U.check_exact_fits(model, ctx.dataset.input_shape, ctx.n, t.batch_size, steps, len(probe), t.device)
        return U.ExactSensitivityHook(ctx.n, probe, direct)
    return TR.LossSensitivityHook(ctx.n, probe, horizon, direct, probe_mode=probe_mode)


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
    from sensprune.measures.per_class import PerClassHook
    from sensprune.measures.unrolled import check_unrollable

    hook = PerClassHook(ctx.dataset.y_train, ctx.num_classes, _probe(ctx), _opt(ctx, "per_class_every", 1))
    check_unrollable(_model(ctx), ctx.config.train.optimizer, "--per-class")
    return hook


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
     "Arpit et al. 2017 §3.2: mean over steps of the L1 norm of the gradient of the probe loss w.r.t. the "
     "input, through the parameter updates (--horizon 1 truncated, --horizon all exact)"),
])
register("grand", _grand, [
    ("grand", "higher = larger per-example gradient norm = harder",
     "‖∇_θ ℓ‖₂ over all parameters, eval mode, at --grand-epochs (Paul et al. 2021), torch.func vmap"),
])
register_extra("per_class", "per_class", _per_class, _per_class_summary)
register_extra("csr", "csr", _csr, _csr_summary)

DEFAULT_MEASURES = ("input_grad", "loss", "el2n", "forgetting", "aum", "confidence", "variability",
                    "correctness")
