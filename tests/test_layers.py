"""Layers point one way: library <- stages <- CLI <- flows (issue 15, DESIGN.md "Layout").

Every module under nar/ and flows/ is parsed (``ast``, so nothing is imported): each ``import`` and
``from ... import`` anywhere in it (inside functions and ``if TYPE_CHECKING:`` blocks too: a lazy import
is still a dependency) and each ``importlib.import_module("literal")`` is an edge to the deepest module
of this repository it names. The test fails naming the import (file:line) when an edge points to a higher
layer, and naming the modules when the edges form a circle.

``NAR_LAYERS_ROOT=/path/to/checkout pytest tests/test_layers.py`` checks another checkout (the code as it
was before issue 15 fails both tests).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("NAR_LAYERS_ROOT") or Path(__file__).resolve().parents[1])
PACKAGES = ("nar", "flows")

LIBRARY, STAGES, CLI, FLOWS = 0, 1, 2, 3
LAYER_NAMES = {LIBRARY: "library", STAGES: "stages", CLI: "CLI", FLOWS: "flows"}
# The modules that carry out one `nar <stage>` command (what its CLI module hands the work to); a package listed
# here counts with all its submodules. Everything else under nar/ is the library, which none of them may import.
STAGE_MODULES = (
    "nar.data.generate",
    "nar.training.pretrain",
    "nar.natural.build",
    "nar.registry.registration",
    "nar.transfer.sweep",
    "nar.transfer.evaluate",
)
# nar.execute (load_pretrained(...).run: the whole pretrained network on any graph) is library: pretraining's
# scale-suite score and transfer's `ceiling` variant call it; `nar execute` is its CLI (nar.execute_cli).


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module of this repository
    where: str  # file:line of the import statement


def module_files(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py file under the PACKAGES (``pkg/__init__.py`` is ``pkg``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The deepest module of ``modules`` that ``name`` (a dotted module or module.attribute) lies in."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Dotted names one statement or call imports (``from a import b`` gives ``a.b``: b may be a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from the package that holds the module
            package = module.split(".")
            package = package if is_package else package[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([base] if base else []))
        return [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"] or [base]
    if isinstance(node, ast.Call):
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if called == "import_module" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                return [arg.value]
    return []


def import_graph(root: Path) -> tuple[dict[str, Path], list[Import]]:
    modules = module_files(root)
    edges = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for name in _imported_names(node, module, path.name == "__init__.py"):
                target = _resolve(name, modules)
                if target is not None and target != module:
                    edges.append(Import(module, target, f"{path.relative_to(root)}:{node.lineno}"))
    return modules, edges


def layer(module: str) -> int:
    if module.split(".")[0] == "flows":
        return FLOWS
    last = module.split(".")[-1]
    if last in ("cli", "__main__") or last.endswith("_cli"):
        return CLI
    if any(module == stage or module.startswith(stage + ".") for stage in STAGE_MODULES):
        return STAGES
    return LIBRARY


def _reexport(e: Import, modules: dict[str, Path]) -> bool:
    """A package's ``__init__`` importing a module inside that package: the package's public names, not a
    dependency of the package's library modules on it (``nar.data`` offers ``generate_split``)."""
    return modules[e.source].name == "__init__.py" and e.target.startswith(e.source + ".")


def upward_imports(edges: list[Import], modules: dict[str, Path]) -> list[str]:
    found = {
        f"{e.where}: {e.source} ({LAYER_NAMES[layer(e.source)]}) imports {e.target} ({LAYER_NAMES[layer(e.target)]})"
        for e in edges
        if layer(e.target) > layer(e.source) and not _reexport(e, modules)
    }
    return sorted(found)


def circles(edges: list[Import]) -> list[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan), each as a sorted tuple."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:  # recursion depth <= number of modules (a few hundred)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(circle: tuple[str, ...], edges: list[Import]) -> str:
    inside = set(circle)
    links = sorted(
        {f"{e.where} ({e.source} -> {e.target})" for e in edges if e.source in inside and e.target in inside}
    )
    return f"{' <-> '.join(circle)}: " + "; ".join(links)


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, Path], list[Import]]:
    return import_graph(ROOT)


def test_layers_point_one_way(graph):
    modules, edges = graph
    upward = upward_imports(edges, modules)
    assert not upward, "imports pointing to a higher layer:\n" + "\n".join(upward)


def test_no_import_circles(graph):
    _, edges = graph
    found = circles(edges)
    assert not found, "import circles:\n" + "\n".join(describe(c, edges) for c in found)


def test_the_graph_sees_every_kind_of_import(tmp_path):
    """The parser itself: top-level, function-local, relative and import_module imports all become edges."""
    (tmp_path / "nar" / "sub").mkdir(parents=True)
    (tmp_path / "flows").mkdir()
    files = {
        "nar/__init__.py": "",
        "nar/low.py": "",
        "nar/cli.py": "from nar import low\n",
        "nar/sub/__init__.py": "from . import deep\n",
        "nar/sub/deep.py": "def f():\n    from ..low import x\n    import importlib\n"
        "    importlib.import_module('flows.top')\n",
        "flows/__init__.py": "",
        "flows/top.py": "import nar.sub.deep\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    modules, edges = import_graph(tmp_path)
    assert {(e.source, e.target) for e in edges} == {
        ("nar.cli", "nar.low"),
        ("nar.sub", "nar.sub.deep"),
        ("nar.sub.deep", "nar.low"),
        ("nar.sub.deep", "flows.top"),
        ("flows.top", "nar.sub.deep"),
    }
    assert upward_imports(edges, modules) == ["nar/sub/deep.py:4: nar.sub.deep (library) imports flows.top (flows)"]
    assert circles(edges) == [("flows.top", "nar.sub.deep")]
