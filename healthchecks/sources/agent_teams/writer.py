"""Write Claude Code Agent Teams' files, only where its lead can no longer write them (fixers only).

Claude Code owns `teams/<team>/config.json` while the team's lead runs: nothing here writes a team whose lead is
alive (or cannot be proven dead), re-checked by pid + start time at the moment of writing. What it does:
- mark a ghost member `isActive: false` (the lead's own word for a member that is not working), config.json backed
  up first into `<config dir>/registry/backups/` the way every writer backs up (fixers/backups.py: its name and
  marker, so that only this tool's backups are ever pruned), then written whole to a new temporary of an unguessable
  name (O_CREAT|O_EXCL|O_NOFOLLOW: a name planted in advance is never opened) and renamed over it;
- move a stale team's directory, and its `tasks/<team>` directory, into a new `<config dir>/archive/teams-<time>/`:
  never deleted. A team whose config.json changed since the snapshot is left as it is.
Every folder written in, moved from or moved into is opened from the config dir down without following a symlink
(safe_files.open_contained), and every create and rename is made relative to those descriptors: a folder an agent
links to a person's folder is refused in one line, never followed. A `tasks/<team>` reached through a symlink is not
the team's: it stays where it is, and the outcome says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import time
from pathlib import Path

import psutil

from fixers import backups
from fixers.writers import Edits, Written
from healthchecks.processes import start_ticks
from healthchecks.records import Problem, Records, RegistryError, Scope
from healthchecks.safe_files import Missing, check_contained, open_contained, read_bytes
from healthchecks.strict_json import parse

ARCHIVE = "archive"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


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
        return str(exc.problem)
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


def _places(records: Records, edits: Edits) -> list[Path]:
    """The folders the edits write in besides the teams' own: the backups' (a mark), the archive (a move)."""
    return [*([backups.folder(records.workspace)] if edits.marks else []),
            *([records.workspace / ARCHIVE] if edits.archives else [])]


def check(records: Records, edits: Edits, lock_timeout: float) -> str | None:
    if edits.prunes:
        return "Agent Teams members are never removed from config.json by a fix; nothing was changed"
    for place in _places(records, edits):
        try:
            check_contained(records.workspace, place / "x")
        except RegistryError as exc:
            return f"{exc.problem}; nothing was changed"
    for scope, _, _ in _scopes(records, edits):
        if why := _unchanged(records, scope):
            return why
    return None


def _made_folder(workspace: Path, path: Path) -> int:
    """A descriptor of the folder ``path`` inside ``workspace``, made where missing (and the folders above it),
    every component opened without following a symlink; RegistryError (one line) when one is a symlink."""
    try:
        return open_contained(path, workspace, folder=True)
    except Missing:
        if path == workspace:
            raise
    parent = _made_folder(workspace, path.parent)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path.name, 0o755, dir_fd=parent)
    finally:
        os.close(parent)
    return open_contained(path, workspace, folder=True)


def _write_whole(folder: int, name: str, data: bytes, mode: int, *, backup: bool = False) -> None:
    """``name`` in ``folder`` made or replaced whole: a new temporary of an unguessable name, created with
    O_EXCL|O_NOFOLLOW in that folder, written, fsynced (and marked as this tool's backup), renamed over it."""
    temp = f".{name}.hc-{secrets.token_hex(8)}"
    fd = os.open(temp, _CREATE, 0o600, dir_fd=folder)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            if backup:
                backups.mark(fd)
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=folder)
        raise
    os.fsync(folder)


def _mark(records: Records, scope: Scope, ids: set[str]) -> None:
    workspace = records.workspace
    raw = read_bytes(scope.path, workspace)
    if hashlib.sha256(raw).hexdigest() != scope.digest:  # the bytes written from are the bytes judged, or nothing
        raise RegistryError(Problem(scope.label, "", "config.json changed since the snapshot; left as it is"))
    data = parse(scope.path, raw)
    for member in data.get("members", []):
        if isinstance(member, dict) and member.get("agentId") in ids:
            member["isActive"] = False
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 10**9:09d}"
    with contextlib.ExitStack() as opened:
        team = open_contained(scope.path.parent, workspace, folder=True)
        opened.callback(os.close, team)
        store = _made_folder(workspace, backups.folder(workspace))
        opened.callback(os.close, store)
        mode = stat.S_IMODE(os.stat(scope.path.name, dir_fd=team, follow_symlinks=False).st_mode)
        _write_whole(store, backups.path_for(workspace, scope.path, stamp).name, raw, mode, backup=True)
        _write_whole(team, scope.path.name, json.dumps(data, indent=2).encode(), mode)


def _new_folder(archive: int) -> str:
    """A folder made now in the archive, `teams-<time>` (a suffix when that name is taken: never one that was
    there before, which may be anything, a symlink included)."""
    base = f"teams-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        name = base if n == 1 else f"{base}-{n}"
        try:
            os.mkdir(name, 0o755, dir_fd=archive)
            return name
        except FileExistsError:
            continue
    raise FileExistsError(f"{base}: 999 archive folders of this second already exist")


def _move_into(workspace: Path, source: Path, into: int, name: str) -> None:
    """Rename the folder ``source`` (reached through no symlink, itself no symlink) to ``name`` in ``into``."""
    os.close(open_contained(source, workspace, folder=True))  # a folder of the config dir, or one line why not
    parent = open_contained(source.parent, workspace, folder=True)
    try:
        os.rename(source.name, name, src_dir_fd=parent, dst_dir_fd=into)
    finally:
        os.close(parent)


def _move(records: Records, scope: Scope) -> str:
    """Move the team's folder, then each belonging that is the team's, into a new archive folder; what was moved,
    and each belonging reached through a symlink that was left where it is (one line)."""
    workspace, team = records.workspace, scope.path.parent
    archive = _made_folder(workspace, workspace / ARCHIVE)
    try:
        where = workspace / ARCHIVE / _new_folder(archive)
    finally:
        os.close(archive)
    into = open_contained(where, workspace, folder=True)
    try:
        _move_into(workspace, team, into, team.name)
        said = [f"moved {team} -> {where / team.name}"]
        for extra in scope.belongings:
            name = f"{extra.parent.name}-{extra.name}"
            try:
                _move_into(workspace, extra, into, name)
                said.append(f"{extra} -> {where / name}")
            except Missing:
                continue
            except RegistryError as exc:
                said.append(f"not the team's, left where it is: {exc.problem}")
    finally:
        os.close(into)
    return "; ".join(said)


def write(records: Records, edits: Edits, lock_timeout: float) -> Written:
    written = Written()
    for scope, ids, archive in _scopes(records, edits):
        if why := _unchanged(records, scope):
            for key in (*ids, *([str(scope.path.parent)] if archive else [])):
                written.failed[key] = why
            continue
        try:
            if archive:
                written.done[str(scope.path.parent)] = _move(records, scope)
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
