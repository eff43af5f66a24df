"""Packaging: the wheel holds the package only and declares every runtime dependency with a floor.

The wheel is built from a copy of the source tree (``pip wheel --no-deps --no-build-isolation``: setuptools from
this venv, no network), so no stale ``build/`` folder can leak old modules into it and the checkout the other
tests use is not written to. ``.ci/wheel_check.sh`` installs such a wheel into a fresh venv and runs it.
"""

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
#: the runtime dependencies the issue names (the wheel must declare at least these)
REQUIRED = ("torch", "numpy", "scikit-learn", "scipy", "click", "tqdm", "matplotlib", "Pillow")
#: what a source checkout holds besides the package; none of it may be built into the wheel
NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis",
                                    ".pytest_cache", "demo-out", "runs", ".*.staging", "*.pyc")


def _name(requirement: str) -> str:
    """``"scikit-learn>=1.2; python_version < '3.11'"`` -> ``"scikit-learn"`` (PEP 503 normalised)."""
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9._-]+)", requirement).group(1)).lower()


def _project() -> dict:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src") / "sensprune-src"
    shutil.copytree(REPO, src, ignore=NOT_SOURCE)
    dist = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(dist), str(src)], capture_output=True, text=True, cwd=dist)
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = dist.glob("sensprune-*.whl")
    with zipfile.ZipFile(whl) as z:
        yield z


def test_wheel_holds_the_package_and_nothing_else(wheel):
    names = wheel.namelist()
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "docs/")) or "/tests/" in n]
    assert {n.split("/")[0] for n in names} == {"sensprune", "sensprune-0.1.0.dist-info"}
    source = {p.relative_to(REPO).as_posix() for p in (REPO / "sensprune").rglob("*.py")}
    assert source and source <= set(names), sorted(source - set(names))
    assert "sensprune = sensprune.cli:main" in wheel.read("sensprune-0.1.0.dist-info/entry_points.txt").decode()


def test_wheel_metadata_requires_the_runtime_dependencies_with_floors(wheel):
    meta = Parser().parsestr(wheel.read("sensprune-0.1.0.dist-info/METADATA").decode())
    runtime = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    assert {_name(p) for p in REQUIRED} <= {_name(r) for r in runtime}
    assert all(">=" in r for r in runtime), runtime  # a floor on every one (justified in pyproject.toml)
    assert [_name(r) for r in runtime] == [_name(r) for r in _project()["dependencies"]]


def _guarded(tree: ast.AST) -> set[ast.AST]:
    """Nodes inside the body of a ``try`` that catches ImportError: an optional import with a fallback."""
    out: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            out.update(n for stmt in node.body for n in ast.walk(stmt))
    return out


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> files of sensprune/ that import it (not stdlib, not sensprune itself, not an
    optional import guarded by ``except ImportError``)."""
    found: dict[str, set[str]] = {}
    for path in (REPO / "sensprune").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = _guarded(tree)
        for node in ast.walk(tree):
            if node in guarded:
                continue
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for m in mods:
                top = m.split(".")[0]
                if top != "sensprune" and top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, set()).add(path.relative_to(REPO).as_posix())
    return found


def test_every_third_party_import_of_the_package_is_declared():
    project = _project()
    declared = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for reqs in project.get("optional-dependencies", {}).values() for r in reqs}
    dists = packages_distributions()
    missing = {}
    for module, files in _third_party_imports().items():
        names = {_name(d) for d in dists.get(module, [module])}
        if not names & (declared | extras):
            missing[module] = sorted(files)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
