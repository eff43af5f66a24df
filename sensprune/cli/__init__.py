"""The ``sensprune`` command line: a thin click skin over the library.

Each sub-command lives in its own module and only parses options, calls one library
function, writes and echoes a summary. Errors a user can cause become one line on
stderr and exit code 1 (usage errors: exit code 2), never a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import sys
import threading

import click

from sensprune import __version__
from sensprune.errors import SensPruneError

# name -> "module:attribute" of the click command; loaded lazily so `--help` stays fast.
COMMANDS = {
    "score": "sensprune.cli.score:score",
    "prune": "sensprune.cli.prune:prune",
    "info": "sensprune.cli.info:info",
    "bench": "sensprune.cli.bench:bench",
    "bench-merge": "sensprune.cli.bench:bench_merge",
    "report": "sensprune.cli.report:report",
    "reproduce": "sensprune.cli.reproduce:reproduce",
}


# one line per command for `sensprune --help`, so that listing them imports none of their modules
SUMMARY = {
    "score": "Train warmup model(s) and score every training example (higher = harder).",
    "prune": "Remove (or down-weight) the most or least sensitive training examples.",
    "info": "Describe the artifact in FOLDER (score, selection or bench output).",
    "bench": "Retrain on pruned subsets over a grid and answer: does pruning help?",
    "bench-merge": "Join the shard folders of one grid and recompute its statistics.",
    "report": "Draw the figures of a score, prune or bench folder into one HTML page.",
    "reproduce": "Reproduce Arpit et al. 2017 (six experiments) at CPU scale.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(name for name, target in COMMANDS.items() if _importable(target))

    def format_commands(self, ctx, formatter):
        rows = [(name, SUMMARY.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:  # "No such command": one line, like the sub-commands' usage errors
            exc.message = f"{exc.message} (see 'sensprune --help')"
            exc.ctx = None
            raise

    def invoke(self, ctx):
        _one_line_warnings()
        try:
            return super().invoke(ctx)
        except SensPruneError as exc:
            raise click.ClickException(str(exc)) from None
        except BrokenPipeError:  # `sensprune info x | head`: the reader left; not an error of ours
            raise
        except OSError as exc:  # a file system refusal the checks could not foresee (disk full, permissions)
            raise click.ClickException(_os_error(exc)) from None


def _one_line_warnings() -> None:
    """Show SensPruneWarning as one 'Warning: ...' line on stderr (other warnings keep Python's format)."""
    import warnings

    from sensprune.errors import SensPruneWarning

    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SensPruneWarning):
            click.echo(f"Warning: {message}", err=True)
        else:
            original(message, category, filename, lineno, file, line)

    if getattr(warnings.showwarning, "__name__", "") != "show":
        warnings.showwarning = show


def _os_error(exc: OSError) -> str:
    """One line for an OSError: what failed and on which path."""
    what = exc.strerror or str(exc) or type(exc).__name__
    where = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p)
    return f"{what}: {where}" if where else what


def _importable(target: str) -> bool:
    return importlib.util.find_spec(target.split(":")[0]) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sensprune")
def cli():
    """Find the training examples a network memorizes, then prune or reweight them.

    \b
    Stages:  score -> prune -> bench
    Example:
      sensprune score --dataset digits --model mlp --epochs 15 --out runs/digits
      sensprune info runs/digits
    """


class Terminated(SystemExit):
    """Raised by the SIGTERM handler: unwinds the stack (exit code 143) so the stage helpers, which clean up
    on BaseException, remove every staging folder and nothing half-written stays behind."""


def _terminated(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one clean unwind, even if the signal comes again
    raise Terminated(143)


def main(argv=None):
    """Entry point: run the CLI, turning SensPruneError into a one-line message."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    try:
        rc = cli.main(args=argv, prog_name="sensprune", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SensPruneError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        sys.exit(141)
    except OSError as exc:
        click.echo(f"Error: {_os_error(exc)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Terminated:
        click.echo("Terminated.", err=True)
        sys.exit(143)
    if isinstance(rc, int) and rc:
        sys.exit(rc)
