"""Helpers shared by the CLI tests."""

from click.testing import CliRunner

from sensprune.cli import cli


def run_cli(args):
    """Invoke the ``sensprune`` group in-process; returns click's Result."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, match):
    """Bad input: exit code != 0, exactly one line 'Error: ...' containing ``match``, no traceback."""
    assert result.exit_code != 0
    out = result.output.strip()
    assert "Traceback" not in out and len(out.splitlines()) == 1, out
    assert out.startswith("Error:") and match in out, out
