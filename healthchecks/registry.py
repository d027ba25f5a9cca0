"""Read the orchestrator's registries without trusting them.

Every problem becomes one line naming the file, the JSON path and what is wrong, so a broken
registry is reported, never crashed on, and never handed to a fixer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator


GLOBAL_RELPATH = Path("registry") / "GLOBAL_REGISTRY.json"
TASK_GLOB = "TASK-*/AGENT_REGISTRY.json"
MAX_BYTES = 32 * 1024 * 1024  # a real registry of 10,000 agents is ~4 MB
MAX_ERRORS_PER_FILE = 20
MAX_NESTING = 200  # levels of JSON nesting a registry may have (a real one has 4); deeper is damage
NO_WORKSPACE = (
    "workspace directory does not exist (point --workspace or AGENT_WORKSPACE at the orchestrator's "
    ".agent-workspace; --demo checks a built-in demo world)"
)

ACTIVE = frozenset({"running", "working", "blocked", "reviewing"})
TERMINAL = frozenset({"completed", "failed", "error", "terminated", "killed", "phase_completed"})
# What the orchestrator's own `completed_count` counts (E2 update_agent_progress): every finished agent.
FINISHED = frozenset({"completed", "terminated", "error", "failed"})
GLOBAL_COUNTERS = ("total_tasks", "active_tasks", "total_agents_spawned", "active_agents")
TASK_COUNTERS = ("total_spawned", "active_count", "completed_count")

Kind = Literal["global", "task", "state"]  # state: the current release's SQLite database
StatusClass = Literal["active", "terminal", "unknown"]


_CLASSES: dict[str | None, StatusClass] = {None: "active", **dict.fromkeys(ACTIVE, "active"),
                                           **dict.fromkeys(TERMINAL, "terminal")}


def status_class(status: str | None) -> StatusClass:
    """The orchestrator writes no status at deploy, so a missing status means running."""
    return _CLASSES.get(status, "unknown") if isinstance(status, str | None) else "unknown"


class AgentRecord(NamedTuple):
    """One agent as one registry file describes it (a tuple: 10,000 of them are made for every snapshot)."""

    id: str
    task_id: str | None
    status: str | None
    tmux_session: str
    source: Kind
    # started_at, then completed_at, terminated_at, failed_at as written: parsed only when a check
    # asks (grace periods concern a few agents; parsing 10,000 entries' times up front does not pay).
    times: tuple[Any, ...] = ()
    status_class: StatusClass = "active"
    cursor_pid: int | None = None  # E3's cursor backend: a process, no tmux session

    def marked_terminated(self) -> AgentRecord:
        return self._replace(status="terminated", status_class="terminal")

    def started_at(self, tz: tzinfo | None) -> float | None:
        return parse_time(self.times[0], tz) if self.times else None

    def ended_at(self, tz: tzinfo | None) -> float | None:
        return next((t for value in self.times[1:] if (t := parse_time(value, tz)) is not None), None)


@dataclass(frozen=True)
class RegistryFile:
    """A registry file as read: its problems, or its counters and agent records."""

    path: Path
    kind: Kind
    digest: str | None = None
    mtime: float | None = None
    errors: tuple[str, ...] = ()
    counters: dict[str, Any] = field(default_factory=dict)
    agents: tuple[AgentRecord, ...] = ()
    task_ids: tuple[str, ...] = ()
    client_dirs: tuple[str, ...] = ()  # the project directories its agents' Claude runs in (`client_cwd`)


@dataclass(frozen=True)
class Registries:
    """The agents' records of one workspace, whatever holds them: the global registry and every task registry
    (JSON eras), or the state database as one scope with no counters (source "sqlite", the current release)."""

    workspace: Path
    global_file: RegistryFile
    task_files: tuple[RegistryFile, ...]
    errors: tuple[str, ...] = ()  # workspace-level problems
    source: str = "json"
    stamp: tuple[tuple[str, str | None], ...] | None = None  # the source's fingerprint when it was read

    @property
    def files(self) -> tuple[RegistryFile, ...]:
        return (self.global_file, *self.task_files)

    @property
    def all_errors(self) -> tuple[str, ...]:
        return self.errors + tuple(e for f in self.files for e in f.errors)

    @property
    def ok(self) -> bool:
        return not self.all_errors

    @property
    def fingerprint(self) -> tuple[tuple[str, str | None], ...]:
        """Changes whenever any registry file's bytes change (or a file appears or goes)."""
        return self.stamp if self.stamp is not None else tuple((str(f.path), f.digest) for f in self.files)


class RegistryError(ValueError):
    """A registry file that cannot be used; the message is one line: file, JSON path, problem."""


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "integer" if isinstance(value, int) else "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # rare: find which key, only then
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"duplicate key {duplicate!r}")
    return result


JOURNAL_SUFFIX = ".hc-journal"


def journal_path(path: Path) -> Path:
    """Where a --fix keeps the rollback journal of its in-place write of ``path`` (fixers.registry_write)."""
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


def check_contained(workspace: Path, path: Path) -> None:
    """Refuse a path that leaves the workspace: no folder between the workspace and the file, nor the
    file itself, may be a symlink (a `TASK-*` folder linked to another project's task is that project's)."""
    try:
        relative = path.relative_to(workspace)
    except ValueError:
        raise RegistryError(f"{path}: $: is outside the workspace {workspace}; refusing it") from None
    current = workspace
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            where = "is" if current == path else f"lies under {current}, which is"
            raise RegistryError(
                f"{path}: $: {where} a symlink to {os.readlink(current)}; refusing to follow it out of the workspace"
            )


def read_bytes(path: Path, workspace: Path | None = None) -> bytes:
    """Read a registry file, refusing what a careful reader must not follow or swallow."""
    if workspace is not None:
        check_contained(workspace, path)
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise RegistryError(f"{path}: $: file is missing") from None
    except OSError as exc:
        raise RegistryError(f"{path}: $: cannot stat ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise RegistryError(f"{path}: $: is a symlink to {os.readlink(path)}; refusing to follow it")
    if stat.S_ISDIR(st.st_mode):
        raise RegistryError(f"{path}: $: is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise RegistryError(f"{path}: $: is not a regular file")
    if st.st_size > MAX_BYTES:
        raise RegistryError(_too_large(path, st.st_size))
    try:
        raw = read_bounded(path)
    except PermissionError:
        raise RegistryError(f"{path}: $: not readable (permission denied)") from None
    except OSError as exc:
        raise RegistryError(f"{path}: $: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:  # it grew after the size was read
        raise RegistryError(_too_large(path, len(raw)))
    return raw


def _too_large(path: Path, size: int) -> str:
    return f"{path}: $: file is {size / 1e6:.1f} MB, over the {MAX_BYTES // 2**20} MiB limit"


def read_bounded(path: Path) -> bytes:
    """At most MAX_BYTES + 1 bytes, without following a symlink: never more memory than the limit allows."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb", buffering=0) as fh:
        # sized by the file, not by the limit: a read buffer is allocated whole, and most files are small
        want = min(os.fstat(fd).st_size, MAX_BYTES) + 1
        chunks, got = [], 0
        while got < want and (chunk := fh.read(want - got)):
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)


def fingerprint(workspace: Path) -> tuple[tuple[str, str | None], ...]:
    """Hash the registry files' bytes without parsing them: cheap enough to do after every read.

    Only regular files within the size limit are read: a FIFO, a directory, a symlink or a huge
    file in a registry's place gets no digest of its bytes (the loader reports it), because reading
    a FIFO would block this run forever and a sparse 4 GB file would exhaust its memory.
    """
    paths = [workspace / GLOBAL_RELPATH, *sorted(workspace.glob(TASK_GLOB))]
    result = []
    for path in paths:
        try:
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode):
                digest = None
            elif st.st_size > MAX_BYTES:
                digest = f"oversized:{st.st_size}:{st.st_mtime_ns}"
            else:
                digest = hashlib.sha256(read_bounded(path)).hexdigest()
        except OSError:
            digest = None
        result.append((str(path), digest))
    return tuple(result)


@contextlib.contextmanager
def nesting_budget(levels: int) -> Iterator[None]:
    """Python's recursion limit set to the frames in use now plus ``levels``, for the duration.

    JSON is decoded and encoded recursively: how deep a document can be then depends on how deep
    the stack already is, so the checks (inside pytest) and the fix (deeper still) would disagree
    about the same file. With a budget counted from the current frame, each reads the same limit.
    """
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + levels)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def parse(path: Path, raw: bytes) -> Any:
    """Decode strictly: the orchestrator writes plain UTF-8 JSON, so anything else is damage."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raise RegistryError(f"{path}: $: starts with a UTF-8 byte order mark")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(f"{path}: $: invalid UTF-8 at byte {exc.start}") from None
    if not text.strip():
        raise RegistryError(f"{path}: $: file is empty")
    try:
        with nesting_budget(MAX_NESTING + 3):  # json.loads and the key hook take a few frames of their own
            return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:
        raise RegistryError(f"{path}: $: nested deeper than {MAX_NESTING} levels") from None
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        where = "truncated" if cut else "invalid JSON"
        raise RegistryError(f"{path}: line {exc.lineno} column {exc.colno}: {where} ({exc.msg})") from None
    except ValueError as exc:
        raise RegistryError(f"{path}: $: {exc}") from None


@cache
def validators(kind: Kind) -> tuple[Callable[[Any], Any], Draft202012Validator]:
    """(fast check, reference validator) for one registry kind.

    jsonschema is the reference: it decides and it words every error. Checking 10,000 entries
    with it takes seconds, so a compiled validator (fastjsonschema) answers the common question
    "is this valid?" first; anything it rejects is judged again by jsonschema. The compiled copy
    has its local $refs inlined (see _inline_refs).
    """
    import fastjsonschema  # imported here: pytest-xdist workers never validate, and both cost an import
    from jsonschema import Draft202012Validator

    name = "global_registry.schema.json" if kind == "global" else "task_registry.schema.json"
    schema = json.loads(resources.files("healthchecks.schemas").joinpath(name).read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    fast = fastjsonschema.compile(_inline_refs(schema, schema.get("$defs", {})), handlers={})
    return fast, Draft202012Validator(schema)


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with every local ``#/$defs/x`` reference replaced by its definition, and no $id.

    Compiled, a $ref is a function call whose error path is formatted eagerly for every array
    item; inlined, the common valid case costs only the checks themselves.
    """
    if isinstance(node, dict):
        if isinstance(ref := node.get("$ref"), str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k not in ("$id", "$schema", "$defs")}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def schema_errors(path: Path, kind: Kind, data: Any) -> list[str]:
    """One line per schema violation, most shallow first, capped so a wrecked file stays readable."""
    fast, reference = validators(kind)
    try:
        fast(data)
        return []
    except ValueError:  # fastjsonschema's JsonSchemaException is a ValueError
        pass
    errors = sorted(reference.iter_errors(data), key=lambda e: (len(e.absolute_path), e.json_path))
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
        lines.append(f"{path}: {error.json_path}: {problem}")
    if len(errors) > MAX_ERRORS_PER_FILE:
        lines.append(f"{path}: $: ... and {len(errors) - MAX_ERRORS_PER_FILE} more schema errors")
    return lines


def may_be_after(value: Any, naive_limit: str) -> bool:
    """Whether an orchestrator timestamp may lie after a naive ISO limit (YYYY-MM-DDTHH:MM:SS), without parsing it.

    Naive times as Python writes them (19 or 26 characters) sort as strings, so the answer is exact for them;
    anything else (an offset, another precision) may be later and is left to parse_time.
    """
    if not isinstance(value, str):
        return False
    if len(value) in (19, 26) and value[19:20] in ("", "."):
        return value > naive_limit
    return True


def parse_time(value: Any, tz: tzinfo | None = None) -> float | None:
    """Orchestrator timestamps are naive ISO strings in its own local zone (``tz``; None: this machine's).

    None when absent or unreadable. A timestamp that carries an offset keeps it.
    """
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None and tz is not None:
            moment = moment.replace(tzinfo=tz)
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):  # unparseable, or a date the platform clock cannot hold
        return None


def _record(agent_id: str, entry: dict[str, Any], task_id: str | None, source: Kind) -> AgentRecord:
    get = entry.get
    times = (get("started_at"), get("completed_at"), get("terminated_at"), get("failed_at"))
    status = get("status")
    cursor = get("cursor_pid") if get("backend") == "cursor" else None
    return AgentRecord(agent_id, get("task_id", task_id), status, get("tmux_session") or "", source, times,
                       status_class(status), cursor)


def records(kind: Kind, data: dict[str, Any]) -> tuple[tuple[AgentRecord, ...], tuple[str, ...]]:
    """A validated registry's agent records and task ids."""
    if kind == "global":
        return tuple(_record(aid, entry, None, kind) for aid, entry in data["agents"].items()), tuple(data["tasks"])
    return tuple(_record(entry["id"], entry, data["task_id"], kind) for entry in data["agents"]), (data["task_id"],)


def expected_counters(kind: Kind, agents: tuple[AgentRecord, ...], task_ids: tuple[str, ...]) -> dict[str, int]:
    """What a registry file's counters should be, derived from its entries alone."""
    active = sum(1 for r in agents if r.status_class == "active")
    if kind == "global":
        return {"total_agents_spawned": len(agents), "active_agents": active, "total_tasks": len(task_ids)}
    completed = sum(1 for r in agents if r.status in FINISHED)
    return {"total_spawned": len(agents), "active_count": active, "completed_count": completed}


def load_data(path: Path, kind: Kind, raw: bytes) -> Any:
    """Parse and validate; raise RegistryError listing every problem (one per line)."""
    data = parse(path, raw)
    if errors := schema_errors(path, kind, data):
        raise RegistryError("\n".join(errors))
    return data


def is_path(value: Any) -> bool:
    """Whether a recorded directory can be a path at all: a non-empty string without NUL (no system call takes one)."""
    return isinstance(value, str) and bool(value) and "\0" not in value


def load_file(path: Path, kind: Kind, workspace: Path | None = None) -> RegistryFile:
    try:
        raw = read_bytes(path, workspace)
        mtime = path.stat().st_mtime
    except RegistryError as exc:
        return RegistryFile(path, kind, errors=tuple(str(exc).splitlines()))
    digest = hashlib.sha256(raw).hexdigest()
    try:
        data = load_data(path, kind, raw)
    except RegistryError as exc:
        errors = tuple(str(exc).splitlines())
        journal = journal_path(path)
        if journal.exists():
            errors += (f"{path}: $: a --fix was interrupted writing it; the next --fix restores it from {journal}",)
        return RegistryFile(path, kind, digest, mtime, errors=errors)
    names = GLOBAL_COUNTERS if kind == "global" else TASK_COUNTERS
    counters = {name: data[name] for name in names if name in data}
    agents, task_ids = records(kind, data)
    client = data.get("client_cwd") if kind == "task" else None
    clients = (client,) if is_path(client) else ()
    return RegistryFile(path, kind, digest, mtime, (), counters, agents, task_ids, clients)


def load(workspace: Path) -> Registries:
    """Load the global registry and every task registry under ``workspace``."""
    global_path = workspace / GLOBAL_RELPATH
    if not workspace.is_dir():
        missing = RegistryFile(global_path, "global")
        return Registries(workspace, missing, (), (f"{workspace}: $: {NO_WORKSPACE}",))
    inner = workspace / ".agent-workspace"
    if not (workspace / "registry").exists() and (inner / "registry").is_dir():  # a project root was given
        missing = RegistryFile(global_path, "global")
        hint = f"{workspace}: $: has no registry/ but {inner} does: is that the workspace? (--workspace {inner})"
        return Registries(workspace, missing, (), (hint,))
    tasks = tuple(load_file(p, "task", workspace) for p in sorted(workspace.glob(TASK_GLOB)))
    return Registries(workspace, load_file(global_path, "global", workspace), tasks)
