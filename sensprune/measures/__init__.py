"""Registry of per-example measures: name → direction, description and the hook that computes it.

A measure is computed online by a :class:`sensprune.train.Hook` that exposes ``values()`` →
``{name: ndarray (N,)}``. Several measures may share one hook (a *group*). Every value is oriented
so that **higher = more sensitive / harder / more suspicious**.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

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


def register(group: str, builder: Callable[[HookContext], Any], specs: list[tuple[str, str, str]]) -> None:
    """Register a hook ``builder(ctx) -> Hook`` computing the measures ``(name, direction, description)``."""
    GROUPS[group] = builder
    for name, direction, description in specs:
        MEASURES[name] = MeasureSpec(name, group, direction, description)


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

DEFAULT_MEASURES = ("input_grad", "loss", "el2n", "forgetting", "aum", "confidence", "variability",
                    "correctness")
