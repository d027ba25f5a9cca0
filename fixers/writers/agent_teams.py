"""Write Claude Code Agent Teams' files, only where its lead can no longer write them (fixers only).

Claude Code owns `teams/<team>/config.json` while the team's lead runs: nothing here writes a team whose lead is
alive (or cannot be proven dead), re-checked by pid + start time at the moment of writing. What it does:
- mark a ghost member `isActive: false` (the lead's own word for a member that is not working), config.json backed
  up first into `<config dir>/archive/backups/`, written whole to a temporary file and renamed over it;
- move a stale team's directory, and its `tasks/<team>` directory, into `<config dir>/archive/teams-<time>/`:
  never deleted. A team whose config.json changed since the snapshot is left as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import psutil

from healthchecks.processes import start_ticks
from healthchecks.records import Records, RegistryError, Scope
from healthchecks.safe_files import read_bytes
from healthchecks.sources.json_registry import parse

from . import Edits, Written

ARCHIVE = "archive"
MAX_BACKUPS = 200  # backups kept per config dir; the oldest go first


def _owner_dead(scope: Scope) -> bool:
    owner = scope.owner
    if owner is None or owner.start_ticks is None or not owner.here:
        return False
    if start_ticks(owner.pid) != owner.start_ticks:
        return True
    try:  # the same process, exited and not yet reaped by its parent: dead all the same
        return psutil.Process(owner.pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _unchanged(records: Records, scope: Scope) -> str | None:
    """Why the scope must not be touched now (one line), or None."""
    if not _owner_dead(scope):
        return f"{scope.label}: its lead is alive or cannot be proven dead; never written"
    try:
        raw = read_bytes(scope.path, records.workspace)
    except RegistryError as exc:
        return str(exc)
    if hashlib.sha256(raw).hexdigest() != scope.digest:
        return f"{scope.label}: config.json changed since the snapshot; left as it is"
    return None


def _scopes(records: Records, edits: Edits) -> list[tuple[Scope, set[str], bool]]:
    """(scope, member ids to mark, archive it) for every scope the edits touch."""
    touched = []
    for scope in records.members:
        ids = {r.id for r in scope.agents} & set(edits.marks)
        archive = str(scope.path.parent) in edits.archives
        if ids or archive:
            touched.append((scope, ids, archive))
    return touched


def check(records: Records, edits: Edits, lock_timeout: float) -> str | None:
    if edits.prunes:
        return "Agent Teams members are never removed from config.json by a fix; nothing was changed"
    for scope, _, _ in _scopes(records, edits):
        if why := _unchanged(records, scope):
            return why
    return None


def _archive_dir(records: Records) -> Path:
    return records.workspace / ARCHIVE


def _backup(records: Records, scope: Scope, raw: bytes) -> None:
    folder = _archive_dir(records) / "backups"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{scope.label}-config-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json").write_bytes(raw)
    backups = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime)
    for old in backups[:-MAX_BACKUPS]:
        old.unlink(missing_ok=True)


def _mark(records: Records, scope: Scope, ids: set[str]) -> None:
    raw = read_bytes(scope.path, records.workspace)
    data = parse(scope.path, raw)
    for member in data.get("members", []):
        if isinstance(member, dict) and member.get("agentId") in ids:
            member["isActive"] = False
    _backup(records, scope, raw)
    temporary = scope.path.with_name(f".{scope.path.name}.hc-{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=2))
    os.replace(temporary, scope.path)


def _move(records: Records, scope: Scope, stamp: str) -> str:
    target = _archive_dir(records) / f"teams-{stamp}"
    target.mkdir(parents=True, exist_ok=True)
    os.rename(scope.path.parent, target / scope.path.parent.name)
    moved = [f"{scope.path.parent} -> {target / scope.path.parent.name}"]
    for extra in scope.belongings:
        if extra.is_dir() and not extra.is_symlink():
            os.rename(extra, target / f"{extra.parent.name}-{extra.name}")
            moved.append(f"{extra} -> {target / f'{extra.parent.name}-{extra.name}'}")
    return "moved " + "; ".join(moved)


def write(records: Records, edits: Edits, lock_timeout: float) -> Written:
    written = Written()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for scope, ids, archive in _scopes(records, edits):
        if why := _unchanged(records, scope):
            for key in (*ids, *([str(scope.path.parent)] if archive else [])):
                written.failed[key] = why
            continue
        try:
            if archive:
                written.done[str(scope.path.parent)] = _move(records, scope, stamp)
                written.done.update(dict.fromkeys(ids, "its team was archived whole"))
            elif ids:
                _mark(records, scope, ids)
                written.done.update(dict.fromkeys(ids, "isActive: false (config.json backed up first)"))
        except (OSError, RegistryError, ValueError) as exc:
            for key in (*ids, *([str(scope.path.parent)] if archive else [])):
                written.failed[key] = f"{scope.label}: {exc}"
    return written


def pending(workspace: Path) -> bool:
    """A write here is one rename: nothing is ever left half done."""
    return False


def recover_workspace(workspace: Path, lock_timeout: float) -> list[str]:
    return []
