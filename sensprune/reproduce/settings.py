"""The settings file of ``sensprune reproduce``: every experiment's sizes, epochs, seeds, thresholds and margins,
fixed before the run in one committed TOML file (default ``benchmarks/paper/settings.toml``).

Layout: ``[rules]`` (:class:`Rules`, shared by every scale), one ``[scale.NAME]``
table per scale (:class:`Scale`; ``tiny``, ``quick`` and ``full`` are used by the
command) and ``[[changes]]``, settings changed after a result was seen (experiment, setting, from, to,
earlier_result, reason), which ``verdicts.md`` prints beside the new results. Unknown or missing keys are refused
(``ValidationError`` naming the file, the table and the key). :func:`provenance` says which file and commit.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sensprune.errors import ValidationError

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python < 3.11
    import tomli as tomllib

#: the committed settings file, relative to the repository root (or the working directory)
DEFAULT_SETTINGS = Path("benchmarks") / "paper" / "settings.toml"
CHANGE_KEYS = ("experiment", "setting", "from", "to", "earlier_result", "reason")


@dataclass(frozen=True)
class Rules:
    """Thresholds and margins of the verdicts (the ``[rules]`` table of the settings file)."""

    fit_threshold: float   # exps 2, 3: training accuracy a run needs to count (memorization shown)
    easy_share: float      # exp 1: "easy" = misclassified in at most this fraction of runs
    noise_fit: float       # exp 4: random labels fit once this fraction of them is predicted as labelled
    val_margin: float      # exp 5: TOST equivalence margin of best validation accuracy
    fit_to: float          # exp 6: training accuracy that counts as fit
    fdr: float             # Benjamini-Hochberg false discovery rate where an experiment makes several tests


@dataclass(frozen=True)
class Scale:
    """Sizes of one reproduction run, read from the settings file (:mod:`sensprune.reproduce.settings`)."""

    name: str
    dataset: str                             # FASHION, or "digits" (ships with scikit-learn; tests)
    n_test: int                              # validation examples (first n_test test images)
    mem_widths: tuple[int, ...]              # memorization MLP, experiments 1, 4, 5, 6
    easy_n: int                              # exp 1: training examples
    easy_runs: int                           # exp 1: one-epoch runs (= seeds) per data set
    sens_n: int                              # exps 2, 3: training examples
    sens_epochs: tuple[int, ...]             # exp 2: plain-SGD epochs of the MLP 16-16, each run; exp 3: the last
    sens_seeds: int                          # exps 2, 3
    noise_levels: tuple[float, ...]          # exp 4
    csr_n: int                               # exp 4: training examples
    csr_epochs: int                          # exp 4
    csr_samples: int                         # exp 4: validation examples searched by LASS per epoch
    csr_seeds: int                           # exp 4
    reg_n: int                               # exp 5: training examples
    dropouts: tuple[float, ...]              # exp 5 (0 = no regularizer)
    weight_decays: tuple[float, ...]         # exp 5 (L2 coefficient of Adam)
    reg_epochs: int                          # exp 5
    reg_seeds: int                           # exp 5
    sizes: tuple[int, ...]                   # exp 6
    fit_widths: tuple[int, ...]              # exp 6: hidden widths (two layers) compared at the largest N
    input_noise: tuple[float, ...]           # exp 6: proportions of Gaussian inputs (Fig. 6)
    max_epochs: int                          # exp 6: cap on epochs to reach the threshold
    fit_seeds: int                           # exp 6
    rules: Rules

    def with_seeds(self, k: int) -> "Scale":
        """The same scale with ``k`` seeds in experiments 2-6 (experiment 1's seeds are its one-epoch runs)."""
        return dataclasses.replace(self, sens_seeds=k, csr_seeds=k, reg_seeds=k, fit_seeds=k)


_TUPLES = {f.name for f in dataclasses.fields(Scale) if str(f.type).startswith("tuple")}


@dataclass(frozen=True)
class Settings:
    """A parsed settings file: its path, the scales, and the recorded changes (list of dicts)."""

    path: Path
    scales: dict
    changes: tuple


def default_settings_path() -> Path:
    """``benchmarks/paper/settings.toml`` under the working directory, else under the repository of the package."""
    here = Path.cwd() / DEFAULT_SETTINGS
    if here.is_file():
        return here
    return Path(__file__).resolve().parents[2] / DEFAULT_SETTINGS


def _check_keys(where: str, table, want: tuple[str, ...]) -> None:
    if not isinstance(table, dict):
        raise ValidationError(f"{where} must be a table; got {table!r}.")
    unknown = sorted(set(table) - set(want))
    missing = [k for k in want if k not in table]
    if unknown:
        raise ValidationError(f"{where} has unknown key(s) {', '.join(unknown)}; valid: {', '.join(want)}.")
    if missing:
        raise ValidationError(f"{where} is missing key(s) {', '.join(missing)}.")


def _scale(name: str, table: dict, rules: Rules, where: str) -> Scale:
    fields = tuple(f.name for f in dataclasses.fields(Scale) if f.name not in ("name", "rules"))
    _check_keys(where, table, fields)
    values = {}
    for k in fields:
        v = table[k]
        if k in _TUPLES:
            if not isinstance(v, list) or not v:
                raise ValidationError(f"{where}.{k} must be a non-empty list; got {v!r}.")
            v = tuple(v)
        values[k] = v
    return Scale(name=name, rules=rules, **values)


def load_settings(path: str | Path | None = None) -> Settings:
    """Read and check a settings file (None: :func:`default_settings_path`); a ValidationError names what is wrong."""
    path = Path(path) if path is not None else default_settings_path()
    if not path.is_file():
        raise ValidationError(f"--settings must be an existing TOML file; got {str(path)!r}.")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"--settings must be valid TOML; {path}: {exc}") from None
    _check_keys(str(path), {k: v for k, v in raw.items() if k != "changes"}, ("rules", "scale"))
    rule_keys = tuple(f.name for f in dataclasses.fields(Rules))
    _check_keys(f"{path} [rules]", raw["rules"], rule_keys)
    rules = Rules(**{k: float(raw["rules"][k]) for k in rule_keys})
    if not 0 < rules.fit_threshold <= 1 or not 0 < rules.fdr < 1 or rules.val_margin <= 0:
        raise ValidationError(f"{path} [rules]: fit_threshold must be in (0, 1], fdr in (0, 1), val_margin > 0; "
                              f"got {rules}.")
    if not isinstance(raw["scale"], dict) or not raw["scale"]:
        raise ValidationError(f"{path} must have at least one [scale.NAME] table.")
    scales = {name: _scale(name, t, rules, f"{path} [scale.{name}]") for name, t in raw["scale"].items()}
    changes = raw.get("changes", [])
    if not isinstance(changes, list):
        raise ValidationError(f"{path}: changes must be an array of tables ([[changes]]); got {changes!r}.")
    for i, c in enumerate(changes):
        _check_keys(f"{path} [[changes]] #{i + 1}", c, CHANGE_KEYS)
    return Settings(path, scales, tuple(changes))


def provenance(path: Path) -> str:
    """``"<path> at commit <short sha>"`` (``unknown`` outside git; ``, modified`` if the file differs from it)."""
    path = Path(path)
    where = str(path.resolve().parent)

    def git(*args):
        try:
            r = subprocess.run(["git", "-C", where, *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None
    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = sha != "unknown" and bool(git("status", "--porcelain", "--", str(path.resolve())))
    try:
        shown = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        shown = path
    return f"{shown} at commit {sha}" + (" (file modified since)" if dirty else "")


class DefaultScales(Mapping):
    """The scales of the default settings file, read on first use (``SCALES["full"]``)."""

    def _all(self) -> dict:
        return load_settings().scales

    def __getitem__(self, name):
        return self._all()[name]

    def __iter__(self):
        return iter(self._all())

    def __len__(self):
        return len(self._all())


#: the scales of the default settings file (read when first used)
SCALES = DefaultScales()
