"""Read the orchestrator's JSON registries (eras E0-E4) without trusting them.

`registry/GLOBAL_REGISTRY.json` (the authority) and every `TASK-*/AGENT_REGISTRY.json` (its members). Every
problem becomes one line naming the file, the JSON path and what is wrong, so a broken registry is reported,
never crashed on, and never handed to a fixer. Which era wrote the files is read from the files (`dialect_of`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...dialect import Dialect, ScopeKind
from ...records import AgentRecord, CursorRecord, Fingerprint, Problem, Records, RegistryError, Scope, is_path
from ...safe_files import Missing, digested, read_stamped, stamp_of
from ...strict_json import decode, json_type, parse
from .dialect import CURSOR_BACKEND, ORCHESTRATOR_FIRST, ORCHESTRATOR_JSON

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator


GLOBAL_RELPATH = Path("registry") / "GLOBAL_REGISTRY.json"
TASK_FILE = "AGENT_REGISTRY.json"  # in every TASK-* folder
MAX_ERRORS_PER_FILE = 20
NAME = "json"  # its line in healthchecks.sources.SOURCES
NO_WORKSPACE = (
    "workspace directory does not exist (point --workspace or AGENT_WORKSPACE at the orchestrator's "
    ".agent-workspace; --demo checks a built-in demo world)"
)


JOURNAL_SUFFIX = ".hc-journal"


def journal_path(path: Path) -> Path:
    """Where a --fix keeps the rollback journal of its in-place write of ``path`` (fixers.writers.json_registry)."""
    return path.with_name(f".{path.name}{JOURNAL_SUFFIX}")


def journals(workspace: Path) -> list[Path]:
    """Every file named like a journal an interrupted --fix left in the workspace (journaled_file says whose)."""
    return sorted([*workspace.glob(f"registry/.*{JOURNAL_SUFFIX}"), *workspace.glob(f"TASK-*/.*{JOURNAL_SUFFIX}")])


def journaled_file(workspace: Path, journal: Path) -> Path | None:
    """The registry a journal belongs to, or None when it names nothing a --fix writes in place: only the JSON
    registries are (the state database is written by SQLite's own transactions), so any other journal was not
    left by this tool and is never applied."""
    name = journal.name[1 : -len(JOURNAL_SUFFIX)]
    if journal.parent == workspace / "registry" and name == GLOBAL_RELPATH.name:
        return journal.parent / name
    if journal.parent.parent == workspace and journal.parent.name.startswith("TASK-") and name == "AGENT_REGISTRY.json":
        return journal.parent / name
    return None


def flocked(workspace: Path, records: Records | None) -> set[Path]:
    """The files E4's writers flock (`LockedRegistryFile`): the global registry always, and any file a read found
    broken (a writer may have been half-way through it)."""
    found = {workspace / GLOBAL_RELPATH}
    if records is not None:
        found |= {scope.path for scope in records.scopes if scope.errors}
    return found


def task_registries(workspace: Path) -> list[Path]:
    """Where task registries may stand: `TASK-*/AGENT_REGISTRY.json` for every `TASK-*` entry, whatever it is (one
    listing of the workspace; an entry with no registry in it is skipped by whoever opens it)."""
    try:
        with os.scandir(workspace) as entries:
            names = sorted(e.name for e in entries if e.name.startswith("TASK-"))
    except OSError:
        return []
    return [workspace.joinpath(name, TASK_FILE) for name in names]


def fingerprint(workspace: Path, before: Fingerprint = ()) -> Fingerprint:
    """Each registry file's stamp (safe_files.stamp): an lstat for a file that has been still a while, a digest of
    its bytes for one written just now or digested ``before``; the files are the ones load reads (the global
    registry always)."""
    hashed = digested(before)
    result = []
    for path in (workspace / GLOBAL_RELPATH, *task_registries(workspace)):
        try:
            result.append((str(path), stamp_of(path, workspace, str(path) in hashed)))
        except FileNotFoundError:
            if path.name != TASK_FILE:
                result.append((str(path), None))
    return tuple(result)


def validators(kind: ScopeKind) -> tuple[Callable[[Any], bool], Draft202012Validator]:
    """(fast check, reference validator) for one registry kind.

    jsonschema is the reference: it decides and it words every error. Checking 10,000 entries
    with it takes seconds, so a compiled validator (jsonschema-rs, ten times faster than
    fastjsonschema here: bench/RESULTS.md) answers the common question "is this valid?" first;
    anything it rejects is judged again by jsonschema, imported only then (its import costs more than a
    small fleet's whole snapshot: bench/RESULTS.md).
    """
    return _fast(kind), _reference(kind)


def _schema(kind: ScopeKind) -> Any:
    name = "global_registry.schema.json" if kind is ScopeKind.GLOBAL else "task_registry.schema.json"
    return json.loads(resources.files("healthchecks.schemas").joinpath(name).read_text("utf-8"))


@cache
def _fast(kind: ScopeKind) -> Callable[[Any], bool]:
    import jsonschema_rs  # imported here: pytest-xdist workers never validate

    return jsonschema_rs.Draft202012Validator(_schema(kind)).is_valid


@cache
def _reference(kind: ScopeKind) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    schema = _schema(kind)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(path: Path, kind: ScopeKind, data: Any) -> list[Problem]:
    """One problem per schema violation, most shallow first, capped so a wrecked file stays readable."""
    try:
        if _fast(kind)(data):
            return []
    except Exception:  # anything it cannot take (an int past 64 bits) is the reference's to judge
        pass
    errors = sorted(_reference(kind).iter_errors(data), key=lambda e: (len(e.absolute_path), e.json_path))
    lines = []
    for error in errors[:MAX_ERRORS_PER_FILE]:
        if error.validator == "type":
            expected = error.validator_value
            expected = " or ".join(expected) if isinstance(expected, list) else expected
            problem = f"expected {expected}, got {json_type(error.instance)}"
        elif error.validator == "anyOf" and (usual := [e for e in error.context if e.relative_schema_path[0] == 0]):
            # an agent entry: a tmux session, or (E3) a cursor backend; say what the usual kind lacks
            problem = f"{usual[0].message} (or, for a cursor backend entry, backend \"cursor\" and cursor_pid)"
        else:
            problem = error.message if len(error.message) <= 160 else error.message[:157] + "..."
        lines.append(Problem(str(path), error.json_path, problem))
    if len(errors) > MAX_ERRORS_PER_FILE:
        lines.append(Problem(str(path), "$", f"... and {len(errors) - MAX_ERRORS_PER_FILE} more schema errors"))
    return lines


def _record(agent_id: str, entry: dict[str, Any], task_id: str | None, source: ScopeKind) -> AgentRecord:
    get = entry.get
    times = (get("started_at"), get("completed_at"), get("terminated_at"), get("failed_at"))
    status = get("status")
    cursor = get("cursor_pid") if get("backend") == "cursor" else None
    return AgentRecord(agent_id, get("task_id", task_id), status, get("tmux_session") or "", source, times,
                       ORCHESTRATOR_JSON.status_class(status),  # every JSON era's words mean the same
                       CursorRecord(cursor) if cursor else None, CURSOR_BACKEND if cursor else ())


def records(kind: ScopeKind, data: dict[str, Any], consume: bool = False) -> tuple[tuple[AgentRecord, ...],
                                                                                   tuple[str, ...]]:
    """A validated registry's agent records and task ids. ``consume``: each entry is taken out of ``data`` as its
    record is made, so that a big registry's parsed entries are freed while their records grow, not held beside
    them all (200,000 entries: about 100 MB at the peak)."""
    if kind is ScopeKind.GLOBAL:
        task_ids = tuple(data["tasks"])
        if not consume:
            return tuple(_record(aid, entry, None, kind) for aid, entry in data["agents"].items()), task_ids
        agents = data["agents"]
        taken = []
        while agents:  # last first
            agent_id, entry = agents.popitem()
            taken.append(_record(agent_id, entry, None, kind))
        return tuple(reversed(taken)), task_ids
    entries = data["agents"]
    if not consume:
        return tuple(_record(entry["id"], entry, data["task_id"], kind) for entry in entries), (data["task_id"],)
    entries.reverse()
    return tuple(_record((entry := entries.pop())["id"], entry, data["task_id"], kind)
                 for _ in range(len(entries))), (data["task_id"],)


# The entries' values that repeat across a registry (strict_json.parse shares them in a big file)
REPEATED = frozenset({"status", "task_id", "type", "parent", "backend"})


def load_data(path: Path, kind: ScopeKind, raw: bytes | str, *, unique_keys: bool = False) -> Any:
    """Parse and validate (``raw``: bytes, or text from strict_json.decode; ``unique_keys``: strict_json.parse's);
    raise RegistryError carrying every problem."""
    data = parse(path, raw, REPEATED, unique_keys=unique_keys)
    if errors := schema_errors(path, kind, data):
        raise RegistryError(*errors)
    return data


def load_file(path: Path, kind: ScopeKind, workspace: Path | None = None) -> Scope:
    """One registry file as a scope: its records, or its problems. Missing: nothing stands there."""
    try:
        raw, stamp, mtime = read_stamped(path, workspace)
    except Missing:
        if kind is ScopeKind.TASK:
            raise
        return Scope(path, kind, errors=(Problem(str(path), "$", "file is missing"),))
    except RegistryError as exc:
        return Scope(path, kind, errors=exc.problems)
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = decode(path, raw)
        del raw  # neither the bytes while the text is parsed, nor the text after: 75 MB each at 200,000 entries
        data = load_data(path, kind, text)
        del text
    except RegistryError as exc:
        errors = exc.problems
        journal = journal_path(path)
        if journal.exists():
            errors += (Problem(str(path), "$",
                               f"a --fix was interrupted writing it; the next --fix restores it from {journal}"),)
        return Scope(path, kind, digest, mtime, errors=errors, stamp=stamp)
    counters = {name: data[name] for name in ORCHESTRATOR_JSON.counters[kind] if name in data}
    agents, task_ids = records(kind, data, consume=True)  # data["agents"] is empty after
    client = data.get("client_cwd") if kind is ScopeKind.TASK else None
    clients = (client,) if is_path(client) else ()
    return Scope(path, kind, digest, mtime, (), counters, agents, task_ids, clients, frozenset(data), stamp=stamp)


def _task(path: Path, workspace: Path) -> Scope | None:
    try:
        return load_file(path, ScopeKind.TASK, workspace)
    except Missing:
        return None


def dialect_of(authority: Scope, members: tuple[Scope, ...]) -> Dialect:
    """The first era (526a899..d388d16) writes task registries without `workspace_base` and never a status into
    a global entry; from 8e57beb on, every task registry records its `workspace_base`. Files that show neither
    (no task registry yet) read the same either way."""
    read = [m for m in members if not m.errors]
    if read and not any("workspace_base" in m.keys for m in read) and all(r.status is None for r in authority.agents):
        return ORCHESTRATOR_FIRST
    return ORCHESTRATOR_JSON


def _status_from_members(authority: Scope, members: tuple[Scope, ...], dialect: Dialect) -> Scope:
    """Where the global entries carry no status (the first era), each takes its agent's class from its task
    registry, the only record of its state: a finished agent is not "active" because its global entry is silent."""
    if ScopeKind.GLOBAL in dialect.status_in:
        return authority
    known = {r.id: r.status_class for m in members for r in m.agents}
    agents = tuple(r._replace(status_class=known[r.id]) if r.id in known else r for r in authority.agents)
    return dataclasses.replace(authority, agents=agents)


def present(workspace: Path) -> bool:
    """The JSON registries are the orchestrator's oldest store: read whenever no other store claims the workspace."""
    return True


def load(workspace: Path, timeout: float = 0.0) -> Records:
    """Load the global registry and every task registry under ``workspace`` (no lock is taken: ``timeout``
    is the protocol's, unused here)."""
    global_path = workspace / GLOBAL_RELPATH
    if not workspace.is_dir():
        missing = Scope(global_path, ScopeKind.GLOBAL)
        why = Problem(str(workspace), "$", NO_WORKSPACE)
        return Records(workspace, missing, (), ORCHESTRATOR_JSON, NAME, (why,), ((str(global_path), None),))
    inner = workspace / ".agent-workspace"
    if not (workspace / "registry").exists() and (inner / "registry").is_dir():  # a project root was given
        missing = Scope(global_path, ScopeKind.GLOBAL)
        hint = Problem(str(workspace), "$",
                       f"has no registry/ but {inner} does: is that the workspace? (--workspace {inner})")
        return Records(workspace, missing, (), ORCHESTRATOR_JSON, NAME, (hint,), ((str(global_path), None),))
    # the global registry first, the biggest file: its parse (text and objects) then peaks alone, with no task
    # registry's records held beside it (200,000 entries: 100 MB less at the peak)
    authority = load_file(global_path, ScopeKind.GLOBAL, workspace)
    tasks = tuple(scope for path in task_registries(workspace) if (scope := _task(path, workspace)) is not None)
    dialect = dialect_of(authority, tasks)
    authority = _status_from_members(authority, tasks, dialect)
    stamp = tuple((str(f.path), f.stamp) for f in (authority, *tasks))
    return Records(workspace, authority, tasks, dialect, NAME, fingerprint=stamp)
