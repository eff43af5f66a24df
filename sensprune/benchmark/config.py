"""The benchmark grid's config: a frozen :class:`BenchConfig` read from TOML, unknown keys rejected.

A grid file (``sensprune bench --config grid.toml``)::

    [grid]
    datasets    = ["digits"]                      # any --dataset spec
    corruptions = ["none", "randY:0.2", "randY-asym:0.2", "randX:0.2"]
    measures    = ["input_grad", "el2n", "forgetting", "aum", "random"]   # + cv_confidence
    rules       = ["drop-high", "drop-low"]       # also keep-middle, stratified, and the reweighting
                                                  # arms reweight:inverse-rank, reweight:softmax, reweight:clip
    fractions   = [0.1, 0.2, 0.3, 0.5]            # fraction REMOVED
    seeds       = 5                               # 0..4, or an explicit list [0, 1, 2]

    [data]      subsample = 4000, data_root = "...", subsample_seed = 0
    [train]     TrainConfig fields of every retrain (epochs, batch_size, lr, optimizer, ...; no seed)
    [score]     warmup: model, widths, dropout, epochs (default = train.epochs), el2n_epoch,
                measure_options = {horizon = 1, probe_size = 256}   (ScoreConfig.measure_options),
                mem_models = 200, mem_subset = 0.7, mem_max_epochs = 100 (the measure memorization: ``sensprune
                score --mem-models --mem-subset --mem-max-epochs``; its M subset models train to fit by their own
                rule, capped at mem_max_epochs, whatever the budget),
                budget = "epochs" (the warmup runs [score] epochs with [train] schedule) or "fit" (it trains
                until it fits its noisy training set, by the [bench] fit rule: fit_threshold, max_epochs,
                fit_schedule; the measures are averaged over that whole run)
    [bench]     per_class, min_per_class, beta, bins, cv_folds, threads,
                budget = "epochs" (every retrain runs train.epochs), "steps" (a pruned run gets
                round(epochs * N / n_kept) epochs, about as many SGD steps as the full run), "fit"
                (train until the training accuracy on the run's own, possibly noisy, examples reaches
                fit_threshold = 0.99, at most max_epochs = 100, with the lr schedule fit_schedule =
                "constant" (cosine/step span max_epochs); the warmup keeps [train] schedule) or
                "fit-steps" (the full run trains to fit as under "fit"; every other run of its seed
                trains exactly the SGD steps that took: equal compute). Under both fit budgets the
                reweighting arms train the full run's steps (they keep every example),
                margin = 0.01 (the equivalence margin δ of the three-way call, in accuracy: 1 point),
                temperature = 1.0 (of the reweighting arms, as ``sensprune prune --temperature``),
                warmup_cache = "DIR" (optional: warmup scores saved per unit and reused by any grid
                whose unit has the same data and warmup config, e.g. an "epochs" and a "fit" grid)

Everything that can be checked without training is checked here (names of datasets' kinds,
measures, rules, fractions, corruptions) and reported as one :class:`ValidationError`.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sensprune.config import (DEFAULT_MEM_MODELS, DEFAULT_MEM_SUBSET, MAX_SEEDS, MAX_WIDTH, MEM_MAX_EPOCHS_MAX,
                              MEM_MODELS_MAX, SCHEDULES, MeasureOptions, TrainConfig)
from sensprune.errors import ValidationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Measures the bench adds to the registered ones: the random rule and the cross-validated-confidence baseline.
BENCH_MEASURES = ("random", "cv_confidence")
#: Rules that take a removed fraction (``random`` is always run as the baseline).
BENCH_RULES = ("drop-high", "drop-low", "keep-middle", "stratified")
#: Noise kinds the bench can inject (``unique`` is excluded: its test accuracy is meaningless).
CORRUPTION_KINDS = ("none", "randY", "randY-asym", "randX")
#: Prefix of a reweighting arm in [grid] rules: ``reweight:<method>`` (a method of sensprune.pruning.stage.REWEIGHTS).
REWEIGHT_PREFIX = "reweight:"
#: Training budget of a retrain: the same epochs as the full run, about the same SGD steps, until it fits, or
#: exactly the SGD steps the full run of its seed needed to fit.
BUDGETS = ("epochs", "steps", "fit", "fit-steps")
#: Length of the warmup that scores the examples: ``[score] epochs``, or until it fits its (noisy) training set.
WARMUP_BUDGETS = ("epochs", "fit")
#: Default equivalence margin δ of the three-way call (accuracy, as a fraction: 0.01 = 1 point).
DEFAULT_MARGIN = 0.01


@dataclass(frozen=True)
class GridSpec:
    datasets: tuple[str, ...] = ("digits",)
    corruptions: tuple[str, ...] = ("none",)
    measures: tuple[str, ...] = ("input_grad", "el2n", "forgetting", "aum", "random")
    rules: tuple[str, ...] = ("drop-high", "drop-low")
    fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class DataSpec:
    subsample: int | None = None
    subsample_seed: int = 0
    data_root: str | None = None


@dataclass(frozen=True)
class ScoreSpec:
    model: str = "mlp"
    widths: tuple[int, ...] = (256, 128)
    dropout: float = 0.0
    epochs: int | None = None
    el2n_epoch: int | None = None
    measure_options: dict[str, Any] = field(default_factory=dict)
    budget: str = "epochs"
    mem_models: int = DEFAULT_MEM_MODELS
    mem_subset: float = DEFAULT_MEM_SUBSET
    mem_max_epochs: int | None = None


@dataclass(frozen=True)
class BenchOptions:
    per_class: bool = False
    min_per_class: int = 1  # >= 1: a drop rule never empties a class, so the default grid fails no cell
    beta: float = 0.0
    bins: int = 50
    cv_folds: int = 5
    threads: int = 1
    budget: str = "epochs"
    fit_threshold: float = 0.99
    max_epochs: int = 100
    fit_schedule: str = "constant"
    temperature: float = 1.0
    warmup_cache: str | None = None
    margin: float = DEFAULT_MARGIN


@dataclass(frozen=True)
class BenchConfig:
    """The resolved grid; ``to_dict()`` is stored in ``DIR/config.json`` and checked on resume/merge."""

    grid: GridSpec = field(default_factory=GridSpec)
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainConfig = field(default_factory=TrainConfig)
    score: ScoreSpec = field(default_factory=ScoreSpec)
    bench: BenchOptions = field(default_factory=BenchOptions)

    def __post_init__(self):
        validate(self)

    @property
    def score_measures(self) -> tuple[str, ...]:
        """Measures the warmup computes (the grid's, minus the bench-only ones)."""
        return tuple(m for m in self.grid.measures if m not in BENCH_MEASURES)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def with_overrides(self, *, seeds: int | None = None, epochs: int | None = None,
                       device: str | None = None) -> "BenchConfig":
        """A copy with CLI overrides applied (``seeds`` = number of seeds 0..seeds-1)."""
        grid, train = self.grid, self.train
        if seeds is not None:
            grid = replace(grid, seeds=tuple(range(seeds)))
        if epochs is not None:
            train = replace(train, epochs=epochs)
        if device is not None:
            train = replace(train, device=device)
        return replace(self, grid=grid, train=train)


def parse_corruption(text: str) -> tuple[str, float]:
    """``"randY:0.2"`` -> ``("randY", 0.2)``; ``"none"`` -> ``("none", 0.0)`` (:func:`sensprune.config.parse_corruption`
    restricted to the kinds a bench grid runs)."""
    from sensprune.config import parse_corruption as parse

    return parse(text, "[grid] corruptions", CORRUPTION_KINDS)


def validate(cfg: BenchConfig) -> None:
    """Raise ValidationError for any grid entry that cannot run; nothing is trained here."""
    from sensprune.config import MODEL_NAMES  # not sensprune.train.models: checking a config needs no torch
    from sensprune.measures import COMPANIONS, MEASURES, measure_spec

    g = cfg.grid
    for name in ("datasets", "corruptions", "measures", "rules", "fractions", "seeds"):
        if not getattr(g, name):
            raise ValidationError(f"[grid] {name} must not be empty.")
        vals = list(getattr(g, name))
        if len(set(vals)) != len(vals):
            raise ValidationError(f"[grid] {name} has duplicates: {vals}.")
    for d in g.datasets:
        if not isinstance(d, str) or not d.strip():
            raise ValidationError(f"[grid] datasets must be dataset specs (strings); got {d!r}.")
    for c in g.corruptions:
        parse_corruption(c)
    bad = [m for m in g.measures if m not in BENCH_MEASURES and measure_spec(m) is None]  # any loss_sensitivity_hH
    if bad:
        raise ValidationError(f"Unknown measure(s) in [grid] measures: {', '.join(map(repr, bad))}. "
                              f"Known: {', '.join([*MEASURES, *BENCH_MEASURES])}.")
    of = {c: m for m, cs in COMPANIONS.items() for c in cs}  # memorization_se, _n_in: columns, not rankings
    bad = [m for m in g.measures if m in of]
    if bad:
        raise ValidationError(f"[grid] measures must rank the examples; got {bad[0]!r}, a column that comes with "
                              f"{of[bad[0]]!r} (name {of[bad[0]]!r} instead).")
    _check_rules(g.rules)
    for f in g.fractions:
        ok = isinstance(f, (int, float)) and not isinstance(f, bool) and math.isfinite(f) and 0 < f < 1
        if not ok:
            raise ValidationError(f"[grid] fractions must be floats in (0, 1) (the fraction removed); got {f!r}.")
    if len(g.seeds) > MAX_SEEDS:
        raise ValidationError(f"[grid] seeds must be in 1..{MAX_SEEDS} or a list of at most {MAX_SEEDS} "
                              f"seeds; got a list of {len(g.seeds)}.")
    for s in g.seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ValidationError(f"[grid] seeds must be non-negative integers; got {s!r}.")
    if "stratified" in g.rules and _is_number(cfg.bench.beta) and any(cfg.bench.beta > f for f in g.fractions):
        raise ValidationError(f"[bench] beta ({cfg.bench.beta}) must not exceed any of [grid] fractions.")
    if cfg.data.subsample is not None and (isinstance(cfg.data.subsample, bool)
                                           or not isinstance(cfg.data.subsample, int) or cfg.data.subsample < 1):
        raise ValidationError(f"[data] subsample must be a positive integer; got {cfg.data.subsample!r}.")
    if cfg.score.model not in MODEL_NAMES and not cfg.score.model.startswith("plugin:"):
        raise ValidationError(f"Unknown model {cfg.score.model!r} in [score]. Known: {', '.join(MODEL_NAMES)}, "
                              "plugin:module:callable.")
    if cfg.score.budget not in WARMUP_BUDGETS:
        raise ValidationError(f"[score] budget must be one of {', '.join(WARMUP_BUDGETS)}; got {cfg.score.budget!r}.")
    warm = cfg.score.epochs or cfg.train.epochs
    if not isinstance(warm, int) or warm < 1:
        raise ValidationError(f"[score] epochs must be an integer >= 1; got {cfg.score.epochs!r}.")
    if cfg.score.el2n_epoch is not None and not 1 <= cfg.score.el2n_epoch <= warm:
        raise ValidationError(f"[score] el2n_epoch must be in 1..{warm} (the warmup's epochs); "
                              f"got {cfg.score.el2n_epoch}.")
    _check_memorization(cfg.score)
    MeasureOptions.from_value(cfg.score.measure_options, source="[score] measure_options")  # unknown keys refused
    bad = [w for w in cfg.score.widths if not (_is_int(w) and 1 <= w <= MAX_WIDTH)]
    if bad:
        raise ValidationError(f"[score] widths must be integers in 1..{MAX_WIDTH}; got {bad[0]!r}.")
    if not (_is_number(cfg.score.dropout) and 0 <= cfg.score.dropout < 1):
        raise ValidationError(f"[score] dropout must be a float in [0, 1); got {cfg.score.dropout!r}.")
    b = cfg.bench
    if not (_is_number(b.beta) and 0 <= b.beta < 1):
        raise ValidationError(f"[bench] beta must be a float in [0, 1); got {b.beta!r}.")
    if not (_is_int(b.bins) and b.bins >= 1):
        raise ValidationError(f"[bench] bins must be an integer >= 1; got {b.bins!r}.")
    if not (_is_int(b.min_per_class) and b.min_per_class >= 0):
        raise ValidationError(f"[bench] min_per_class must be an integer >= 0; got {b.min_per_class!r}.")
    if not isinstance(b.cv_folds, int) or b.cv_folds < 2:
        raise ValidationError(f"[bench] cv_folds must be an integer >= 2; got {b.cv_folds!r}.")
    if b.budget not in BUDGETS:
        raise ValidationError(f"[bench] budget must be one of {', '.join(BUDGETS)}; got {b.budget!r}.")
    if not isinstance(b.threads, int) or b.threads < 1:
        raise ValidationError(f"[bench] threads must be an integer >= 1; got {b.threads!r}.")
    ok = _is_number(b.fit_threshold) and 0 < b.fit_threshold <= 1
    if not ok:
        raise ValidationError(f"[bench] fit_threshold must be a training accuracy in (0, 1]; got {b.fit_threshold!r}.")
    if isinstance(b.max_epochs, bool) or not isinstance(b.max_epochs, int) or b.max_epochs < 1:
        raise ValidationError(f"[bench] max_epochs must be an integer >= 1; got {b.max_epochs!r}.")
    if b.fit_schedule not in SCHEDULES:
        raise ValidationError(f"[bench] fit_schedule must be one of {', '.join(SCHEDULES)}; got {b.fit_schedule!r}.")
    if b.warmup_cache is not None and (not isinstance(b.warmup_cache, str) or not b.warmup_cache.strip()):
        raise ValidationError(f"[bench] warmup_cache must be a folder path; got {b.warmup_cache!r}.")
    if not (_is_number(b.margin) and 0 < b.margin < 1):
        raise ValidationError(f"[bench] margin must be an accuracy difference in (0, 1) (0.01 = 1 point); "
                              f"got {b.margin!r}.")
    if not (_is_number(b.temperature) and b.temperature > 0):
        raise ValidationError(f"[bench] temperature must be a float > 0; got {b.temperature!r}.")


def _check_memorization(s: ScoreSpec) -> None:
    """``[score] mem_models``, ``mem_subset`` and ``mem_max_epochs``, with the bounds of ``sensprune score
    --mem-models --mem-subset --mem-max-epochs`` (checked before anything is allocated); the options are these keys
    only, not ``measure_options`` entries."""
    own = ("mem_models", "mem_subset", "mem_max_epochs")
    if isinstance(s.measure_options, dict) and any(k in s.measure_options for k in own):
        raise ValidationError(f"[score] measure_options must not hold mem_models, mem_subset or mem_max_epochs (they "
                              f"are [score] keys of their own); got {dict(s.measure_options)!r}.")
    if isinstance(s.mem_models, bool) or not isinstance(s.mem_models, int) or not 2 <= s.mem_models <= MEM_MODELS_MAX:
        raise ValidationError(f"[score] mem_models must be an integer in 2..{MEM_MODELS_MAX}; got {s.mem_models!r}.")
    if not (_is_number(s.mem_subset) and 0 < s.mem_subset < 1):
        raise ValidationError(f"[score] mem_subset must be a fraction in (0, 1); got {s.mem_subset!r}.")
    m = s.mem_max_epochs
    if m is not None and (isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= MEM_MAX_EPOCHS_MAX):
        raise ValidationError(f"[score] mem_max_epochs must be an integer in 1..{MEM_MAX_EPOCHS_MAX}; got {m!r}.")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_rules(rules) -> None:
    """Selection rules of BENCH_RULES and reweighting arms ``reweight:<method>`` (sensprune.pruning.stage.REWEIGHTS)."""
    from sensprune.pruning.stage import REWEIGHTS

    arms = [REWEIGHT_PREFIX + m for m in REWEIGHTS]
    bad = [r for r in rules if isinstance(r, str) and r.startswith(REWEIGHT_PREFIX) and r not in arms]
    if bad:
        raise ValidationError(f"Unknown reweighting arm(s) in [grid] rules: {', '.join(map(repr, bad))}. "
                              f"Known: {', '.join(arms)}.")
    bad = [r for r in rules if r not in BENCH_RULES and r not in arms]
    if bad:
        raise ValidationError(f"Unknown rule(s) in [grid] rules: {', '.join(map(repr, bad))}. "
                              f"Known: {', '.join(BENCH_RULES + tuple(arms))} (random always runs as the baseline).")


_SECTIONS = {"grid": GridSpec, "data": DataSpec, "train": TrainConfig, "score": ScoreSpec, "bench": BenchOptions}
_TUPLES = {"datasets", "corruptions", "measures", "rules", "fractions", "seeds", "widths"}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


#: a field's annotation (less ``| None``) -> (what a TOML value of it must be, its test); a list field's test is of
#: each element. A field that may be None also takes None (a config.json written by bench stores null).
_TYPES = {
    "int": ("an integer", _is_int), "float": ("a number", _is_number),
    "bool": ("true or false", lambda v: isinstance(v, bool)), "str": ("a string", lambda v: isinstance(v, str)),
    "dict[str, Any]": ("a table", lambda v: isinstance(v, dict)),
    "tuple[int, ...]": ("a list of integers", _is_int), "tuple[float, ...]": ("a list of numbers", _is_number),
    "tuple[str, ...]": ("a list of strings", lambda v: isinstance(v, str)),
}
#: keys whose check in :func:`validate` states more than the type: the type check uses the same words
_WHAT = {("grid", "fractions"): "floats in (0, 1) (the fraction removed)",
         ("grid", "seeds"): "non-negative integers",
         ("data", "subsample"): "a positive integer",
         ("score", "mem_models"): f"an integer in 2..{MEM_MODELS_MAX}",
         ("score", "mem_subset"): "a fraction in (0, 1)",
         ("score", "mem_max_epochs"): f"an integer in 1..{MEM_MAX_EPOCHS_MAX}",
         ("bench", "fit_threshold"): "a training accuracy in (0, 1]",
         ("bench", "margin"): "an accuracy difference in (0, 1) (0.01 = 1 point)",
         ("bench", "temperature"): "a float > 0",
         ("bench", "max_epochs"): "an integer >= 1",
         ("bench", "cv_folds"): "an integer >= 2",
         ("bench", "threads"): "an integer >= 1"}


def _check_types(name: str, cls, section: dict[str, Any]) -> None:
    """Every key of the section ``[name]`` holds its field's type (numbers finite, no bool for a number): the
    one type check of the grid file, before any value is compared or used."""
    annotations = {f.name: f.type for f in fields(cls)}
    for key, value in section.items():
        kind = annotations[key]
        if value is None and kind.endswith(" | None"):
            continue
        what, ok = _TYPES[kind.removesuffix(" | None")]
        what = _WHAT.get((name, key), what)
        for v in value if isinstance(value, tuple) else (value,):  # a list field: each element (made a tuple)
            if not ok(v):
                if isinstance(v, float) and what == "a number":  # inf or nan
                    what = "a finite number"
                raise ValidationError(f"[{name}] {key} must be {what}; got {v!r}.")


def config_from_dict(raw: dict[str, Any], *, source: str = "config") -> BenchConfig:
    """Build a BenchConfig from a parsed TOML/JSON mapping; unknown sections and keys are named."""
    if not isinstance(raw, dict):
        raise ValidationError(f"{source}: expected a table of sections.")
    unknown = [k for k in raw if k not in _SECTIONS]
    if unknown:
        raise ValidationError(f"Unknown section(s) in {source}: {', '.join(map(repr, unknown))}. "
                              f"Known: {', '.join(_SECTIONS)}.")
    parts = {}
    for name, cls in _SECTIONS.items():
        section = raw.get(name, {})
        if not isinstance(section, dict):
            raise ValidationError(f"{source}: [{name}] must be a table.")
        allowed = [f.name for f in fields(cls) if not (cls is TrainConfig and f.name == "seed")]
        bad = [k for k in section if k not in allowed]
        if bad:
            hint = " (seeds come from [grid] seeds)" if "seed" in bad and name == "train" else ""
            raise ValidationError(f"Unknown key(s) in {source} [{name}]: {', '.join(map(repr, bad))}{hint}. "
                                  f"Known: {', '.join(allowed)}.")
        kw = dict(section)
        for k in _TUPLES & set(kw):
            v = kw[k]
            if k == "seeds" and isinstance(v, int) and not isinstance(v, bool):
                if not 1 <= v <= MAX_SEEDS:  # checked before a range of that length is built
                    raise ValidationError(f"{source}: [grid] seeds must be in 1..{MAX_SEEDS} or a list of at "
                                          f"most {MAX_SEEDS} seeds; got {v}.")
                v = list(range(v))
            if not isinstance(v, (list, tuple)):
                raise ValidationError(f"{source}: [{name}] {k} must be a list; got {v!r}.")
            kw[k] = tuple(v)
        _check_types(name, cls, kw)
        try:
            parts[name] = cls(**kw)
        except TypeError as exc:  # pragma: no cover - guarded by the key check above
            raise ValidationError(f"{source} [{name}]: {exc}") from None
    return BenchConfig(**parts)


def load_config(path: str | Path, *, require_grid: bool = True) -> BenchConfig:
    """Read a grid TOML file into a validated :class:`BenchConfig`.

    ``require_grid=False`` (``bench --selection``, which uses only the training settings) accepts a
    file without ``[grid]``.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"Config file {path} not found.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path} is not valid TOML ({exc}).") from None
    except RecursionError:
        raise ValidationError(f"{path} is nested too deeply to read; a grid file needs tables of keys and "
                              "flat lists.") from None
    except OSError as exc:
        raise ValidationError(f"Cannot read the config file {path} ({exc.strerror or exc}).") from None
    if require_grid and "grid" not in raw:  # an empty file would otherwise run the whole default grid
        raise ValidationError(f"{path} has no [grid] section{' (the file is empty)' if not raw else ''}; a bench "
                              "needs at least [grid] measures = [...] (see benchmarks/open_question/demo.toml).")
    return config_from_dict(raw, source=path.name)


def config_from_json(d: dict[str, Any]) -> BenchConfig:
    """Inverse of :meth:`BenchConfig.to_dict` (used by resume and bench-merge)."""
    try:
        d = {k: dict(v) for k, v in d.items()}
        d["train"].pop("seed", None)
    except (AttributeError, KeyError, TypeError, ValueError):  # a hand-made or truncated config.json
        raise ValidationError("config.json is not a bench config (expected the sections of a grid TOML: "
                              f"{', '.join(_SECTIONS)}).") from None
    return config_from_dict(d, source="config.json")
