"""The modules of healthchecks/ and fixers/ import each other without a cycle, counting the imports inside functions
(run when the function is first called): a cycle works only by the order its modules happen to be loaded in.

And the plugin, loaded by every pytest run in its environment (the `pytest11` entry point), imports none of what only
a health-check run needs: which modules are loaded is tested, never how long it took (bench/run.py times that)."""

from __future__ import annotations

import ast
import itertools
import os
import subprocess
import sys
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


# What only a health-check run needs: the checks and their analysis, the snapshot, the fixers, the outputs' renderers,
# the tables the options' help and defaults come from (every manager's reader, the programs, the settings) and the
# libraries behind them. An unrelated pytest run must pay for none of them.
HEAVY = ("healthchecks.analysis", "healthchecks.checks", "healthchecks.observe", "healthchecks.snapshot",
         "healthchecks.outputs.html", "healthchecks.waivers", "healthchecks.sources", "healthchecks.programs",
         "healthchecks.settings", "healthchecks.sightings", "healthchecks.processes", "healthchecks.records",
         "healthchecks.results", "fixers", "jsonschema", "jsonschema_rs", "pygal", "sqlite3", "libtmux", "psutil",
         "tomllib", "zoneinfo")
SHOW_HEAVY = (f"import sys; print('HEAVY:', *sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') "
              f"for h in {HEAVY!r})))")


def heavy_loaded(cwd: Path, *argv: str) -> list[str]:
    """The heavy modules loaded in a new interpreter, as SHOW_HEAVY printed them."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    done = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split("HEAVY:")[1].split("\n")[0].split()


def test_loading_the_plugin_imports_nothing_only_a_health_check_run_needs(tmp_path):
    assert heavy_loaded(tmp_path, "-c", "import healthchecks.plugin; " + SHOW_HEAVY) == []


def test_an_unrelated_pytest_run_imports_nothing_only_a_health_check_run_needs(tmp_path):
    """The plugin's hooks run in every pytest run too (options, configure, collection, the summary): an unrelated
    test file, run with the plugin loaded by its entry point, sees none of the health checks' modules.
    (libtmux's own pytest plugin imports libtmux in every run, whatever this one does: it is left out.)"""
    (tmp_path / "test_unrelated.py").write_text(f"def test_unrelated():\n    {SHOW_HEAVY}\n")
    assert heavy_loaded(tmp_path, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider", "-p", "no:libtmux",
                        "test_unrelated.py") == []


def test_the_options_literals_are_their_tables():
    """The options table holds what its help texts and defaults take from the tables as literals (importing the tables
    cost every pytest run): each literal is its table's value, so a new manager, prefix or default shows up here."""
    from healthchecks import options, sightings, sources
    from healthchecks.programs import CLAUDE
    from healthchecks.settings import Settings

    prefixes = dict.fromkeys(f"{d.session_prefix} ({d.manager})" for d in sources.DIALECTS if d.session_prefix)
    assert ", ".join(prefixes) == options.SESSION_PREFIXES
    assert ", ".join(f"{s.name} ({s.about})" for s in sources.SOURCES) == options.SOURCES_ABOUT
    assert tuple(sources.DEMOS) == options.DEMO_SOURCES
    assert options.STORE_OPTIONS == sources.STORE_OPTIONS
    assert (CLAUDE.match, CLAUDE.exe) == (options.CLAUDE_MATCH, options.CLAUDE_EXE)
    assert options.STATE_ENV == sightings.STATE_ENV
    defaults = Settings()
    for name in ("session_prefix", "claude_match", "claude_exe", "grace", "tmux_timeout", "registry_tz",
                 "lock_timeout", "source"):
        opt = next(o for o in options.OPTIONS if o.name == "--" + name.replace("_", "-"))
        assert opt.parse(opt.default) == getattr(defaults, name), opt.name


def test_valid_registries_are_read_without_importing_jsonschema(tmp_path):
    """jsonschema words the errors of a registry the fast validator rejects; a valid registry never needs it."""
    code = f"""
from pathlib import Path
from healthchecks.testing.world import World
from healthchecks.sources.orchestrator import json_registry
world = World(Path({str(tmp_path)!r}), seed=1)
task = world.task()
world.agent("completed", None, task_id=task)
world.write_registries()
found = json_registry.load(world.workspace, 5.0)
assert found.ok and found.authority.agents, found
{SHOW_HEAVY}
"""
    assert "jsonschema" not in heavy_loaded(tmp_path, "-c", code)
