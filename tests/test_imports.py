"""The modules of healthchecks/ and fixers/ import each other without a cycle, counting the imports inside functions
(run when the function is first called): a cycle works only by the order its modules happen to be loaded in."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

from helpers import REPO

PACKAGES = ("healthchecks", "fixers")


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of PACKAGES (a package by its __init__.py)."""
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking_only(tree: ast.Module) -> set[int]:
    """The nodes under `if TYPE_CHECKING:`: never imported at run time."""
    return {id(node) for branch in ast.walk(tree) if isinstance(branch, ast.If) and "TYPE_CHECKING" in
            ast.unparse(branch.test) for statement in branch.body for node in ast.walk(statement)}


def imported(name: str, path: Path, known: dict[str, Path]) -> dict[str, int]:
    """The modules of ``known`` that module ``name`` imports anywhere in its code, each with one line doing it."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_only(tree)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:  # `from X import y`: module X, or its module y
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [node.module])])
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.setdefault(target, node.lineno)
    return found


def cycle(graph: dict[str, dict[str, int]]) -> list[str]:
    """One cycle of ``graph`` as the modules along it (the first again at the end), or [] when there is none."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str]:
        state[module] = "open"
        path.append(module)
        for nxt in graph.get(module, {}):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[module] = "done"
        path.pop()
        return []

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return []


def test_the_modules_import_each_other_without_a_cycle():
    known = modules()
    graph = {name: imported(name, path, known) for name, path in known.items()}
    assert graph["healthchecks.plugin"] and graph["fixers.session"]  # the graph was read
    found = cycle(graph)
    steps = [f"{a} (line {graph[a][b]})" for a, b in itertools.pairwise(found)]
    assert not found, " -> ".join([*steps, *found[-1:]])
