"""``sensprune info``: print any artifact's meta.json in readable form."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sensprune.cli.options import OneLineErrors

_SKIP_LONG = ("lorenz",)


@click.command(cls=OneLineErrors)
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the raw meta.json.")
def info(folder, as_json):
    """Describe the artifact in FOLDER (score, selection or bench output).

    \b
    Example:
      sensprune info runs/digits
    """
    from sensprune.io import read_meta

    meta = read_meta(folder)
    if as_json:
        click.echo(json.dumps(meta, indent=2))
        return
    click.echo(f"{folder}: {meta['kind']} artifact (format {meta['format_version']}, "
               f"sensprune {meta.get('sensprune_version')})")
    for key, value in meta.items():
        if key in ("kind", "format_version", "sensprune_version"):
            continue
        _show(key, value, 1)


def _show(key, value, depth):
    pad = "  " * depth
    if key in _SKIP_LONG and isinstance(value, dict):
        click.echo(f"{pad}{key}: {len(value)} curves of 101 points (see meta.json)")
    elif isinstance(value, dict):
        click.echo(f"{pad}{key}:")
        for k, v in value.items():
            _show(k, v, depth + 1)
    elif isinstance(value, list) and len(value) > 8:
        if all(isinstance(v, (int, float)) or v is None for v in value):
            head = ", ".join("-" if v is None else f"{v:.4g}" for v in value[:4])
            tail = ", ".join("-" if v is None else f"{v:.4g}" for v in value[-2:])
            click.echo(f"{pad}{key}: [{head}, …, {tail}] ({len(value)} values)")
        else:
            click.echo(f"{pad}{key}: {len(value)} entries; last: {json.dumps(value[-1])}")
    elif isinstance(value, float):
        click.echo(f"{pad}{key}: {value:.6g}")
    else:
        click.echo(f"{pad}{key}: {json.dumps(value) if isinstance(value, list) else value}")
