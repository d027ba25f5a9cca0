"""Read a fleet's files without trusting them: contained in their root, bounded, never through a symlink.

A record file may be hostile or damaged: a symlink out of the workspace, a FIFO that blocks a read for ever,
a sparse 4 GB file. Every reader and writer of records reads through here, so each refusal is one line
(file, `$`, what is wrong) and nothing is read past MAX_BYTES.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from .records import Problem, RegistryError

# A registry of 10,000 agents is ~4 MB, of 200,000 ~76 MB (judged in ~500 MiB peak: parsing takes ~6.5x the
# file's size). At this limit a read stays under 1 GiB; a bigger file is one line naming the limit.
MAX_BYTES = 128 * 1024 * 1024


def check_contained(workspace: Path, path: Path) -> None:
    """Refuse a path that leaves the workspace: no folder between the workspace and the file, nor the
    file itself, may be a symlink (a `TASK-*` folder linked to another project's task is that project's)."""
    try:
        relative = path.relative_to(workspace)
    except ValueError:
        raise RegistryError(Problem(str(path), "$", f"is outside the workspace {workspace}; refusing it")) from None
    current = workspace
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            where = "is" if current == path else f"lies under {current}, which is"
            why = f"{where} a symlink to {os.readlink(current)}; refusing to follow it out of the workspace"
            raise RegistryError(Problem(str(path), "$", why))


class Missing(RegistryError):
    """Nothing stands at the path (or a folder on its way is not a folder): a listing may just skip it."""


_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO opens at once, and is refused after


def _refusal(path: Path | str, at: Path, name: str, folder_fd: int, exc: OSError, last: bool,
             contained: bool) -> RegistryError:
    """One line for a component that could not be opened; ``at`` is it, ``name`` its name in ``folder_fd``."""
    try:
        target = os.readlink(name, dir_fd=folder_fd) if exc.errno in (errno.ELOOP, errno.ENOTDIR) else None
    except OSError:
        target = None
    if target is not None:
        where = "is" if last else f"lies under {at}, which is"
        follow = "refusing to follow it out of the workspace" if contained else "refusing to follow it"
        return RegistryError(Problem(str(path), "$", f"{where} a symlink to {target}; {follow}"))
    if exc.errno == errno.ENOENT:
        return Missing(Problem(str(path), "$", "file is missing"))
    if exc.errno == errno.ENOTDIR:
        return Missing(Problem(str(path), "$", f"cannot stat ({exc.strerror})"))
    if exc.errno == errno.EACCES:
        return RegistryError(Problem(str(path), "$", "not readable (permission denied)"))
    if exc.errno == errno.ENXIO:  # a socket
        return RegistryError(Problem(str(path), "$", "is not a regular file"))
    return RegistryError(Problem(str(path), "$", f"cannot read ({exc.strerror})"))


def open_contained(path: Path, workspace: Path | None = None, *, folder: bool = False) -> int:
    """A descriptor of ``path``, opened through no symlink below ``workspace`` (without one: not ``path`` itself).

    Each folder is opened relative to the one above it without following a link (openat, O_NOFOLLOW): a folder
    swapped for a link between a check and the read cannot lead the read out of the workspace (a `TASK-*` folder
    linked to another project's task is that project's). With ``folder``, ``path`` itself must be a folder (a
    writer's place to create and rename in). RegistryError (one line) when it cannot be opened so.
    """
    parts: tuple[str, ...]
    if workspace is None:
        top, parts = path.parent, (path.name,)
    else:
        if path.parts[: len(workspace.parts)] != workspace.parts:
            raise RegistryError(Problem(str(path), "$", f"is outside the workspace {workspace}; refusing it"))
        parts, top = path.parts[len(workspace.parts) :], workspace  # (not relative_to: it runs for every file read)
    if ".." in parts:  # openat walks `..` as any name, links or not: it would climb out of the workspace
        raise RegistryError(Problem(str(path), "$", "names a parent folder ('..'); refusing it"))
    return _walk(open_top(top, path), top, parts, path, folder, workspace is not None, owned=True)


def open_top(top: Path, path: Path | str) -> int:
    """A descriptor of the folder reads start from (the workspace: the person's choice, so a link to it is followed);
    RegistryError naming ``path``, the file to be read below it, when it cannot be opened."""
    try:
        return os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise (Missing if exc.errno in (errno.ENOENT, errno.ENOTDIR) else RegistryError)(
            Problem(str(path), "$", f"cannot stat ({exc.strerror})")) from None


def _walk(fd: int, top: Path, parts: tuple[str, ...], path: Path | str, folder: bool, contained: bool,
          owned: bool) -> int:
    """The descriptor of ``parts`` below the folder ``fd`` (``top``), each part opened relative to the one above it
    without following a link; ``fd`` itself is closed on the way only when ``owned`` (else its owner reads on)."""
    start = fd
    try:
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            try:
                opened = os.open(name, _FILE if last and not folder else _FOLDER, dir_fd=fd)
            except OSError as exc:  # the component's path made only now: a Path join a part was a third of a read
                raise _refusal(path, top.joinpath(*parts[: i + 1]), name, fd, exc, last, contained) from None
            if owned or fd != start:
                os.close(fd)
            fd = opened
        return fd
    except BaseException:
        if owned or fd != start:
            os.close(fd)
        raise


def _read_regular(path: Path, workspace: Path | None, limit: int = MAX_BYTES) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file within ``limit``, opened by open_contained, and its stat before the read."""
    return _read_opened(open_contained(path, workspace), path, limit)


def _read_opened(fd: int, path: Path | str, limit: int) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file open at ``fd`` (closed here) within ``limit``, and its stat before the read."""
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise RegistryError(Problem(str(path), "$", "is a directory, not a file"))
        if not stat.S_ISREG(st.st_mode):
            raise RegistryError(Problem(str(path), "$", "is not a regular file"))
        if st.st_size > limit:
            raise RegistryError(_too_large(path, st.st_size, limit))
        try:
            raw = _read_fd(fd, st.st_size, limit)
        except OSError as exc:
            raise RegistryError(Problem(str(path), "$", f"cannot read ({exc.strerror})")) from None
    finally:
        os.close(fd)
    if len(raw) > limit:  # it grew after the size was read
        raise RegistryError(_too_large(path, len(raw), limit))
    return raw, st


def read_bytes(path: Path, workspace: Path | None = None, limit: int = MAX_BYTES) -> bytes:
    """Read a record file, refusing what a careful reader must not follow or swallow (``limit``: less, for a file
    that only points elsewhere)."""
    return _read_regular(path, workspace, limit)[0]


def read_below(folder_fd: int, folder: Path, parts: tuple[str, ...], limit: int = MAX_BYTES) -> bytes:
    """read_bytes(``folder`` joined with ``parts``, ``folder``, ``limit``) from ``folder`` opened once (open_top,
    closed by the caller): many files right below one folder read without opening it again for each (100 worktrees'
    `.git`: 0.55x read_bytes' time). ``parts``: one or more plain names (a name holding `/` or `..` would walk where
    O_NOFOLLOW does not look)."""
    if not parts or any(name in ("", ".", "..") or "/" in name for name in parts):
        raise ValueError(f"not plain names below {folder}: {parts!r}")
    path = os.path.join(folder, *parts)  # what str(folder.joinpath(*parts)) is for plain names, without the Path
    return _read_opened(_walk(folder_fd, folder, parts, path, False, True, owned=False), path, limit)[0]


class Stamp(str):
    """A token that changes whenever a regular file's bytes do (see stamp); its class says how it was made, so
    nobody reads that back from its text."""

    __slots__ = ()


class StatStamp(Stamp):
    """The file's identity, size and times: made for a file still for RACY_NS, without reading it."""

    __slots__ = ()


class DigestStamp(Stamp):
    """The digest of the file's bytes: compared again, the file must be hashed again (see digested)."""

    __slots__ = ()


class Read(NamedTuple):
    """A record file as read: its bytes, their stamp (see stamp) and the file's modification time then."""

    raw: bytes
    stamp: Stamp
    mtime: float


def read_stamped(path: Path, workspace: Path | None = None) -> Read:
    """read_bytes, with the stamp and modification time of what was read (the one fstat of the read)."""
    raw, st = _read_regular(path, workspace)
    return Read(raw, stamp(st, lambda: raw), st.st_mtime)


# A file written less than this long before it is looked at may be written again without its stat changing: file
# times come from a coarse clock (a few ms on Linux, 2 s on FAT). Such a file is told apart by its bytes' digest.
RACY_NS = 2 * 10**9


def stamp(st: os.stat_result, content: Callable[[], bytes], exact: bool = False) -> Stamp:
    """A token that changes whenever a regular file's bytes do, as cheaply as that can be known (git's rule for
    "racily clean" files): its identity, size and times when it has been still for RACY_NS (any later write
    changes its ctime), else (or ``exact``) the digest of its bytes (``content``, read only then)."""
    if not exact and time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_NS:
        return StatStamp(f"stat:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}")
    return DigestStamp("sha256:" + hashlib.sha256(content()).hexdigest())


def digested(stamps: Iterable[tuple[str, str | None]]) -> frozenset[str]:
    """The paths whose stamp was a digest: compared again, they must be hashed again (a file fresh when read may
    be still by the time it is compared, with the same stat and other bytes)."""
    return frozenset(path for path, found in stamps if isinstance(found, DigestStamp))


def file_fingerprint(path: Path, workspace: Path, before: Iterable[tuple[str, str | None]]) -> tuple[
        tuple[str, Stamp | None]]:
    """The fingerprint of a store that is one file: its stamp (digested again when ``before`` digested it), None
    when nothing stands there."""
    try:
        return ((str(path), stamp_of(path, workspace, str(path) in digested(before))),)
    except FileNotFoundError:
        return ((str(path), None),)


def stamp_of(path: Path, workspace: Path, exact: bool = False) -> Stamp | None:
    """``path``'s stamp now, looked at the way open_contained opens it (one lstat a component): None when a read
    would be refused (a symlink on the way, not a regular file, past MAX_BYTES, unreadable), FileNotFoundError
    when nothing stands there (a reader skips it too). A FIFO is never read: it would block this run for ever."""
    if path.parts[: len(workspace.parts)] != workspace.parts:
        raise ValueError(f"{path} is not inside {workspace}")
    parts = path.parts[len(workspace.parts) :]
    current = str(workspace)
    for i, name in enumerate(parts):
        current = os.path.join(current, name)
        try:
            st = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(current) from None
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return None
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            raise FileNotFoundError(current)
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
        return None
    try:
        return stamp(st, lambda: read_bounded(path), exact)
    except OSError:
        return None


def _too_large(path: Path | str, size: int, limit: int = MAX_BYTES) -> Problem:
    if limit < 2**20:
        return Problem(str(path), "$", f"file is over the {limit}-byte limit ({size} bytes or more)")
    return Problem(str(path), "$", f"file is {size / 1e6:.1f} MB, over the {limit // 2**20} MiB limit")


def read_bounded(path: Path) -> bytes:
    """At most MAX_BYTES + 1 bytes, without following a symlink: never more memory than the limit allows."""
    fd = os.open(path, _FILE)
    try:
        return _read_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _read_fd(fd: int, size: int, limit: int = MAX_BYTES) -> bytes:
    # sized by the file, not by the limit: a read buffer is allocated whole, and most files are small
    want = min(size, limit) + 1
    chunks, got = [], 0
    while got < want:
        try:
            chunk = os.read(fd, want - got)
        except BlockingIOError:  # a FIFO with a writer and nothing written: nothing to read now
            break
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def file_problem(workspace: Path, path: Path) -> Problem | None:
    """Why ``path`` is not a regular file inside the workspace, or None."""
    try:
        check_contained(workspace, path)
        st = path.lstat()
    except RegistryError as exc:
        return exc.problem
    except OSError as exc:
        return Problem(str(path), "$", f"cannot stat ({exc.strerror})")
    return None if stat.S_ISREG(st.st_mode) else Problem(str(path), "$", "is not a regular file")


def present(path: Path) -> bool:
    """Whether something stands at a store's path: a symlink counts (the reader then refuses it, in one line)."""
    return path.exists() or path.is_symlink()
