"""Backups of written record files, kept bounded: the newest N per file, none older than D days, never a file's last.

Every write of a fix copies the file first into `<workspace>/registry/backups/` (see the writers). Without a bound,
a fix on a timer fills the disk. Only backups this tool made are ever removed, known by two signs together: the
name this tool gives them (`<file>.<YYYYMMDD-HHMMSS-nanoseconds>.bak`) and a marker on the file itself (the extended
attribute MARKER, set once the copy is whole). A file with the name but not the marker (someone's copy, a file
moved in by hand, a filesystem without user attributes) is never removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections import defaultdict
from pathlib import Path

from healthchecks.records import RegistryError
from healthchecks.safe_files import check_contained

MARKER = "user.agent-healthchecks"
MARK_VALUE = b"backup"
NAME = re.compile(r"(?P<file>.+)\.(?P<stamp>\d{8}-\d{6}-\d{9})\.bak")
DEFAULT_KEEP = 10
DEFAULT_DAYS = 30.0


def folder(workspace: Path) -> Path:
    return workspace / "registry" / "backups"


def path_for(workspace: Path, path: Path, stamp: str) -> Path:
    """Where the backup of ``path`` written at ``stamp`` goes (the name prune() knows as this tool's)."""
    relative = path.relative_to(workspace) if path.is_relative_to(workspace) else Path(path.name)
    return workspace / "registry" / "backups" / f"{'__'.join(relative.parts)}.{stamp}.bak"


def mark(path: Path | int) -> None:
    """Say on the backup itself that this tool made it (after it is whole); unmarked backups are simply kept.
    ``path`` is never followed; a descriptor (the whole copy still open) marks that very file."""
    with contextlib.suppress(OSError):  # no user attributes here: the backup stays, never pruned
        if isinstance(path, int):
            os.setxattr(path, MARKER, MARK_VALUE)
        else:
            os.setxattr(path, MARKER, MARK_VALUE, follow_symlinks=False)


def _ours(path: Path) -> bool:
    try:
        st = path.lstat()
        return stat.S_ISREG(st.st_mode) and os.getxattr(path, MARKER, follow_symlinks=False) == MARK_VALUE
    except OSError:
        return False


def prune(workspace: Path, keep: int, days: float, now: float | None = None) -> list[Path]:
    """Remove this tool's backups beyond the newest ``keep`` of each file or older than ``days``; the newest
    backup of every file stays whatever its age. One listing of the folder; returns what was removed."""
    where = folder(workspace)
    try:
        check_contained(workspace, where / "x")  # never through a symlinked folder
        names = os.listdir(where)
    except (RegistryError, OSError):
        return []
    per_file: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    for name in names:
        if (found := NAME.fullmatch(name)) and _ours(where / name):
            per_file[found["file"]].append((found["stamp"], where / name))
    cutoff = (time.time() if now is None else now) - days * 86400
    removed = []
    for backups in per_file.values():
        backups.sort(reverse=True)  # newest first: the stamps sort as they were made
        for rank, (_, path) in enumerate(backups[1:], 1):
            with contextlib.suppress(OSError):
                if rank >= keep or path.lstat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path)
    return removed
