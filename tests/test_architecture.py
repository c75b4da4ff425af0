"""The package's folders are its layers: every import (lazy ones and type-only ones included) goes to a lower
layer or stays in its own folder, there is no import cycle, every CLI file is short, and few parameters are
typed ``Any`` (docs/architecture.md states the rules; this test reads the code's own imports)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "tuco"

# Lowest first. Folders on one line are siblings: neither imports the other. The foundation's modules (the
# error hierarchy, other libraries' private state, the colours) are one folder; ``python -m tuco`` is the CLI's.
FOUNDATION = ("tuco.errors", "tuco._compat", "tuco.palette")
LAYERS: list[tuple[str, ...]] = [
    FOUNDATION,
    ("tuco.stats",),
    ("tuco.engine",),
    ("tuco.models",),
    ("tuco.measures",),
    ("tuco.runs",),
    ("tuco.data",),
    ("tuco.attacks",),
    ("tuco.experiments",),
    ("tuco.report",),
    ("tuco.serve", "tuco.training", "tuco.integrations"),
    ("tuco.demo",),
    ("tuco.cli",),
]
MAX_CLI_LINES = 150
MAX_ANY_PARAMETERS = 20


def _modules() -> dict[str, Path]:
    return {".".join(f.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): f for f in PACKAGE.rglob("*.py")}


def _place(module: str) -> tuple[int, str]:
    """(layer, folder) of a module."""
    if module in FOUNDATION:
        return 0, "foundation"
    if module == "tuco.__main__":
        return len(LAYERS) - 1, "tuco.cli"
    for rank, folders in enumerate(LAYERS):
        for folder in folders:
            if module == folder or module.startswith(folder + "."):
                return rank, folder
    raise AssertionError(f"{module} is in no layer: add its folder to LAYERS (and to docs/architecture.md)")


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module and name != "tuco":
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items() if m != "tuco"}


def test_nothing_imports_a_higher_layer_or_a_sibling_folder():
    wrong = []
    for module, targets in _graph().items():
        rank, folder = _place(module)
        for t in targets:
            t_rank, t_folder = _place(t)
            if t_rank > rank or (t_rank == rank and t_folder != folder):
                wrong.append(f"{module} -> {t}")
    assert not wrong, "imports against the layers (docs/architecture.md):\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = _graph()
    sys.setrecursionlimit(10_000)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_every_cli_file_is_short():
    long = {f.name: n for f in (PACKAGE / "cli").glob("*.py") if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_CLI_LINES}
    assert not long, f"CLI files over {MAX_CLI_LINES} lines (parse, one library call, print): {long}"


def test_few_parameters_are_typed_any():
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs  # *args / **kwargs not counted
                for a in args:
                    if a.annotation is not None and ast.unparse(a.annotation) in ("Any", "typing.Any"):
                        found.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}({a.arg})")
    assert len(found) <= MAX_ANY_PARAMETERS, f"{len(found)} parameters typed Any (at most {MAX_ANY_PARAMETERS}):\n" + "\n".join(found)
