"""Files a fix creates whole or not at all, and the JSON-lines archive of what it prunes (every writer's).

A new file is written in a temp folder of this tool's own (its prefix and marker inside), fsynced and renamed into
place; a killed run's temp folders are provably this tool's and the only ones removed. The archive takes every
pruned record whole before its store changes, once (a killed fix's records are found there and not archived twice).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from healthchecks.safe_files import check_contained


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


TEMP_PREFIX = ".hc-tmp-"  # a folder <prefix><pid>-<random> beside the file being created
TEMP_MARKER = "made-by-agent-healthchecks"  # the file inside it that proves this tool made the folder


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` whole or not at all (temp file in the same folder, fsync, rename, fsync folder).

    The temp file lives in a folder of its own, named with this tool's prefix and holding its marker file: a
    killed run's leftovers are then provably this tool's, and nothing else in the folder is ever removed.
    """
    temp = path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
    os.mkdir(temp, 0o700)
    try:
        os.close(os.open(temp / TEMP_MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        tmp = temp / path.name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode & 0o7777)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        _remove_temp(temp)
    fsync_dir(path.parent)


def _remove_temp(temp: Path) -> None:
    """Empty and remove one of this tool's temp folders (its files only; it never holds a folder)."""
    for entry in os.scandir(temp):
        if not entry.is_dir(follow_symlinks=False):
            os.unlink(entry.path)
    os.rmdir(temp)


def remove_stale_temps(directory: Path) -> None:
    """Temp folders of this tool's writers that were killed before their rename: the prefix, the marker inside,
    and a PID that no longer runs. Anything else, whatever its name, is someone else's."""
    for temp in directory.glob(f"{TEMP_PREFIX}*"):
        pid = temp.name.removeprefix(TEMP_PREFIX).split("-", 1)[0]
        if not (pid.isdigit() and temp.is_dir() and not temp.is_symlink()) or os.path.exists(f"/proc/{pid}"):
            continue
        marker = temp / TEMP_MARKER
        if marker.is_file() and not marker.is_symlink():
            with contextlib.suppress(OSError):
                _remove_temp(temp)


def append_archive(workspace: Path, archive: Path, records: list[dict[str, Any]]) -> None:
    """Append pruned entries to a JSON-lines archive, every record whole, durable before the registry changes.

    A torn last line (a full disk, a killed run) is moved aside to `<archive>.torn-<time>` first, so
    the archive stays one record a line and nothing of it is lost. A write that fails is cut back off.
    """
    check_contained(workspace, archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    check_contained(workspace, archive)
    archived = archived_keys(archive.parent)
    records = [r for r in records if _archive_key(r) not in archived]
    if not records:  # all archived already, by a fix killed before it removed them
        return
    payload = "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in records).encode()
    fd = os.open(archive, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        size = _step_past_torn_tail(fd, archive)
        try:
            written = 0
            while written < len(payload):
                written += os.write(fd, payload[written:])
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
    fsync_dir(archive.parent)


ARCHIVE_LOOKBACK = 8 << 20  # bytes of the newest archives read to find what is archived already


def _archive_key(record: dict[str, Any]) -> tuple[str, str, str]:
    """An archived entry, whenever it was archived: which registry, which agent, the entry exactly."""
    entry = json.dumps(record.get("entry"), sort_keys=True, ensure_ascii=True, default=str)
    return str(record.get("registry")), str(record.get("agent_id")), entry


def archived_keys(directory: Path) -> set[tuple[str, str, str]]:
    """The entries the newest archives hold (at most ARCHIVE_LOOKBACK bytes of them, newest first).

    A fix killed between its archive append and the registry write leaves the entries in both: the next prune
    then finds them here and archives them no second time. Only the newest archives can hold them.
    """
    keys: set[tuple[str, str, str]] = set()
    budget = ARCHIVE_LOOKBACK
    for path in sorted(directory.glob("pruned-*.jsonl"), reverse=True):
        if budget <= 0 or path.is_symlink() or not path.is_file():
            continue
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            size = os.fstat(fd).st_size
            start = max(0, size - budget)
            data = os.pread(fd, size - start, start)
        finally:
            os.close(fd)
        budget -= len(data)
        for line in data.split(b"\n")[1 if start else 0 :]:  # a window's first line may be cut
            with contextlib.suppress(ValueError, RecursionError):
                if isinstance(record := json.loads(line), dict):
                    keys.add(_archive_key(record))
    return keys


def _step_past_torn_tail(fd: int, archive: Path) -> int:
    """Move a last line without its newline out of the archive; the archive's size afterwards."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    data = os.pread(fd, size, 0)
    cut = data.rfind(b"\n") + 1
    write_new(archive.with_name(f"{archive.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}"), data[cut:], 0o644)
    os.ftruncate(fd, cut)
    os.fsync(fd)
    return cut
