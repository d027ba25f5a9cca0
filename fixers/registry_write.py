"""Change a registry file the way a careful co-writer must: under the orchestrator's own lock, by id.

The orchestrator's locking writers take ``fcntl.flock(LOCK_EX)`` on the registry file itself, so
this module does the same (through filelock's ``lock_descriptor`` on a descriptor opened with
O_NOFOLLOW: a symlinked registry is never written through). Under the lock the file is read
again, the edit is applied to what is there *now* (entries added since the snapshot survive),
the previous bytes are kept as a timestamped backup, and the new version replaces the old one
atomically (temp file in the same folder, fsync, rename, fsync of the folder): a reader or a crash
sees the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import lock_descriptor, unlock_descriptor

from healthchecks.registry import Kind, RegistryError, load_data

Edit = Callable[[dict[str, Any]], list[str]]  # mutates the data in place, returns what it changed
FAULT_ENV = "AGENT_HEALTHCHECKS_FAULT_POINT"


def fault_point(name: str) -> None:
    """Fault injection for the reliability tests: with ``AGENT_HEALTHCHECKS_FAULT_POINT=<name>:<marker file>``
    set, create the marker and stop here until killed, so a test can SIGKILL the writer at this exact point."""
    wanted, _, marker = os.environ.get(FAULT_ENV, "").partition(":")
    if wanted == name:
        Path(marker).touch()
        while True:
            time.sleep(60)


class LockTimeout(TimeoutError):
    """Another writer held the registry lock longer than we are willing to wait."""


@dataclass(frozen=True)
class WriteResult:
    path: Path
    changes: tuple[str, ...]
    backup: Path | None


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


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, before_replace: Callable[[], None] | None = None) -> None:
    """Replace ``path`` with ``data`` so that no reader and no crash ever sees a partial file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _remove_stale_temps(path: Path) -> None:
    """Temp files of writers that were killed before their rename (their PID no longer runs)."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[1]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            tmp.unlink(missing_ok=True)


def backup_path(workspace: Path, path: Path, stamp: str) -> Path:
    relative = path.relative_to(workspace) if path.is_relative_to(workspace) else Path(path.name)
    return workspace / "registry" / "backups" / f"{'__'.join(relative.parts)}.{stamp}.bak"


def append_archive(archive: Path, records: list[dict[str, Any]]) -> None:
    """Append pruned entries to a JSON-lines archive and make them durable before the registry changes."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with open(archive, "a", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def rewrite(
    path: Path,
    kind: Kind,
    edit: Edit,
    *,
    workspace: Path,
    lock_timeout: float,
    before_write: Callable[[dict[str, Any]], None] | None = None,
) -> WriteResult:
    """Apply ``edit`` to the registry at ``path`` under its lock; one write, backed up first.

    Raises RegistryError when the file is now unreadable or would become invalid, LockTimeout when
    the lock is not free in time; in both cases nothing is written.
    """
    if path.is_symlink():
        raise RegistryError(f"{path}: $: is a symlink; refusing to write through it")
    with locked(path, lock_timeout) as fd:
        _remove_stale_temps(path)
        raw = _read_fd(fd)
        data = load_data(path, kind, raw)
        changes = edit(data)
        if not changes:
            return WriteResult(path, (), None)
        new = (json.dumps(data, indent=2, ensure_ascii=False) + ("\n" if raw.endswith(b"\n") else "")).encode()
        load_data(path, kind, new)  # never write what we would refuse to read
        if before_write is not None:
            before_write(data)
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 10**9:09d}"
        backup = backup_path(workspace, path, stamp)
        backup.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(backup, raw)
        fault_point("backup-written")
        write_atomic(path, new, before_replace=lambda: fault_point("temp-written"))
        fault_point("replaced")
        return WriteResult(path, tuple(changes), backup)
