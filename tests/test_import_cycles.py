"""The package has no import cycles: every import counts (module level, inside functions, TYPE_CHECKING blocks)."""

import ast
from pathlib import Path

import sensprune

ROOT = Path(sensprune.__file__).parent


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("sensprune", *path.relative_to(ROOT).with_suffix("").parts))
        mods[name.removesuffix(".__init__")] = path
    return mods


def _resolve(name: str, mods) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _imports(me: str, path: Path, mods) -> set[str]:
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = me.split(".") if is_pkg else me.split(".")[:-1]
                base = ".".join(parts[:len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for n in names:
            r = _resolve(n, mods)
            if r and r != me and not me.startswith(r + "."):  # a submodule importing its own package is fine
                out.add(r)
    return out


def test_no_import_cycles():
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(" -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert len(mods) > 40 and any(graph.values())
    assert not cycles, "\n".join(cycles)


def _reachable(start: str, graph) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for n in graph[todo.pop()]:
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def test_layering_data_before_training_and_pure_stats():
    """data/ never reaches the training loop (only its data adapters, train.sources); bench.stats is pure numerics."""
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    for m in (m for m in mods if m.startswith("sensprune.data")):
        assert not {r for r in _reachable(m, graph) if r.startswith("sensprune.train")} - {"sensprune.train.sources"}, m
    assert _reachable("sensprune.benchmark.stats", graph) <= {"sensprune.errors"}
    tree = ast.parse(mods["sensprune.benchmark.stats"].read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "torch" not in imported


def test_stage_packages_reexport_what_they_name():
    """sensprune.scoring.ScoreConfig, sensprune.pruning.keep_mask, ...: every lazy name resolves, from its submodule."""
    import importlib

    for pkg in ("train", "scoring", "pruning", "benchmark", "reporting"):
        module = importlib.import_module(f"sensprune.{pkg}")
        for name, sub in module._NAMES.items():
            value = getattr(module, name)
            assert value is getattr(importlib.import_module(f"sensprune.{pkg}.{sub}"), name), (pkg, name)
            assert name in dir(module)
        try:
            getattr(module, "no_such_name")
        except AttributeError as exc:
            assert "no_such_name" in str(exc)
        else:
            raise AssertionError(f"sensprune.{pkg}.no_such_name resolved")
