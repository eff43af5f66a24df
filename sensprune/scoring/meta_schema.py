"""The types of a score folder's ``meta.json`` fields that prune and report read, checked once where the folder
is loaded (:func:`sensprune.scoring.table.load_scores`).

A hand-edited ``meta.json`` (``"measures": {"el2n": null}``, a Lorenz curve holding ``"x"``) is one
ValidationError naming the field, ``d/meta.json: lorenz.el2n[0] must be a finite number; got "x".``, instead of
an AttributeError deep in the plotting code. Every field is optional (older folders and the Tracker's lack
some); a field that is there must have the type sensprune writes. Fields no stage reads are not checked.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable

from sensprune.errors import ValidationError

#: a check of one value: ``check(value, where)`` raises _Bad naming ``where`` (a field path) and what it must be
Check = Callable[[Any, str], None]


class _Bad(Exception):
    def __init__(self, where: str, want: str, value: Any):
        super().__init__(where)
        self.where, self.want, self.value = where, want, value


def _named(check, want: str, plural: str) -> Check:
    check.want, check.plural = want, plural  # how a message names what the value must be: one, several
    return check


def _leaf(want: str, plural: str, ok: Callable[[Any], bool]) -> Check:
    def check(value: Any, where: str) -> None:
        if not ok(value):
            raise _Bad(where, want, value)
    return _named(check, want, plural)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


INT = _leaf("an integer", "integers", _is_int)
NUMBER = _leaf("a finite number", "finite numbers", lambda v: _is_int(v) or (isinstance(v, float) and math.isfinite(v)))
TEXT = _leaf("a string", "strings", lambda v: isinstance(v, str))


def nullable(inner: Check) -> Check:
    def check(value: Any, where: str) -> None:
        if value is None:
            return
        try:
            inner(value, where)
        except _Bad as bad:
            raise (_Bad(where, check.want, value) if bad.where == where else bad) from None
    return _named(check, f"{inner.want} or null", f"{inner.plural} or null")


def list_of(inner: Check) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, list):
            raise _Bad(where, check.want, value)
        for i, v in enumerate(value):
            inner(v, f"{where}[{i}]")
    return _named(check, f"a JSON array of {inner.plural}", f"JSON arrays of {inner.plural}")


def table_of(inner: Check) -> Check:
    """A JSON object whose every value passes ``inner`` (measure -> value, seed -> history, ...)."""
    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise _Bad(where, check.want, value)
        for k, v in value.items():
            inner(v, _field(where, k))
    return _named(check, f"a JSON object of {inner.plural}", f"JSON objects of {inner.plural}")


def fields(**spec: Check) -> Check:
    """A JSON object whose named fields, where present, pass their checks (other fields are not read)."""
    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise _Bad(where, check.want, value)
        for k, inner in spec.items():
            if k in value:
                inner(value[k], _field(where, k))
    return _named(check, "a JSON object", "JSON objects")


def _field(where: str, key: str) -> str:
    name = key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else json.dumps(key, ensure_ascii=False)
    return (f"{where}.{name}" if name == key else f"{where}[{name}]") if where else name


#: the fields of a score folder's meta.json that prune (measures, dataset.location) and report (all) read
SCORE_META = fields(
    config=fields(train=nullable(fields(epochs=nullable(INT))), el2n_epoch=nullable(INT),
                  measure_options=nullable(fields(grand_epochs=nullable(list_of(INT)))),
                  at_checkpoints=nullable(list_of(INT))),
    dataset=fields(input_shape=list_of(INT), location=fields(absolute=nullable(TEXT), relative=nullable(TEXT))),
    measures=table_of(fields(direction=TEXT, description=TEXT)),
    gini=table_of(nullable(NUMBER)),
    gini_per_epoch=table_of(list_of(nullable(NUMBER))),
    lorenz=table_of(list_of(NUMBER)),
    history=table_of(list_of(table_of(nullable(NUMBER)))),
    measure_notes=fields(memorization=fields(subset_fraction=NUMBER)),
    extras=fields(per_class=fields(off_diagonal_fraction=nullable(NUMBER)), csr=fields(curve=list_of(NUMBER))),
)


def check_score_meta(meta: dict[str, Any], path: str | Path) -> None:
    """Raise a ValidationError naming the first field of ``meta`` (read from ``path``) whose type is not the one
    sensprune writes: ``path: field must be ...; got value.``"""
    try:
        SCORE_META(meta, "")
    except _Bad as bad:
        shown = json.dumps(bad.value, ensure_ascii=False)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise ValidationError(f"{path}: {bad.where} must be {bad.want}; got {shown}. Restore the file or rerun "
                              "the command that made it.") from None
