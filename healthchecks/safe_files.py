"""Read a fleet's files without trusting them: contained in their root, bounded, never through a symlink.

A record file may be hostile or damaged: a symlink out of the workspace, a FIFO that blocks a read for ever,
a sparse 4 GB file. Every reader and writer of records reads through here, so each refusal is one line
(file, `$`, what is wrong) and nothing is read past MAX_BYTES.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .records import RegistryError

# A registry of 10,000 agents is ~4 MB, of 200,000 ~76 MB (judged in ~500 MiB peak: parsing takes ~6.5x the
# file's size). At this limit a read stays under 1 GiB; a bigger file is one line naming the limit.
MAX_BYTES = 128 * 1024 * 1024


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


def file_problem(workspace: Path, path: Path) -> str | None:
    """Why ``path`` is not a regular file inside the workspace (one line), or None."""
    try:
        check_contained(workspace, path)
        st = path.lstat()
    except RegistryError as exc:
        return str(exc)
    except OSError as exc:
        return f"{path}: $: cannot stat ({exc.strerror})"
    return None if stat.S_ISREG(st.st_mode) else f"{path}: $: is not a regular file"


def present(path: Path) -> bool:
    """Whether something stands at a store's path: a symlink counts (the reader then refuses it, in one line)."""
    return path.exists() or path.is_symlink()
