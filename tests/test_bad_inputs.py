"""Bad input across every command (issue 13): one ``Error:`` line, the right exit code, a pinned message, and
nothing written -- every file in the working folder and in the shared inputs is the same, byte for byte,
before and after (so ``--force`` never destroyed a user's file, and a refused run left no ``.partial``,
staging or ``.old`` folder behind).

Exit codes: 1 for a refused input (``Error: ...``), 2 for a bad option value or usage.
"""

import hashlib
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import run_cli

REPO = Path(__file__).resolve().parents[1]
DEMO_TOML = REPO / "benchmarks" / "open_question" / "demo.toml"
PRECIOUS = b"my notes, not a sensprune file\n"
NEWER = '{"kind": "scores", "format_version": 99}'
OTHER_TOOL = '{"kind": "experiment"}'  # another tool's meta.json: not a sensprune output


# -- shared inputs: a tiny npz data set, its score folder and a prune folder (made once) -------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    b = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    y, yt = np.arange(40) % 2, np.arange(10) % 2
    np.savez(b / "data.npz", x_train=(rng.normal(size=(40, 4)) + y[:, None]).astype(np.float32), y_train=y,
             x_test=(rng.normal(size=(10, 4)) + yt[:, None]).astype(np.float32), y_test=yt)
    r = run_cli(["score", "--dataset", f"npz:{b / 'data.npz'}", "--epochs", "1", "--widths", "8", "--measures",
                 "el2n,loss", "--quiet", "--out", b / "S"])
    assert r.exit_code == 0, r.output
    r = run_cli(["prune", "--scores", b / "S", "--by", "el2n", "--rule", "random", "--fraction", "0.2",
                 "--out", b / "P"])
    assert r.exit_code == 0, r.output
    np.save(b / "arr.npy", np.zeros(3))
    (b / "empty.toml").write_text("")
    (b / "nogrid.toml").write_text("[train]\nepochs = 1\n")
    return b


def _snapshot(*roots):
    """Every path under ``roots`` (hidden ones included) -> sha256 of its bytes, or 'dir'."""
    snap = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for d in dirnames:
                snap[os.path.join(dirpath, d)] = "dir"
            for f in filenames:
                p = os.path.join(dirpath, f)
                if not stat.S_ISREG(os.lstat(p).st_mode):  # a FIFO or a link loop: never read (it would block)
                    snap[p] = f"special {stat.S_IFMT(os.lstat(p).st_mode)}"
                    continue
                snap[p] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return snap


# -- set-ups: each makes files in the working folder W (the current folder of the run) ----------------------

def user_folder(w, name="d"):
    (w / name).mkdir()
    (w / name / "precious.txt").write_bytes(PRECIOUS)


def user_file(w, name="f"):
    (w / name).write_bytes(PRECIOUS)


def copy_scores(w, base, name="S2"):
    shutil.copytree(base / "S", w / name)


def plugin(w, name, body):
    (w / f"{name}.py").write_text(body)


def nothing(w, base):
    pass


def csv_file(w, body, name="d.csv"):
    (w / name).write_text(body)


def fifo(w, name):
    os.mkfifo(w / name)


def loop(w, name):
    os.symlink(name, w / name)  # a link to itself: ELOOP


# id -> (set-up(w, base), args with {S} {P} {D} {B} {DEMO} placeholders, exit code, pinned message)
SCORE = ["score", "--dataset", "npz:{D}", "--epochs", "1", "--widths", "8", "--quiet"]
PRUNE = ["prune", "--scores", "{S}", "--by", "el2n"]
DROP = [*PRUNE, "--rule", "drop-high", "--fraction", "0.1", "--per-class"]
CASES = {
    # score: --corrupt, one parser for the CLI and the bench grid
    "score --corrupt randY (no level)": (nothing, [*SCORE, "--corrupt", "randY", "--out", "d"], 1,
                                         "`--corrupt` randY needs a level Q in (0, 1], like randY:0.2; got 'randY'."),
    "score --corrupt unique:0.2": (nothing, [*SCORE, "--corrupt", "unique:0.2", "--out", "d"], 1,
                                   "`--corrupt` unique takes no level; got 'unique:0.2' (use 'unique')."),
    "score --corrupt randY:1.5": (nothing, [*SCORE, "--corrupt", "randY:1.5", "--out", "d"], 1,
                                  "`--corrupt` randY needs a level Q in (0, 1], like randY:0.2; got 'randY:1.5'."),
    # score: CSV labels, special files and links (one line, never a hang)
    "score csv empty label": (lambda w, b: csv_file(w, "label,a\n0,1\n,2\n1,3\n"),
                              [*SCORE[:2], "csv:d.csv", *SCORE[3:], "--out", "o"], 1,
                              "csv:d.csv: every label must be a class id or name; got an empty label in data row "
                              "2."),
    "score csv huge label": (lambda w, b: csv_file(w, "label,a\n" + "".join(f"{v},{i}\n" for i, v in enumerate(
        [0, 1] * 5 + [1000000000000]))), [*SCORE[:2], "csv:d.csv", *SCORE[3:], "--out", "o"], 1,
                             "csv:d.csv: labels must be class ids below 100000; got 1000000000000 (map class "
                             "names or sparse ids to 0..K-1)."),
    "score csv ragged after blank lines": (lambda w, b: csv_file(w, "label,a\n\n\n0,1\n1,2,3\n"),
                                           [*SCORE[:2], "csv:d.csv", *SCORE[3:], "--out", "o"], 1,
                                           "csv:d.csv: line 5 has 3 fields, the header has 2."),
    "score csv:FIFO": (lambda w, b: fifo(w, "p.csv"), [*SCORE[:2], "csv:p.csv", *SCORE[3:], "--out", "o"], 1,
                       "csv:p.csv: the path must be a regular file; got a FIFO."),
    "score npz:FIFO": (lambda w, b: fifo(w, "p.npz"), [*SCORE[:2], "npz:p.npz", *SCORE[3:], "--out", "o"], 1,
                       "npz:p.npz: the path must be a regular file; got a FIFO."),
    "score npz symlink loop": (lambda w, b: loop(w, "l.npz"), [*SCORE[:2], "npz:l.npz", *SCORE[3:], "--out", "o"],
                               1, "npz:l.npz: the path is a symlink loop; point it at a file."),
    "score csv symlink loop": (lambda w, b: loop(w, "l.csv"), [*SCORE[:2], "csv:l.csv", *SCORE[3:], "--out", "o"],
                               1, "csv:l.csv: the path is a symlink loop; point it at a file."),
    # sizes a user types are bounded before anything is allocated
    "score --widths 100000000": (nothing, [*SCORE, "--widths", "100000000", "--out", "o"], 2,
                                 "Invalid value for '--widths': each width must be at most 65536; got '100000000'"),
    "score --seeds 1000000000": (nothing, [*SCORE, "--seeds", "1000000000", "--out", "o"], 2,
                                 "Invalid value for '--seeds': 1000000000 is not in the range 1<=x<=1000."),
    "bench --seeds 1000000000": (nothing, ["bench", "--config", "{DEMO}", "--seeds", "1000000000", "--out", "o"], 2,
                                 "Invalid value for '--seeds': 1000000000 is not in the range 1<=x<=1000."),
    "bench --selection --seeds 100000000": (nothing, ["bench", "--selection", "{P}", "--seeds", "100000000", "--out",
                                                      "o"], 2,
                                            "Invalid value for '--seeds': 100000000 is not in the range 1<=x<=1000."),
    # score: --out and --force
    "score --force on a user's folder": (lambda w, b: user_folder(w), [*SCORE, "--out", "d", "--force"], 1,
                                         "d is not empty and not a sensprune output (no meta.json of a "
                                         "sensprune kind); --force only replaces sensprune outputs"),
    "score --force on a file": (lambda w, b: user_file(w), [*SCORE, "--out", "f", "--force"], 1,
                                "f exists and is a file, not a folder; --out must name a folder "
                                "(--force never replaces a file)"),
    "score --out existing empty folder": (lambda w, b: (w / "d").mkdir(), [*SCORE, "--out", "d"], 1,
                                          "d already exists; pass --force to replace it."),
    "score --out below a file": (lambda w, b: user_file(w), [*SCORE, "--out", "f/sub"], 1,
                                 "Cannot write --out f/sub: f is a file, not a folder."),
    "score --out /proc/x": (nothing, [*SCORE, "--out", "/proc/sensprune-x"], 1,
                            "Cannot write --out /proc/sensprune-x: /proc is not writable"),
    "score --out on a read-only /sys": (nothing, [*SCORE, "--out", "/sys/sensprune-x"], 1,
                                        "Cannot write --out /sys/sensprune-x: /sys is not writable"),
    "score --out is the data file": (lambda w, b: shutil.copy(b / "data.npz", w / "data.npz"),
                                     [*SCORE[:2], "npz:data.npz", *SCORE[3:], "--out", "data.npz", "--force"], 1,
                                     "--out data.npz is the input data.npz; choose another --out."),
    "score --out contains the data": (lambda w, b: ((w / "in").mkdir(), shutil.copy(b / "data.npz", w / "in")),
                                      [*SCORE[:2], "npz:in/data.npz", *SCORE[3:], "--out", "in", "--force"], 1,
                                      "--out in contains the input in/data.npz"),
    "score --out above the data root": (lambda w, b: (w / "root").mkdir(),
                                        [*SCORE, "--data-root", "root", "--out", ".", "--force"], 1,
                                        "--out . contains the input root"),
    "score --force on another tool's meta.json": (lambda w, b: (user_folder(w), (w / "d" / "meta.json").write_text(
        OTHER_TOOL)), [*SCORE, "--out", "d", "--force"], 1, "d is not empty and not a sensprune output"),
    "score foreign OUT.partial": (lambda w, b: user_folder(w, "o.partial"), [*SCORE, "--out", "o"], 1,
                                  "o.partial exists and is not an interrupted sensprune run (no config.json)"),
    "score --resume --force": (nothing, [*SCORE, "--out", "o", "--resume", "--force"], 2,
                               "--resume and --force contradict each other"),
    "score --amp fp16 on CPU": (nothing, [*SCORE, "--amp", "fp16", "--out", "o"], 1,
                                "--amp fp16 needs a CUDA device (this run is on cpu)"),
    # score: data and model
    "score npz:file.npy": (nothing, [*SCORE[:2], "npz:{B}/arr.npy", *SCORE[3:], "--out", "o"], 1,
                           "arr.npy is a single .npy array, not an .npz archive of named arrays"),
    "score npz missing": (nothing, [*SCORE[:2], "npz:nope.npz", *SCORE[3:], "--out", "o"], 1,
                          "npz:nope.npz: file not found."),
    "score unknown dataset": (nothing, [*SCORE[:2], "nope", *SCORE[3:], "--out", "o"], 1, "Unknown dataset"),
    "score model plugin raises": (lambda w, b: plugin(w, "bad_model_plug",
                                                      "def make(k, shape):\n    raise RuntimeError('boom')\n"),
                                  [*SCORE, "--model", "plugin:bad_model_plug:make", "--out", "o"], 1,
                                  "raised RuntimeError: boom"),
    "score model plugin import fails": (lambda w, b: plugin(w, "bad_model_imp", "raise KeyError('at import')\n"),
                                        [*SCORE, "--model", "plugin:bad_model_imp:make", "--out", "o"], 1,
                                        "KeyError"),
    "score data plugin raises": (lambda w, b: plugin(w, "bad_data_plug", "def load():\n    return 1 / 0\n"),
                                 [*SCORE[:2], "plugin:bad_data_plug:load", *SCORE[3:], "--out", "o"], 1,
                                 "raised ZeroDivisionError: division by zero"),
    "score unknown measure": (nothing, [*SCORE, "--measures", "el2n,nope", "--out", "o"], 1, "nope"),
    "score --epochs 0": (nothing, [*SCORE, "--epochs", "0", "--out", "o"], 2,
                         "Invalid value for '--epochs': 0 is not in the range x>=1."),
    "score without --out": (nothing, SCORE, 2, "Missing option '--out'."),
    "score unknown option": (nothing, [*SCORE, "--bogus", "--out", "o"], 2, "No such option '--bogus'."),
    # prune: --out and --force
    "prune --out is --scores": (nothing, [*DROP, "--out", "{S}", "--force"], 1,
                                "is the input {S}; choose another --out."),
    "prune --out inside --scores": (nothing, [*DROP, "--out", "{S}/sub"], 1, "is inside the input {S}"),
    "prune --out contains --scores": (nothing, [*DROP, "--out", "{B}", "--force"], 1, "contains the input {S}"),
    "prune --force on a user's folder": (lambda w, b: user_folder(w), [*DROP, "--out", "d", "--force"], 1,
                                         "d is not empty and not a sensprune output"),
    "prune --force on a file": (lambda w, b: user_file(w), [*DROP, "--out", "f", "--force"], 1,
                                "f exists and is a file, not a folder"),
    "prune --out /proc/x": (nothing, [*DROP, "--out", "/proc/sensprune-x"], 1, "/proc is not writable"),
    "prune --out below a file": (lambda w, b: user_file(w), [*DROP, "--out", "f/sub"], 1,
                                 "f is a file, not a folder."),
    "prune --export-data is a folder": (lambda w, b: (w / "e.npz").mkdir(), [*DROP, "--out", "o", "--export-data",
                                                                             "e.npz"], 1,
                                        "e.npz is a folder; --export-data must name a file."),
    "prune --export-data is --out": (nothing, [*DROP, "--out", "o.npz", "--export-data", "o.npz"], 1,
                                     "--export-data o.npz is the same path as --out."),
    "prune --export-data inside --scores": (nothing, [*DROP, "--out", "o", "--export-data", "{S}/x.npz"], 1,
                                            "--export-data {S}/x.npz is inside the input {S}"),
    "prune --export-data over the source data": (nothing, [*DROP, "--out", "o", "--export-data", "{D}",
                                                           "--force"], 1, "--export-data {D} is the input {D}"),
    "prune --export-data exists": (lambda w, b: user_file(w, "e.npz"), [*DROP, "--out", "o", "--export-data",
                                                                        "e.npz"], 1,
                                   "e.npz already exists; pass --force to replace it."),
    # prune: options the chosen rule would ignore
    "prune softmax --fraction": (nothing, [*PRUNE, "--reweight", "softmax", "--fraction", "0.3", "--out", "o"], 1,
                                 "--fraction does not apply to --reweight softmax"),
    "prune duplicate --by": (nothing, ["prune", "--scores", "{S}", "--by", "el2n,el2n", "--rule", "random",
                                       "--fraction", "0.1", "--out", "o"], 1, "--by names el2n more than once"),
    "prune --low with drop-high": (nothing, [*DROP, "--low", "0.1", "--out", "o"], 1,
                                   "--low does not apply to --rule drop-high"),
    "prune --temperature with a rule": (nothing, [*DROP, "--temperature", "2", "--out", "o"], 1,
                                        "--temperature does not apply to --rule drop-high"),
    "prune --min-per-class with reweight": (nothing, [*PRUNE, "--reweight", "softmax", "--min-per-class", "2",
                                                      "--out", "o"], 1,
                                            "--min-per-class does not apply to --reweight softmax"),
    "prune --seed with drop-high": (nothing, [*DROP, "--seed", "3", "--out", "o"], 1,
                                    "--seed does not apply to --rule drop-high"),
    "prune --bins with random": (nothing, [*PRUNE, "--rule", "random", "--fraction", "0.1", "--bins", "3",
                                           "--out", "o"], 1, "--bins does not apply to --rule random"),
    "prune --above with drop-high": (nothing, [*DROP, "--above", "q0.9", "--out", "o"], 1,
                                     "--above does not apply to --rule drop-high"),
    # prune: other bad input
    "prune --dataset on a score folder": (nothing, [*DROP, "--dataset", "digits", "--out", "o"], 1,
                                          "`--dataset` is only for folders made by a Tracker without dataset=; "
                                          "got 'digits', but the scores record dataset 'npz:"),
    "prune rule and reweight": (nothing, [*DROP, "--reweight", "softmax", "--out", "o"], 1,
                                "Pass exactly one of a rule (--rule) or a reweighting (--reweight)."),
    "prune no rule": (nothing, [*PRUNE, "--out", "o"], 1, "Pass exactly one of a rule"),
    "prune no --fraction": (nothing, [*PRUNE, "--rule", "drop-high", "--out", "o"], 1,
                            "The 'drop-high' rule needs the 'fraction' parameter (--fraction)."),
    "prune --fraction 1.5": (nothing, [*PRUNE, "--rule", "drop-high", "--fraction", "1.5", "--out", "o"], 2,
                             "Invalid value for '--fraction'"),
    "prune unknown measure": (nothing, ["prune", "--scores", "{S}", "--by", "nope", "--rule", "random",
                                        "--fraction", "0.1", "--out", "o"], 1,
                              "Measure 'nope' is not in the score file; it has: el2n, loss."),
    "prune --scores missing": (nothing, ["prune", "--scores", "nope", "--by", "el2n", "--rule", "random",
                                         "--fraction", "0.1", "--out", "o"], 1, "nope is not a folder."),
    "prune --scores not an artifact": (lambda w, b: user_folder(w), ["prune", "--scores", "d", "--by", "el2n",
                                                                     "--rule", "random", "--fraction", "0.1",
                                                                     "--out", "o"], 1,
                                       "d is not a sensprune artifact (no meta.json)."),
    "prune --scores is a prune folder": (nothing, ["prune", "--scores", "{P}", "--by", "el2n", "--rule", "random",
                                                   "--fraction", "0.1", "--out", "o"], 1,
                                         "is a 'selection' artifact, not a 'scores' artifact."),
    # info
    "info missing folder": (nothing, ["info", "nope"], 1, "nope is not a folder."),
    "info user folder": (lambda w, b: user_folder(w), ["info", "d"], 1, "d is not a sensprune artifact"),
    "info corrupt meta.json": (lambda w, b: (user_folder(w), (w / "d" / "meta.json").write_text("{oops")),
                               ["info", "d"], 1, "d/meta.json is not valid JSON"),
    "info newer format": (lambda w, b: (user_folder(w), (w / "d" / "meta.json").write_text(NEWER)),
                          ["info", "d"], 1, "d has format version 99, newer than this sensprune"),
    # report
    "report user folder": (lambda w, b: user_folder(w), ["report", "d"], 1, "d is not a sensprune artifact"),
    "report --out not html": (nothing, ["report", "{S}", "--out", "x.txt"], 1,
                              "--out must name an .html file; got x.txt."),
    "report --force on a user's page": (lambda w, b: user_file(w, "r.html"),
                                        ["report", "{S}", "--out", "r.html", "--force"], 1,
                                        "r.html exists and was not written by sensprune; --force only replaces "
                                        "sensprune outputs."),
    "report --force on a user's folder": (lambda w, b: (copy_scores(w, b), user_folder(w / "S2", "report")),
                                          ["report", "S2", "--force"], 1,
                                          "S2/report is not empty and not a sensprune output"),
    "report exists": (lambda w, b: (copy_scores(w, b), (w / "S2" / "report").mkdir()), ["report", "S2"], 1,
                      "S2/report already exists; pass --force to replace it."),
    "report --out /proc": (nothing, ["report", "{S}", "--out", "/proc/sensprune-x.html"], 1,
                           "/proc is not writable"),
    "report --out below a file": (lambda w, b: user_file(w), ["report", "{S}", "--out", "f/x.html"], 1,
                                  "f is a file, not a folder."),
    "report unknown measure": (nothing, ["report", "{S}", "--out", "x.html", "--measure", "nope"], 1,
                               "Measure 'nope' is not in the score file"),
    "report --measure on a prune folder": (nothing, ["report", "{P}", "--out", "x.html", "--measure", "el2n"], 1,
                                           "--measure applies to score folders only."),
    "report --top 0": (nothing, ["report", "{S}", "--top", "0"], 2, "Invalid value for '--top'"),
    # reproduce (refused before any training)
    "reproduce --force on a user's folder": (lambda w, b: user_folder(w), ["reproduce", "--tiny", "--out", "d",
                                                                           "--force"], 1,
                                             "d is not empty and not a sensprune output"),
    "reproduce --out a file": (lambda w, b: user_file(w), ["reproduce", "--tiny", "--out", "f", "--force"], 1,
                               "f exists and is a file, not a folder"),
    "reproduce --out /proc": (nothing, ["reproduce", "--tiny", "--out", "/proc/sensprune-x"], 1,
                              "/proc is not writable"),
    "reproduce --only 9": (nothing, ["reproduce", "--tiny", "--only", "9", "--out", "o"], 1, "--only"),
    "reproduce without --out": (nothing, ["reproduce", "--tiny"], 2, "Missing option '--out'."),
    # bench and bench-merge
    "bench empty TOML": (nothing, ["bench", "--config", "{B}/empty.toml", "--out", "o"], 1,
                         "empty.toml has no [grid] section (the file is empty)"),
    "bench TOML without [grid]": (nothing, ["bench", "--config", "{B}/nogrid.toml", "--out", "o"], 1,
                                  "nogrid.toml has no [grid] section;"),
    "bench config missing": (nothing, ["bench", "--config", "nope.toml", "--out", "o"], 2,
                             "'nope.toml' does not exist."),
    "bench --force on a user's folder": (lambda w, b: user_folder(w), ["bench", "--config", "{DEMO}", "--out", "d",
                                                                       "--force"], 1, "not a bench folder"),
    "bench --out a file": (lambda w, b: user_file(w), ["bench", "--config", "{DEMO}", "--out", "f"], 2,
                           "'f' is a file."),
    "bench --resume --force": (nothing, ["bench", "--config", "{DEMO}", "--out", "o", "--resume", "--force"], 2,
                               "--resume and --force contradict each other"),
    "bench --shard 5/2": (nothing, ["bench", "--config", "{DEMO}", "--out", "o", "--shard", "5/2"], 2,
                          "the shard must be i/n with 0 <= i < n; got '5/2'."),
    "bench-merge user folder": (lambda w, b: user_folder(w), ["bench-merge", "d", "--out", "o"], 1,
                                "d is not a bench folder (no config.json)."),
    "bench --out /proc": (nothing, ["bench", "--config", "{DEMO}", "--out", "/proc/sensprune-x"], 1,
                          "/proc/sensprune-x"),
    "bench --out below a file": (lambda w, b: user_file(w), ["bench", "--config", "{DEMO}", "--out", "f/sub"], 1,
                                 "f/sub"),
    "bench-merge corrupt config.json": (lambda w, b: (user_folder(w), (w / "d" / "config.json").write_text("{}")),
                                        ["bench-merge", "d", "--out", "o"], 1,
                                        "config.json is not a bench config"),
    "bench-merge missing folder": (nothing, ["bench-merge", "nope", "--out", "o"], 2, "'nope' does not exist."),
    # the group
    "unknown command": (nothing, ["nope"], 2, "No such command 'nope'."),
}


def _fill(a, base):
    return str(a).format(S=base / "S", P=base / "P", D=base / "data.npz", B=base, DEMO=DEMO_TOML)


def run_case(setup, args, code, message, base, tmp_path, monkeypatch, before_run=None) -> str:
    """Run one bad-input case in a fresh working folder W (``setup(W, base)`` makes its files) and check what every
    case must show: no traceback, exit ``code``, one ``Error:`` line holding ``message``, and every file in W and
    in the shared inputs the same, byte for byte, before and after. ``before_run`` runs after the snapshot (a
    fault to inject). Returns the output line. The bad-input tables of every ``test_bad_inputs_*.py`` use it."""
    w = tmp_path / "w"
    w.mkdir()
    setup(w, base)
    monkeypatch.chdir(w)
    before = _snapshot(w, base)
    if before_run is not None:
        before_run()
    r = run_cli([_fill(a, base) for a in args])
    out = r.output.strip()
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)  # no traceback
    assert r.exit_code == code, out
    assert len(out.splitlines()) == 1 and out.startswith("Error: "), out
    assert _fill(message, base) in out, out
    assert _snapshot(w, base) == before  # nothing written, nothing removed, every byte the same
    return out


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input(case, base, tmp_path, monkeypatch):
    run_case(*CASES[case], base, tmp_path, monkeypatch)


def test_the_table_is_large_and_covers_every_command():
    assert len(CASES) >= 40
    commands = {args[0] for _, args, _, _ in CASES.values()}
    assert {"score", "prune", "info", "report", "reproduce", "bench", "bench-merge"} <= commands


def test_force_on_a_user_folder_keeps_it_byte_for_byte(base, tmp_path):
    """The issue's example: `mkdir d; echo x > d/precious.txt; sensprune score ... --out d --force`."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "precious.txt").write_bytes(PRECIOUS)
    r = run_cli(["score", "--dataset", f"npz:{base / 'data.npz'}", "--epochs", "1", "--widths", "8", "--quiet",
                 "--out", d, "--force"])
    assert r.exit_code == 1
    assert [p.name for p in d.iterdir()] == ["precious.txt"] and (d / "precious.txt").read_bytes() == PRECIOUS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_force_replaces_an_earlier_output_only_when_the_new_one_is_complete(base, tmp_path):
    out = tmp_path / "p"
    args = ["prune", "--scores", base / "S", "--by", "el2n", "--rule", "random", "--out", out]
    assert run_cli([*args, "--fraction", "0.2"]).exit_code == 0
    old = _snapshot(out)
    # a refused --force run (fraction that empties a class) leaves the earlier output as it was
    r = run_cli([*args, "--fraction", "0.999", "--force"])
    assert r.exit_code == 1, r.output
    assert _snapshot(out) == old
    r = run_cli([*args, "--fraction", "0.5", "--force"])
    assert r.exit_code == 0, r.output
    assert _snapshot(out) != old and sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # no .old-<pid>


def test_report_force_replaces_its_own_page_but_not_a_user_page(base, tmp_path):
    page = tmp_path / "r.html"
    assert run_cli(["report", base / "S", "--out", page, "--quiet"]).exit_code == 0
    first = page.read_bytes()
    r = run_cli(["report", base / "S", "--out", page, "--quiet", "--force"])
    assert r.exit_code == 0, r.output
    assert page.read_bytes().startswith(b"<!DOCTYPE html>") and len(first) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r_files"]  # no .old or staging left


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only (0555) folder")
def test_unwritable_folder_is_one_line(base, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        r = run_cli(["prune", "--scores", base / "S", "--by", "el2n", "--rule", "random", "--fraction", "0.1",
                     "--out", ro / "p"])
        assert r.exit_code == 1 and "is not writable" in r.output and len(r.output.strip().splitlines()) == 1
    finally:
        ro.chmod(0o755)
