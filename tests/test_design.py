"""docs/design.md's import rules hold in the code: the "never" list, and no import cycle.

The graph is read from the source (every import statement, deferred ones inside functions
included), so a cycle hidden by a deferred import is still a cycle.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("theory", "cch_jax", "experiments")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


MODULES = _modules()


def _in(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _imports(name: str) -> set[str]:
    """The project modules that module `name` imports (anywhere in its body). Its own ancestor
    packages are left out: a package that imports its submodules is the usual layout, not a cycle."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and not _in(name, target):
                found.add(target)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def test_the_graph_is_read():
    # A rule below that reads an empty graph would pass whatever the code does.
    assert "cch_jax.simulate" in GRAPH["cch_jax.cli.verify"]
    assert "theory.model" in GRAPH["theory.risk"]
    assert "cch_jax.cli.common" in GRAPH["cch_jax.cli.theory"]


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name, path):
        state[name] = 1
        for dep in sorted(GRAPH[name]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep) :] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


# (who, must never import, why) — the list in docs/design.md.
NEVER = [
    ("theory", "cch_jax", "the theory knows nothing of training or estimation"),
    ("theory", "experiments", "the theory knows nothing of training or estimation"),
    ("cch_jax.mi", "theory", "MI estimators stand alone"),
    ("cch_jax.mi", "experiments", "MI estimators stand alone"),
    ("cch_jax.models", "cch_jax.train", "models do not know how they are trained"),
    ("cch_jax.models", "cch_jax.losses", "models do not know how they are trained"),
    ("cch_jax.models", "cch_jax.scan", "models do not know how they are trained"),
    ("cch_jax.models", "cch_jax.data", "models do not know how they are trained"),
]


@pytest.mark.parametrize(("who", "never", "why"), NEVER)
def test_never_imports(who, never, why):
    bad = sorted((a, b) for a, deps in GRAPH.items() if _in(a, who) for b in deps if _in(b, never))
    assert not bad, f"{why}: {bad}"


def test_mi_estimators_import_only_themselves():
    bad = sorted(
        (a, b)
        for a, deps in GRAPH.items()
        if _in(a, "cch_jax.mi")
        for b in deps
        if not _in(b, "cch_jax.mi")
    )
    assert not bad, bad


def test_the_library_knows_no_command_line_and_no_experiment():
    library = [a for a in GRAPH if _in(a, "cch_jax") and not _in(a, "cch_jax.cli")]
    bad = sorted(
        (a, b) for a in library for b in GRAPH[a] if _in(b, "cch_jax.cli") or _in(b, "experiments")
    )
    assert not bad, bad
    for a in library:
        assert "import argparse" not in MODULES[a].read_text(), a


def test_subcommands_import_no_other_subcommand():
    helpers = {"cch_jax.cli", "cch_jax.cli.common", "cch_jax.cli.__main__"}
    commands = [a for a in GRAPH if _in(a, "cch_jax.cli") and a not in helpers]
    assert {"cch_jax.cli.theory", "cch_jax.cli.verify"} <= set(commands)
    bad = sorted((a, b) for a in commands for b in GRAPH[a] if b in commands)
    assert not bad, bad
