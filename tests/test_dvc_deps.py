"""dvc.yaml's code deps cover what each stage imports (issue 15).

A stage reruns only when one of its deps changes, so a nar/ file that a stage imports but does not
list lets ``dvc repro`` serve stale results after an edit there. For every stage DVC resolves from
dvc.yaml (``foreach`` expanded and ``${...}`` filled from params.yaml by DVC itself), this finds the
function its ``nar <command>`` runs (through nar/cli.py's parser) and follows imports from there, with
ast: imports inside functions count, ``TYPE_CHECKING`` blocks (never run) do not, and a string naming
a nar module (the packages' lazy ``_LAZY`` maps) counts. A module imported whole (``import nar.x``,
``from nar import x``, or a class or constant taken from it) counts with all its imports; a function
taken from a module (``from nar.cli import inside_workspace``) counts with that module's top level and
the module-level functions the function calls by name, not the module's other functions (nar/cli.py
holds every command's parser, whose imports do not run a stage). Importing ``a.b.c`` runs the top
level of ``a/__init__.py`` and ``a/b/__init__.py`` as well. Each nar/ file reached must be covered by
a dep path (a directory covers the files under it).
"""

from __future__ import annotations

import argparse
import ast
import functools
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "nar"


def module_file(root: Path, module: str) -> Path | None:
    """The file that defines ``module`` (a dotted name under nar/), or None if there is none."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _never_runs(node: ast.If) -> bool:
    """``if TYPE_CHECKING:`` (annotations only) and ``if __name__ == "__main__":`` (not on import)."""
    test = node.test
    if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__":
        return True
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """``ast.walk`` that skips the bodies of the ``if`` blocks that never run on import (:func:`_never_runs`)."""
    todo = [node]
    while todo:
        current = todo.pop()
        if isinstance(current, ast.If) and _never_runs(current):
            todo.extend(current.orelse)
            continue
        yield current
        todo.extend(ast.iter_child_nodes(current))


def _package_of(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts if parts[-1] == "__init__" else parts[:-1]).removesuffix(".__init__")


TOP = "<top>"  # a module's top level only: what `from package import module` runs of the package


def _units_of_from(root: Path, base: str, names: list[str]) -> set[tuple[str, str | None]]:
    """``from base import a, b``: a submodule is imported whole; a module-level function of ``base``
    runs only what that function reaches; anything else (a class, a constant, a re-export) counts
    as the whole of ``base``."""
    units: set[tuple[str, str | None]] = {(base, TOP)}
    path = module_file(root, base)
    functions = _functions(path) if path is not None else {}
    for name in names:
        if module_file(root, f"{base}.{name}") is not None:
            units.add((f"{base}.{name}", None))
        elif name in functions:
            units.add((base, name))
        else:
            units.add((base, None))
    return units


@functools.cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _functions(path: Path) -> dict[str, ast.AST]:
    tree = _parse(path)
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def imported_units(root: Path, path: Path, nodes: list[ast.AST]) -> set[tuple[str, str | None]]:
    """What the statements ``nodes`` of the file ``path`` import from nar: (module, function name,
    :data:`TOP` for the top level only, or None for the whole module)."""
    found: set[tuple[str, str | None]] = set()
    for top in nodes:
        for node in _walk(top):
            if isinstance(node, ast.Import):
                found.update((alias.name, None) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the file's package upwards
                    package = _package_of(root, path).split(".")
                    base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base.split(".")[0] == PACKAGE:
                    found |= _units_of_from(root, base, [alias.name for alias in node.names])
            elif isinstance(node, ast.Constant) and _is_module_name(node.value):
                found.add((node.value, None))  # importlib.import_module targets (the packages' lazy attribute maps)
    return {(m, s) for m, s in found if m.split(".")[0] == PACKAGE and module_file(root, m) is not None}


def _is_module_name(value: object) -> bool:
    """``"nar.data.batching"``, not a message or a prefix such as ``"nar.registry."``."""
    return isinstance(value, str) and value.startswith("nar.") and all(p.isidentifier() for p in value.split("."))


def _with_parents(module: str) -> list[str]:
    """``a.b.c`` -> [a, a.b]: importing a module runs its packages' ``__init__`` first."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts) - 1)]


def unit_nodes(path: Path, symbol: str | None) -> list[ast.AST]:
    """The statements of ``path`` that run when ``symbol`` is used: the module's top level (classes
    whole), the functions the top level names, and for a function, the module-level functions it
    calls by name (transitively). ``None``: the whole module, every function included."""
    tree = _parse(path)
    if symbol is None:
        return list(tree.body)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    top = [n for n in tree.body if n.__class__ not in (ast.FunctionDef, ast.AsyncFunctionDef)]
    todo = [n.id for t in top for n in _walk(t) if isinstance(n, ast.Name) and n.id in functions]
    if symbol != TOP:
        assert symbol in functions, f"{path}: {symbol} is not a module-level function"
        todo.append(symbol)
    reached: set[str] = set()
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        todo.extend(n.id for n in _walk(functions[name]) if isinstance(n, ast.Name) and n.id in functions)
    return top + [functions[n] for n in sorted(reached)]


def transitive_files(root: Path, start: tuple[str, str]) -> dict[Path, str]:
    """Every nar/ file that running the function ``start`` (module, name) imports, transitively, each
    with the module that first imported it. Not the whole command module: nar/cli.py holds the
    parser of every command, whose imports do not run a stage."""
    via: dict[Path, str] = {}
    todo: list[tuple[tuple[str, str | None], str]] = [(start, start[0])]
    seen: set[tuple[str, str | None]] = set()
    while todo:
        (module, symbol), parent = todo.pop()
        units = [((p, TOP), parent) for p in _with_parents(module)] + [((module, symbol), parent)]
        for unit, importer in units:
            if unit in seen or (unit[0], None) in seen:
                continue
            seen.add(unit)
            path = module_file(root, unit[0])
            if path is None:
                continue
            via.setdefault(path, importer)
            todo.extend((u, unit[0]) for u in imported_units(root, path, unit_nodes(path, unit[1])))
    return via


def subcommand_functions() -> dict[str, Callable[..., object]]:
    """``nar <command>`` -> the function it runs, read from nar/cli.py's parser."""
    from nar.cli import build_parser

    out = {}
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                func = sub.get_default("func")
                if func is not None:
                    out[name] = func
    return out


def resolved_stages(root: Path) -> dict[str, tuple[str, list[str]]]:
    """Stage address (``generate@bfs``) -> (command, code and data dep paths), as DVC resolves dvc.yaml."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {
            stage.addressing: (stage.cmd, [d.def_path for d in stage.deps if not isinstance(d, ParamsDependency)])
            for stage in repo.index.stages
        }


def nar_command(cmd: str) -> str:
    """``nar --params p.yaml generate --algorithm bfs`` -> ``generate``."""
    words = shlex.split(cmd)
    assert words and words[0] == "nar", f"not a nar command: {cmd!r}"
    rest = words[1:]
    while rest and rest[0].startswith("-"):  # global options: --params PATH
        rest = rest[2:] if "=" not in rest[0] else rest[1:]
    assert rest, f"no subcommand in {cmd!r}"
    return rest[0]


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def uncovered(root: Path, functions: dict[str, Callable[..., object]]) -> dict[str, list[str]]:
    """Stage address -> the imported nar/ files its deps miss, each as ``file (imported by module)``."""
    out = {}
    for address, (cmd, deps) in resolved_stages(root).items():
        func = functions[nar_command(cmd)]
        files = transitive_files(root, (func.__module__, func.__name__))
        missing = sorted(
            f"{path.relative_to(root).as_posix()} (imported by {parent})"
            for path, parent in files.items()
            if not covered(path.relative_to(root).as_posix(), deps)
        )
        out[address] = missing
    return out


@pytest.fixture(scope="module")
def missing() -> dict[str, list[str]]:
    return uncovered(ROOT, subcommand_functions())


def test_every_stage_is_a_nar_command(missing: dict[str, list[str]]) -> None:
    assert {a.split("@")[0] for a in missing} >= {"generate", "pretrain", "register", "natural", "transfer"}


def test_deps_cover_the_imports(missing: dict[str, list[str]]) -> None:
    problems = [f"{stage}: {line}" for stage, lines in missing.items() for line in lines]
    assert not problems, "dvc.yaml deps miss files the stage imports:\n  " + "\n  ".join(problems)


def test_each_transfer_stage_depends_on_every_shared_setting_and_its_own_task_entry_only() -> None:
    """transfer@<task> lists the transfer section field by field (every TransferParams field but ``tasks``) and
    ``transfer.tasks.<task>``: a change to road's settings must not rerun the digit_grid sweep, and a shared field
    missing here would let ``dvc repro`` keep a sweep that the change affects. params.yaml writes each one out
    (DVC stops on a listed parameter the file lacks)."""
    import dataclasses

    import yaml
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    from nar.transfer.config import TransferParams

    shared = {f"transfer.{f.name}" for f in dataclasses.fields(TransferParams) if f.name != "tasks"}
    for name in ("params.yaml", "tests/tiny_params.yaml"):  # the tests' workspaces run dvc.yaml on the tiny one
        in_file = yaml.safe_load((ROOT / name).read_text())
        assert {f"transfer.{k}" for k in in_file["transfer"] if k != "tasks"} == shared, name
        assert set(in_file["evaluate"]["tasks"]) <= set(in_file["transfer"]["tasks"]), name
    written = yaml.safe_load((ROOT / "params.yaml").read_text())
    with Repo(str(ROOT)) as repo:
        stages = {s.addressing: s for s in repo.index.stages if s.addressing.startswith("transfer@")}
    assert set(stages) == {f"transfer@{task}" for task in written["evaluate"]["tasks"]}
    for address, stage in stages.items():
        listed = {key for d in stage.deps if isinstance(d, ParamsDependency) for key in d.params}
        task = address.split("@")[1]
        assert listed == shared | {f"transfer.tasks.{task}"}, address
        assert task in written["transfer"]["tasks"], f"params.yaml transfer.tasks has no entry for {task}"


def test_imports_inside_functions_and_lazy_maps_count(tmp_path: Path) -> None:
    (tmp_path / "nar" / "sub").mkdir(parents=True)
    files = {
        "nar/__init__.py": "",
        "nar/cli.py": "from nar import top\nfrom nar.util import used\n\n"
        "def helper():\n    from nar.sub import lazy\n\n"
        "def cmd():\n    helper()\n    used()\n\ndef build_parser():\n    import nar.unused\n\n"
        "if __name__ == '__main__':\n    build_parser()\n",
        "nar/util.py": "import nar.always\n\ndef used():\n    pass\n\ndef other():\n    import nar.unused\n",
        "nar/always.py": "",
        "nar/top.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import nar.typing_only\n",
        "nar/typing_only.py": "",
        "nar/unused.py": "",
        "nar/sub/__init__.py": "_LAZY = {'x': 'nar.sub.mapped'}\n",
        "nar/sub/lazy.py": "def f():\n    from .rel import g\n",
        "nar/sub/rel.py": "",
        "nar/sub/mapped.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    got = {p.relative_to(tmp_path).as_posix() for p in transitive_files(tmp_path, ("nar.cli", "cmd"))}
    assert got == {
        "nar/__init__.py", "nar/cli.py", "nar/util.py", "nar/always.py", "nar/top.py", "nar/sub/__init__.py",
        "nar/sub/lazy.py", "nar/sub/rel.py", "nar/sub/mapped.py",
    }  # fmt: skip
    assert covered("nar/sub/rel.py", ["nar/sub"]) and not covered("nar/subway.py", ["nar/sub"])
    assert nar_command("nar --params p.yaml register --name x") == "register"
