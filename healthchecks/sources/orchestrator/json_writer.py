"""Change a registry file the way the orchestrator's own writers do: in place, under its flock, by id.

The orchestrator's writers `open(path, "r+")`, take `flock(LOCK_EX)` on the registry file itself and
rewrite it in place. A writer blocked on that lock holds the file's inode: had we renamed a new
file over the path, its update would go into an unlinked file and vanish. So this module takes
the same lock on the same inode (through filelock's `lock_descriptor`, on a descriptor opened with
O_NOFOLLOW), re-reads the file, applies the edit to what is there *now*, and writes it back in
place. A blocked writer then reads our bytes and applies its own change on top. Owner, group and
mode stay as they are, because the inode does.

In place is not atomic, so every write is guarded:
1. a byte-identical backup in `<workspace>/registry/backups/` (a new file, renamed into place);
2. a rollback journal beside the file (old bytes, their digest and the new bytes' digest), fsynced
   before the first byte of the registry changes, and removed after the file is fsynced;
3. under the lock, before reading, a journal left by a killed run is resolved: a file that is
   neither the old nor the new version and does not parse is torn, and gets its old bytes back.
Signals that would interrupt the in-place write (SIGINT, SIGTERM) are held until it is done.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from filelock import lock_descriptor, unlock_descriptor

from fixers import backups
from fixers.archive import append_archive, fsync_dir, remove_stale_temps, write_new
from fixers.writers import Edits, Written, failure
from healthchecks import holding, indented_json
from healthchecks.dialect import Dialect, ScopeKind, StatusClass
from healthchecks.records import Problem, Records, RegistryError
from healthchecks.safe_files import check_contained, read_bytes
from healthchecks.strict_json import MAX_NESTING, nesting_budget, parse

from .json_registry import (
    journal_path,
    journaled_file,
    journals,
    load_data,
    records,
)


class Change(NamedTuple):
    """One change an edit made, as a person reads it; ``counter``: the counter it set (None: an entry's change)."""

    text: str
    counter: str | None = None


Edit = Callable[[dict[str, Any]], list[Change]]  # mutates the data in place, returns what it changed
BLOCK = 1 << 16  # in-place writes go in blocks: a short write is retried, never taken for done


def _no_fault(point: str) -> None:
    """Where the reliability tests stop a writer (they install their own hook); nothing in production."""


fault: Callable[[str], None] = _no_fault


class LockTimeout(TimeoutError):
    """Another writer held the registry lock longer than we are willing to wait."""


@dataclass(frozen=True)
class WriteResult:
    path: Path
    changes: tuple[Change, ...]
    backup: Path | None


@dataclass(frozen=True)
class Prepared:
    """An edit applied to a registry's bytes, serialized and validated, not yet written."""

    raw: bytes
    new: bytes
    data: dict[str, Any]
    changes: tuple[Change, ...]


@contextlib.contextmanager
def locked(path: Path, timeout: float) -> Iterator[int]:
    """Hold the orchestrator's exclusive flock on ``path`` (bounded wait); yields the descriptor.

    A co-writer may replace the file (rename a new one over it) while we wait: the lock we then
    get guards a file nobody reads any more, and its bytes are stale. So once locked, the
    descriptor must still be the file at ``path``; if not, the new file is opened and locked.
    """
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            while not lock_descriptor(fd, blocking=False):
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{path}: another process held the registry lock for more than {timeout:g}s")
                time.sleep(0.05)
            try:
                if _is_file_at(fd, path):
                    yield fd
                    return
            finally:
                unlock_descriptor(fd)
        finally:
            os.close(fd)


def _is_file_at(fd: int, path: Path) -> bool:
    held = os.fstat(fd)
    try:
        current = os.lstat(path)
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)


def _read_fd(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    """pwrite every byte from offset 0 (a short write is continued, never taken for done)."""
    view, offset = memoryview(data), 0
    while offset < len(data):
        offset += os.pwrite(fd, view[offset : offset + BLOCK], offset)
        fault("in-place")


def serialize(data: Any, raw: bytes) -> bytes:
    """JSON the way the file was written: ASCII escapes if it was pure ASCII (Python's json.dump default,
    which the orchestrator uses), UTF-8 otherwise; escapes whatever UTF-8 cannot hold (a lone surrogate). The text
    is json.dumps(indent=2)'s, byte for byte, made by the C encoder (healthchecks.indented_json)."""
    tail = "\n" if raw.endswith(b"\n") else ""
    with nesting_budget(4 * MAX_NESTING):  # the indenting encoder takes a few frames a level
        if not raw.isascii():
            with contextlib.suppress(UnicodeEncodeError):
                return (indented_json.dumps(data, ensure_ascii=False) + tail).encode("utf-8")
        return (indented_json.dumps(data, ensure_ascii=True) + tail).encode("ascii")


def prepare(path: Path, kind: ScopeKind, raw: bytes, edit: Edit, read_as: str | None = None) -> Prepared:
    """Apply ``edit`` to ``raw`` and serialize the result; RegistryError when either cannot be done. ``read_as``: the
    digest of the bytes this file's records were read from (None: unknown); bytes with that digest passed the strict
    parse then, so no key repeats in them (and none can in the encoding of a parsed document)."""
    data = load_data(path, kind, raw, unique_keys=read_as is not None and _digest(raw) == read_as)
    changes = tuple(edit(data))
    if not changes:
        return Prepared(raw, raw, data, ())
    try:
        new = serialize(data, raw)
    except (RecursionError, ValueError) as exc:
        raise RegistryError(Problem(str(path), "$", f"cannot be written back ({exc})")) from None
    load_data(path, kind, new, unique_keys=True)  # never write what we would refuse to read
    return Prepared(raw, new, data, changes)


def dry_run(path: Path, kind: ScopeKind, edit: Edit, *, workspace: Path, read_as: str | None = None) -> Prepared:
    """Everything a write does except writing (and locking): for checking a whole plan before any action."""
    check_contained(workspace, path)
    return prepare(path, kind, read_bytes(path), edit, read_as)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while a file is being rewritten in place: Ctrl-C lands after, not inside."""
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_in_place(fd: int, path: Path, raw: bytes, new: bytes) -> None:
    journal = journal_path(path)
    header = json.dumps({"file": path.name, "old": _digest(raw), "new": _digest(new), "size": len(raw)})
    write_new(journal, header.encode() + b"\n" + raw, os.fstat(fd).st_mode)
    fault("journal-written")
    with _signals_held():
        _write_all(fd, new)
        os.ftruncate(fd, len(new))
        os.fsync(fd)
        fault("written")
        journal.unlink()
        fsync_dir(path.parent)


def recover(fd: int, path: Path, workspace: Path) -> bytes:
    """Resolve a journal a killed run left beside ``path`` (the lock is held); return the file's bytes now."""
    journal = journal_path(path)
    current = _read_fd(fd)
    try:
        blob = journal.read_bytes()
    except FileNotFoundError:
        return current
    head, _, old = blob.partition(b"\n")
    whole = _journal_matches(head, path, old)
    if not whole:  # not a journal of ours, or damaged: set aside, never deleted
        keep = backups.path_for(workspace, path, _stamp()).with_suffix(".journal")
        keep.parent.mkdir(parents=True, exist_ok=True)
        os.replace(journal, keep)
        return current
    meta = json.loads(head)
    if _digest(current) not in (meta["old"], meta["new"]) and not _parses(path, current):
        with _signals_held():  # torn mid-write: put the old bytes back, in place, as they were
            _write_all(fd, old)
            os.ftruncate(fd, len(old))
            os.fsync(fd)
        current = old
    journal.unlink()  # the old bytes are also in the backup written before the journal
    fsync_dir(path.parent)
    return current


def _journal_matches(head: bytes, path: Path, old: bytes) -> bool:
    """Whether a journal's header is one this tool wrote for ``path`` and its old bytes are whole: the file it
    names, the size and the digest of the old bytes, and a digest of the new ones."""
    try:
        meta = json.loads(head)
        return (
            isinstance(meta, dict)
            and meta.get("file") == path.name
            and meta.get("size") == len(old)
            and meta.get("old") == _digest(old)
            and isinstance(meta.get("new"), str)
            and len(meta["new"]) == len(meta["old"])
        )
    except ValueError:
        return False


def recover_workspace(workspace: Path, lock_timeout: float) -> list[str]:
    """Resolve every journal a killed run left in the workspace, each under its file's lock; what was done.

    A journal-like file beside anything but a JSON registry was not left by this tool: reported, never applied.
    """
    done = []
    for journal in journals(workspace):
        path = journaled_file(workspace, journal)
        if path is None:
            done.append(f"{journal}: not a journal of a registry this tool writes; left as it is, not applied")
            continue
        try:
            check_contained(workspace, path)
            with locked(path, lock_timeout) as fd:
                before = _read_fd(fd)
                after = recover(fd, path, workspace)
            done.append(f"{path}: " + ("restored from the journal of an interrupted fix" if after != before
                                       else "an interrupted fix's journal resolved; the file was whole"))
        except (RegistryError, LockTimeout, OSError) as exc:
            done.append(f"{path}: journal left as it is: {failure(exc)}")
    return done


def _parses(path: Path, raw: bytes) -> bool:
    try:
        parse(path, raw)
    except RegistryError:
        return False
    return True


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 10**9:09d}"


def rewrite(
    path: Path,
    kind: ScopeKind,
    edit: Edit,
    *,
    workspace: Path,
    lock_timeout: float,
    before_write: Callable[[dict[str, Any]], None] | None = None,
    read_as: str | None = None,
) -> WriteResult:
    """Apply ``edit`` to the registry at ``path`` under its lock; one write, backed up first.

    Raises RegistryError when the file is now unreadable, would become invalid or lies outside the
    workspace, LockTimeout when the lock is not free in time; in both cases nothing is written. ``read_as``:
    prepare's.
    """
    check_contained(workspace, path)
    with locked(path, lock_timeout) as fd:
        check_contained(workspace, path)  # at the moment of action
        remove_stale_temps(path.parent)
        raw = recover(fd, path, workspace)
        ready = prepare(path, kind, raw, edit, read_as)
        if not ready.changes:
            return WriteResult(path, (), None)
        if before_write is not None:
            before_write(ready.data)
        backup = backups.path_for(workspace, path, _stamp())
        check_contained(workspace, backup)
        backup.parent.mkdir(parents=True, exist_ok=True)
        write_new(backup, raw, os.fstat(fd).st_mode)
        backups.mark(backup)
        fault("backup-written")
        _write_in_place(fd, path, raw, ready.new)
        return WriteResult(path, ready.changes, backup)


# --- the writer protocol (fixers.writers) ----------------------------------------------------------------------
def pending(workspace: Path) -> bool:
    return bool(journals(workspace))


def _files_to_write(regs: Records, edits: Edits) -> list[tuple[Path, ScopeKind, str | None]]:
    """Each file a write changes, its kind, and the digest of the bytes its records were read from when they were
    read whole (prepare's ``read_as``)."""
    ids = edits.ids
    return [
        (f.path, f.kind, None if f.errors else f.digest)
        for f in regs.scopes
        if str(f.path) in edits.counter_scopes or not ids.isdisjoint(r.id for r in f.agents)
    ]


def _classes(regs: Records) -> dict[str, StatusClass]:
    """Each agent's class where its status lives, for scopes that hold none (the first era's global entries):
    made once per check or write, never per file."""
    return {r.id: r.status_class for r in regs.authority.agents}


def check(regs: Records, edits: Edits, lock_timeout: float) -> str | None:
    """Every write of the plan made once without writing (read, edited, serialized, validated)."""
    workspace = regs.workspace
    if not regs.ok:
        return f"registry unusable: {regs.all_errors[0]}"
    for place in ("backups", "archive"):  # where the writes' copies go must be inside the workspace too
        try:
            check_contained(workspace, workspace / "registry" / place / "x")
        except RegistryError as exc:
            return f"{exc.problem}; nothing was changed"
    classes = _classes(regs)
    for path, kind, read_as in _files_to_write(regs, edits):
        edit, _, _ = _editor(path, kind, regs, edits, classes)
        try:
            with holding.held([path], min(lock_timeout, holding.TIMEOUT)):  # not half-written by the orchestrator
                dry_run(path, kind, edit, workspace=workspace, read_as=read_as)
        except (RegistryError, OSError) as exc:
            return f"{failure(exc)}; nothing was changed"
    return None


def write(regs: Records, edits: Edits, lock_timeout: float) -> Written:
    """Every entry change and counter fix, one locked write per registry file."""
    written = Written()
    done: dict[str, list[Change]] = {}
    touched: dict[str, set[str]] = {}  # registry file -> agent ids its write changed
    failed: dict[str, str] = {}
    classes = _classes(regs)
    for path, kind, read_as in _files_to_write(regs, edits):
        edit, removed, touched[str(path)] = _editor(path, kind, regs, edits, classes)

        def archive_removed(data: dict[str, Any], path: Path = path, removed: list[tuple[str, Any]] = removed) -> None:
            if removed:
                rel = str(path.relative_to(regs.workspace))
                rows = [{"archived_at": edits.now, "registry": rel, "agent_id": i, "entry": e} for i, e in removed]
                append_archive(regs.workspace, edits.archive, rows)

        try:
            result = rewrite(
                path,
                kind,
                edit,
                workspace=regs.workspace,
                lock_timeout=lock_timeout,
                before_write=archive_removed,
                read_as=read_as,
            )
            done[str(path)] = list(result.changes)
        except (RegistryError, LockTimeout, OSError) as exc:
            failed[str(path)] = failure(exc)
    for scope in edits.counter_scopes:
        if scope in failed:
            written.failed[scope] = failed[scope]
        else:
            changed = [c.text for c in done.get(scope, []) if c.counter is not None]
            written.done[scope] = "; ".join(changed) or "already right"
    holders: dict[str, list[str]] = {}  # agent id -> the registry files that list it
    for file in regs.scopes:
        for record in file.agents:
            holders.setdefault(record.id, []).append(str(file.path))
    names = {p: Path(p).name for p in done}  # once a file, not once an agent (50,000 ghosts: a second)
    for agent_id in edits.ids:
        paths = holders.get(agent_id, [])
        errors = [failed[p] for p in paths if p in failed]
        applied = [names[p] for p in paths if p in done and agent_id in touched[p]]
        if errors:
            written.failed[agent_id] = errors[0]
        elif applied:
            written.done[agent_id] = "in " + ", ".join(applied)
    return written


def _editor(
    path: Path, kind: ScopeKind, regs: Records, edits: Edits, classes: dict[str, StatusClass]
) -> tuple[Edit, list[tuple[str, Any]], set[str]]:
    """An edit applied under the lock, by id, to whatever the file holds now; what it removed; the ids it changed.

    A dead agent is marked as the records' dialect marks one, and only in the scopes that hold its status (the
    first era's global entries never carry one). Pruned ids leave `agent_hierarchy` too. Counters are
    recomputed from the entries as they now are when the counters check is part of this run, except the ones a
    person waived (``edits.waived``): those stay as they are, even in a write that changes the file.
    """
    dialect: Dialect = regs.dialect
    mark = dialect.mark
    holds_status = kind in dialect.status_in
    # where a scope holds no status, its records count by their agent's class where the status lives
    resolved = classes if not holds_status else {}
    removed: list[tuple[str, Any]] = []
    touched: set[str] = set()
    marks, prunes = edits.marks, edits.prunes
    waived = {c.name for c in edits.waived if c.path == str(path)}
    # what a mark sets, made once (50,000 marks: a third of a second made per entry)
    marked = {**dict.fromkeys(mark.now_fields, edits.now), **mark.fields} if mark is not None else {}

    def edit(data: dict[str, Any]) -> list[Change]:
        removed.clear()
        touched.clear()
        changes: list[Change] = []
        glob = kind is ScopeKind.GLOBAL
        entries = list(data["agents"].items()) if glob else [(e.get("id"), e) for e in data["agents"]]
        for agent_id, entry in entries:
            if agent_id in prunes:
                removed.append((agent_id, entry))
                touched.add(agent_id)
                changes.append(Change(f"pruned {agent_id}"))
            elif (agent_id in marks and holds_status and mark is not None
                  and dialect.status_class(entry.get("status")) is StatusClass.ACTIVE):
                entry["status"] = mark.status
                entry.update(marked)
                touched.add(agent_id)
                changes.append(Change(f"{mark.status} {agent_id}"))
        gone = {agent_id for agent_id, _ in removed}
        if glob:
            for agent_id in gone:
                del data["agents"][agent_id]
        else:
            data["agents"] = [e for e in data["agents"] if e.get("id") not in gone]
            _drop_from_hierarchy(data, gone)
        if edits.counters:
            recs, task_ids = records(kind, data)
            if not holds_status:
                recs = tuple(r._replace(status_class=StatusClass.TERMINAL if r.id in marks
                                        else resolved.get(r.id, r.status_class)) for r in recs)
            for name, value in dialect.expected(kind, recs, len(task_ids)).items():
                if name in data and data[name] != value and name not in waived:
                    changes.append(Change(f"counter {name} {data[name]} → {value}", name))
                    data[name] = value
        return changes

    return edit, removed, touched


def _drop_from_hierarchy(data: dict[str, Any], gone: set[str]) -> None:
    """Pruned agents leave `agent_hierarchy`: as children, and as parents with no child left."""
    tree = data.get("agent_hierarchy")
    if not gone or not isinstance(tree, dict):
        return
    for parent in list(tree):
        children = tree[parent]
        if isinstance(children, list):
            tree[parent] = [c for c in children if c not in gone]
        if parent in gone and not tree[parent]:
            del tree[parent]
