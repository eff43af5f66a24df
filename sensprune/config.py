"""Option types and constants, without torch: ``TrainConfig``, ``MeasureOptions``, ``DataOptions``.

Everything here imports neither torch nor numpy, so the command line (``--help``, usage errors) and the
commands that train nothing (``bench-merge``, ``report``, ``info``, ``prune``) start fast, and the bench
grid's config (:mod:`sensprune.benchmark.config`) can check a TOML file before any training code loads.

- :class:`TrainConfig` and the choices of its fields (optimizers, schedules, AMP modes, model names);
- :class:`MeasureOptions` and :class:`DataOptions`, the typed options of the scoring stage. Both are frozen
  dataclasses built from the CLI's flags, from a TOML table (``[score] measure_options = {...}`` of a bench
  grid) or from Python keyword arguments, always through :meth:`from_value`, which refuses an unknown key
  with the valid keys listed — a misspelled ``horizn = 4`` is an error, never a silent horizon 1. Values are
  checked here where that needs no torch (types, ranges); the measure builders check what needs the model
  or the data. For the code that still treats them as mappings, both offer ``get(key, default)`` and
  ``to_dict()``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

from sensprune.errors import ValidationError

OPTIMIZERS = ("sgd", "adam", "adamw")  # torch.optim.SGD, Adam, AdamW
#: Noise kinds of ``--corrupt`` (sensprune.data.noise); "none" and "unique" take no level.
NOISE_KINDS = ("none", "randY", "randY-asym", "randY-uniform", "randX", "unique")
#: Built-in augmentations of the training loop (sensprune.train.augment).
AUGMENTS = ("none", "crop-flip")
SCHEDULES = ("constant", "cosine", "step")
AMP_MODES = ("none", "bf16", "fp16")
MODEL_NAMES = ("mlp", "cnn", "resnet18")  # built by sensprune.train.models (besides plugin:module:callable)
#: Widest hidden layer a run may ask for (``--widths``, ``[score] widths``), checked before any layer is built.
MAX_WIDTH = 65_536


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; stored inside every artifact.

    ``seed`` drives four independent streams: weight init (``seed``), batch order
    (``seed`` and the epoch), dropout (``seed + 1``) and ``augment`` (``seed`` and the step,
    :func:`sensprune.train.augment.step_seed`). ``eval_batch_size`` is the batch of the no-grad
    passes (test accuracy, EL2N, predictions): 128, because on CPU a conv net's eval pass in batches of 256
    took up to 1.8x as long as in batches of 128 (1.05-1.8x over five runs)
    (``benchmarks/overhead_parts.txt``); the values do not depend on it beyond float rounding.
    """

    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    seed: int = 0
    device: str = "auto"  # sensprune.train.loop.resolve_device: CUDA, else MPS, else CPU
    eval_batch_size: int = 128
    amp: str = "none"
    compile: bool = False
    augment: str = "none"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "eval_batch_size"):
            v = getattr(self, name)
            _check(_is_int(v) and v >= 1, name, "an integer >= 1", v)
        _check(self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}", self.optimizer)
        _check(self.schedule in SCHEDULES, "schedule", f"one of {SCHEDULES}", self.schedule)
        _check(_is_finite(self.lr) and self.lr > 0, "lr", "a positive float", self.lr)
        _check(_is_finite(self.momentum) and 0 <= self.momentum < 1, "momentum", "a float in [0, 1)", self.momentum)
        _check(_is_finite(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a float >= 0",
               self.weight_decay)
        _check(self.amp in AMP_MODES, "amp", f"one of {AMP_MODES}", self.amp)
        _check(self.augment in AUGMENTS, "augment", f"one of {AUGMENTS}", self.augment)
        _check(isinstance(self.device, str), "device", "a device name such as 'cpu', 'cuda' or 'auto'", self.device)
        _check(isinstance(self.compile, bool), "compile", "true or false", self.compile)

    def lr_at(self, epoch: int) -> float:
        """Learning rate for 0-based ``epoch``: constant, cosine to 0, or ×0.1 at 50% and 75%."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))
        if self.schedule == "step":
            return self.lr * 0.1 ** (int(epoch >= self.epochs * 0.5) + int(epoch >= self.epochs * 0.75))
        return self.lr


def _check(ok: bool, name: str, what: str, got: Any) -> None:
    if not ok:
        raise ValidationError(f"The '{name}' parameter must be {what}; got {got!r}.")


def _is_finite(v: Any) -> bool:
    """A real number (an int, a float or a numpy scalar of either; not a bool) that is finite."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


#: Default warmup length of ``sensprune score`` and ``sp.score``, from the warmup-length curve
#: (``benchmarks/warmup_length/summary.md``: 20% symmetric and asymmetric flips, 3 seeds, AUROC for the
#: flipped examples): the paper's loss_sensitivity needs about 80 epochs (digits 0.916 at 20, 0.973 at 40,
#: 0.986 at 80 symmetric, 0.822 / 0.901 / 0.955 asymmetric; MNIST-1D 0.759 / 0.843 / 0.874 and 0.611 / 0.726 /
#: 0.761, where the run to fit, 43–46 epochs, gives 0.876 / 0.753), the other measures level off by 40 (el2n
#: 0.913 at 20, 0.975 at 40 on digits) and some lose ground after the run fits the noise (MNIST-1D aum 0.905 at
#: 20, 0.869 at 80). On a Fashion-MNIST subset with an MLP 512-512 trained by Adam, loss_sensitivity gains until
#: 40 and holds at 80 (0.675 / 0.705 / 0.708 at 20 / 40 / 80) while the others peak by 20 and fall once the run
#: fits the noise (aum 0.982 / 0.960 / 0.861): 40 is the compromise that digits' el2n needs.
DEFAULT_EPOCHS = 40
DEFAULT_EPOCHS_SENSITIVITY = 80


def default_epochs(measures: Sequence[str]) -> int:
    """The default warmup epochs for ``measures``: :data:`DEFAULT_EPOCHS_SENSITIVITY` when the paper's
    ``loss_sensitivity`` is among them, else :data:`DEFAULT_EPOCHS`."""
    return DEFAULT_EPOCHS_SENSITIVITY if "loss_sensitivity" in measures else DEFAULT_EPOCHS


#: Most seeds a run or a grid may ask for (`--seeds`, `[grid] seeds`), checked before anything is built.
MAX_SEEDS = 1_000
#: Largest base seed (`--seed`, ``seed=``): the streams derived from it (init, batch order, dropout, augmentation,
#: a rule's draw) stay inside what numpy's and torch's generators take.
MAX_SEED = 2**32 - 1


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` as an int when it is an integer in 0..MAX_SEED, else a ValidationError naming ``name``."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise ValidationError(f"{name} must be an integer in 0..{MAX_SEED}; got {seed!r}.")
    return int(seed)


def check_seed_range(seed: Any, count: int, name: str = "seed", count_name: str = "seeds", *,
                     where: str = "") -> int:
    """``seed`` as an int when the ``count`` runs seeded ``seed .. seed+count-1`` all stay in 0..MAX_SEED.

    The one check of a base seed and a number of runs (``--seed``/``--seeds`` of ``score`` and ``reproduce``,
    ``sp.score``, :func:`sensprune.reproduce.run_reproduce`), made once at the edge: a later seed above
    MAX_SEED would otherwise fail deep inside a run (``np.random.RandomState`` refuses seeds above 2**32-1).
    ``count`` is an integer >= 1, checked by the caller (each has its own bound); ``where`` prefixes the message
    (``"sp.score: "``). Raises ValidationError naming ``name`` and ``count_name``.
    """
    seed = check_seed(seed, f"{where}{name}")
    last = seed + int(count) - 1
    if last > MAX_SEED:
        raise ValidationError(f"{where}{name} + {count_name} - 1 (the last run's seed) must be at most {MAX_SEED}; "
                              f"got {seed} + {count} - 1 = {last}.")
    return seed


#: Default probe-set size of loss_sensitivity and --per-class.
DEFAULT_PROBE_SIZE = 2048
#: Default number K of sampled probe steps of loss_sensitivity (``loss_sensitivity.sampled``; no torch here).
DEFAULT_PROBE_TIMES = 16
#: The probe of the one-step proxy: the fixed probe set P, or the next training minibatch.
PROBE_MODES = ("fixed", "next-batch")
#: memorization: the most subset models ``--mem-models`` may ask for (each keeps two (N,) bool arrays; a larger M
#: is refused before anything is allocated), and the defaults of ``--mem-models`` and ``--mem-subset``.
MEM_MODELS_MAX = 10_000
#: bound of ``--mem-max-epochs`` (the fit rule's epoch cap of memorization's subset models)
MEM_MAX_EPOCHS_MAX = 100_000
DEFAULT_MEM_MODELS = 200
DEFAULT_MEM_SUBSET = 0.7


def parse_corruption(text: Any, flag: str = "--corrupt", kinds: tuple[str, ...] = NOISE_KINDS) -> tuple[str, float]:
    """``"randY:0.2"`` → ``("randY", 0.2)``; ``"none"``/``"unique"`` → ``(kind, 0.0)``: the one parser of a
    corruption spec (``--corrupt``, ``[grid] corruptions``). A kind outside ``kinds``, a missing or out-of-range
    level (Q in (0, 1]), or a level given to ``none``/``unique`` is a ValidationError naming ``flag``."""
    kind, sep, q = str(text).strip().partition(":")
    if kind not in kinds:
        forms = ", ".join(k if k in ("none", "unique") else f"{k}:Q" for k in kinds)
        raise ValidationError(f"`{flag}` must be one of {forms} (Q in (0, 1]); got {text!r}.")
    if kind in ("none", "unique"):
        if sep:
            raise ValidationError(f"`{flag}` {kind} takes no level; got {text!r} (use {kind!r}).")
        return kind, 0.0
    try:
        level = float(q) if sep and q.strip() else float("nan")
    except ValueError:
        level = float("nan")
    if not 0 < level <= 1:
        raise ValidationError(f"`{flag}` {kind} needs a level Q in (0, 1], like {kind}:0.2; got {text!r}.")
    return kind, level


_UNITS = {"": 1, "B": 1, "KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "TB": 10 ** 12,
          "KIB": 2 ** 10, "MIB": 2 ** 20, "GIB": 2 ** 30, "TIB": 2 ** 40}


def parse_size(value: Any, flag: str) -> int:
    """Bytes from a positive size: an integer number of bytes or a string like ``2GB``, ``1.5GiB``, ``512MB``
    (KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024; case-insensitive). Anything else, zero or a
    negative size is a ValidationError naming ``flag``."""
    import re

    text = str(value).strip()
    m = re.fullmatch(r"(-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))\s*([A-Za-z]*)", text)
    unit = m.group(2).upper() if m else None
    if isinstance(value, bool) or m is None or unit not in _UNITS:
        raise ValidationError(f"`{flag}` must be a size such as 2GB, 512MB or 1.5GiB; got {value!r}.")
    size = float(m.group(1)) * _UNITS[unit]
    if not (math.isfinite(size) and size >= 1):
        raise ValidationError(f"`{flag}` must be a positive size such as 2GB; got {value!r}.")
    return int(size)


def _refuse_unknown(cls, raw: Mapping[str, Any], source: str) -> None:
    known = [f.name for f in fields(cls)]
    bad = [k for k in raw if k not in known]
    if bad:
        raise ValidationError(f"Unknown {source} key(s): {', '.join(map(repr, bad))}. "
                              f"Valid keys: {', '.join(known)}.")


def parse_count_or_all(value: Any, flag: str) -> int | str | None:
    """None, ``"all"`` or a positive integer (a digit string is converted); anything else is a ValidationError
    naming ``flag`` (the one parser of ``--horizon`` and ``--probe-times``)."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return "all"
    v = int(value.strip()) if isinstance(value, str) and value.strip().isdigit() else value
    if not (v is None or (_is_int(v) and v >= 1)):
        raise ValidationError(f"{flag} must be a positive integer or 'all'; got {value!r}.")
    return v


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class _Options:
    """Mapping-style access shared by the option dataclasses."""

    @classmethod
    def from_value(cls, value: Any = None, *, source: str | None = None):
        """``None``, an instance, or a mapping of keys to values; unknown keys are a ValidationError."""
        source = source or cls.SOURCE
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise ValidationError(f"{source} must be a table (mapping) of option = value; got "
                                  f"{type(value).__name__}.")
        _refuse_unknown(cls, value, source)
        return cls(**dict(value))

    def get(self, key: str, default: Any = None) -> Any:
        """The option ``key`` (``default`` when it is None); an unknown key is a ValidationError."""
        if key not in self.keys():
            _refuse_unknown(type(self), {key: None}, self.SOURCE)
        v = getattr(self, key)
        return default if v is None else v

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class MeasureOptions(_Options):
    """Options of the measures (``sensprune score`` flags of the same names).

    Attributes
    ----------
    horizon : int, "all" or None
        loss_sensitivity: None (default) = the full-horizon measure (see ``probe_times``); an integer H =
        the truncated proxy ``loss_sensitivity_hH`` (only the last H updates); "all" = exact mode
        (the same as ``probe_times = "all"``).
    probe_size : int
        Probe set size for L_t (loss_sensitivity, per_class).
    probe : "fixed" or "next-batch"
        loss_sensitivity --horizon 1: probe loss on the fixed probe set or on the next minibatch.
    probe_times : int, "all" or None
        loss_sensitivity (full horizon): K, the number of sampled probe steps t at which ∂L_t/∂x is taken
        exactly through every earlier update (None = the default K, "all" = every step = exact mode).
    include_direct : bool
        loss_sensitivity: add the direct term for probe examples.
    per_class, per_class_every : bool, int
        Also compute the K x K per-class loss sensitivity, using every k-th step.
    csr, csr_samples : bool, int
        Also compute the critical sample ratio of ``csr_samples`` test examples after every epoch.
    grand_epochs : tuple of int or None
        Epochs (1-based) at which GraNd is taken (None = the EL2N epoch).
    sensitivity_memory : int (bytes) or None
        loss_sensitivity (full horizon): the memory budget of the reverse sweep (the stored trajectory or its
        checkpoints, the adjoints, the input-gradient accumulators). None = 70% of the free memory of the device.
        Given as bytes or a size string (``"2GB"``, ``"512MiB"``); see :func:`parse_size`.
    probe_every, step_every : int
        loss_sensitivity_h1 with the fixed probe, APPROXIMATIONS of the proxy (1 = off, the default): recompute
        the probe gradient only every k-th step and reuse it in between (its measured error goes to meta.json);
        score only every s-th step.
    mem_models, mem_subset : int, float
        memorization (Feldman & Zhang 2020): the number M of subset models (2..:data:`MEM_MODELS_MAX`) and the
        fraction of the training set each one trains on, in (0, 1). A digit or number string is converted.
    mem_max_epochs : int or None
        memorization: the fit rule's epoch cap of each subset model (1..:data:`MEM_MAX_EPOCHS_MAX`); None = the
        bench's cap (:data:`sensprune.train.fit.FIT_MAX_EPOCHS`). Noisy labels need more (digits with 20% flipped
        labels: about 140 epochs; ``benchmarks/memorization/compare.py``).
    mem_jobs : int
        memorization: worker processes that train the subset models (``sensprune score --jobs``), each with one
        torch thread; the values do not depend on it.
    """

    SOURCE = "measure option"

    horizon: int | str | None = None
    probe_size: int = DEFAULT_PROBE_SIZE
    probe: str = "fixed"
    probe_times: int | str | None = None
    include_direct: bool = False
    per_class: bool = False
    per_class_every: int = 1
    csr: bool = False
    csr_samples: int = 500
    grand_epochs: tuple[int, ...] | None = None
    probe_every: int = 1
    step_every: int = 1
    sensitivity_memory: int | str | None = None
    mem_models: int | str = DEFAULT_MEM_MODELS
    mem_subset: float | str = DEFAULT_MEM_SUBSET
    mem_max_epochs: int | str | None = None
    mem_jobs: int = 1

    def __post_init__(self):
        object.__setattr__(self, "mem_models", _parse_mem_models(self.mem_models))
        object.__setattr__(self, "mem_subset", _parse_mem_subset(self.mem_subset))
        object.__setattr__(self, "mem_max_epochs", _parse_mem_max_epochs(self.mem_max_epochs))
        if self.sensitivity_memory is not None:
            object.__setattr__(self, "sensitivity_memory", parse_size(self.sensitivity_memory, "--sensitivity-memory"))
        h = parse_count_or_all(self.horizon, "--horizon")
        object.__setattr__(self, "horizon", h)
        pt = parse_count_or_all(self.probe_times, "--probe-times")
        object.__setattr__(self, "probe_times", pt)
        if pt is not None and h is not None and not (h == "all" and pt == "all"):
            raise ValidationError(f"--probe-times {pt} selects the full-horizon loss_sensitivity and --horizon {h} "
                                  + ("exact mode" if h == "all" else "the truncated proxy") + "; give only one "
                                  "(--probe-times all is exact mode).")
        mode = str(self.probe).strip().lower()
        if mode not in PROBE_MODES:
            raise ValidationError(f"--probe must be one of {', '.join(PROBE_MODES)}; got {self.probe!r}.")
        object.__setattr__(self, "probe", mode)
        for name in ("probe_size", "per_class_every", "csr_samples", "probe_every", "step_every", "mem_jobs"):
            v = getattr(self, name)
            if not (_is_int(v) and v >= 1):
                raise ValidationError(f"The measure option '{name}' must be an integer >= 1; got {v!r}.")
        for name in ("include_direct", "per_class", "csr"):
            if not isinstance(getattr(self, name), bool):
                raise ValidationError(f"The measure option '{name}' must be true or false; "
                                      f"got {getattr(self, name)!r}.")
        ge = self.grand_epochs
        if ge is not None:
            ge = (ge,) if _is_int(ge) else ge
            if not isinstance(ge, (list, tuple)) or not all(_is_int(e) and e >= 1 for e in ge):
                raise ValidationError(f"The measure option 'grand_epochs' must be a list of epochs >= 1; "
                                      f"got {self.grand_epochs!r}.")
            object.__setattr__(self, "grand_epochs", tuple(ge) or None)


def _parse_mem_models(value: Any) -> int:
    v = int(value.strip()) if isinstance(value, str) and value.strip().isdigit() else value
    if not (_is_int(v) and 2 <= v <= MEM_MODELS_MAX):
        raise ValidationError(f"`--mem-models` must be an integer in 2..{MEM_MODELS_MAX}; got {value!r}.")
    return v


def _parse_mem_max_epochs(value: Any) -> int | None:
    if value is None:
        return None
    v = int(value.strip()) if isinstance(value, str) and value.strip().isdigit() else value
    if not (_is_int(v) and 1 <= v <= MEM_MAX_EPOCHS_MAX):
        raise ValidationError(f"`--mem-max-epochs` must be an integer in 1..{MEM_MAX_EPOCHS_MAX}; got {value!r}.")
    return v


def _parse_mem_subset(value: Any) -> float:
    try:
        v = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else math.nan
    except ValueError:
        v = math.nan
    if not 0 < v < 1:
        raise ValidationError(f"`--mem-subset` must be a fraction in (0, 1); got {value!r}.")
    return v


@dataclass(frozen=True)
class DataOptions(_Options):
    """How the scored data was loaded (``sensprune score`` flags of the same names; stored in meta.json).

    ``subsample_seed`` is the seed of the stratified subsample (the CLI uses 0).
    """

    SOURCE = "data option"

    data_root: str | None = None
    subsample: int | None = None
    subsample_seed: int = 0
    label_column: str | None = None
    corrupt: str | None = None
    stream: bool = False
    workers: int = 0

    def __post_init__(self):
        if self.subsample is not None and not (_is_int(self.subsample) and self.subsample >= 1):
            raise ValidationError(f"The data option 'subsample' must be a positive integer; got {self.subsample!r}.")
        if not (_is_int(self.workers) and self.workers >= 0):
            raise ValidationError(f"The data option 'workers' must be an integer >= 0; got {self.workers!r}.")
        if not _is_int(self.subsample_seed):
            raise ValidationError(f"The data option 'subsample_seed' must be an integer; "
                                  f"got {self.subsample_seed!r}.")
        if not isinstance(self.stream, bool):
            raise ValidationError(f"The data option 'stream' must be true or false; got {self.stream!r}.")
        if self.data_root is not None:
            object.__setattr__(self, "data_root", str(self.data_root))


def measure_options(value: Any = None, *, source: str | None = None) -> MeasureOptions:
    """:class:`MeasureOptions` from None, an instance or a mapping (unknown keys refused, valid keys listed)."""
    return MeasureOptions.from_value(value, source=source)


def data_options(value: Any = None, *, source: str | None = None) -> DataOptions:
    """:class:`DataOptions` from None, an instance or a mapping (unknown keys refused, valid keys listed)."""
    return DataOptions.from_value(value, source=source)
