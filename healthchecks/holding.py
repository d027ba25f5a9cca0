"""Hold the orchestrator's registry files still while a snapshot reads them and the live state.

Its writers (E4's `LockedRegistryFile`) rewrite a registry in place under an exclusive flock on the file itself;
a writer that never pauses changes it during every snapshot. A shared flock on the files that changed lets the
snapshot read them and the machine at one moment: the writer waits (it retries for 10 s) for the short while
the live reads take. Which files a manager flocks is its reader's `flocked` (healthchecks.sources). Writers that
take no lock (E2) are not held: the snapshot then says it was not stable.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import sources, threads
from .records import Records

MAX_FILES = 32  # the files that changed between two reads: a global registry and a few task registries
POLL = 0.0002  # a writer that never pauses leaves the file unlocked for a fraction of a millisecond between writes
# Longest wait for the shared flocks: an orchestrator writes in milliseconds; a lock held longer is someone else's
# long hold (a stuck writer), and the read goes on without it (judged by the fingerprint, as before).
TIMEOUT = 0.25


# Longest a writer is kept waiting: E4's writers retry for 10 s, then lose their write. A snapshot whose live
# reads take longer (a hung tmux) lets go after this; its fingerprint then says whether the files changed.
MAX_HOLD = 2.0


@contextlib.contextmanager
def held(paths: Iterable[Path], timeout: float) -> Iterator[bool]:
    """Shared flocks on the regular files among ``paths`` while the block runs (at most MAX_HOLD); yields whether
    all were taken.

    Taken without blocking, retried until ``timeout``; when they cannot all be had, none is held (a writer
    holding one file and waiting for another is never kept waiting on us).
    """
    fds: list[int] = []
    guard = threading.Lock()  # the timer never unlocks a descriptor number closed (and maybe reused) meanwhile

    def let_go() -> None:
        with guard:
            for fd in fds:
                fcntl.flock(fd, fcntl.LOCK_UN)

    timer = threads.Timer(MAX_HOLD, let_go)
    timer.daemon = True
    try:
        for path in list(paths)[:MAX_FILES]:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                continue
            fds.append(fd)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                fds.pop()
                os.close(fd)
        locked = _lock_all(fds, time.monotonic() + timeout)
        if locked and fds:
            timer.start()
        yield locked
    finally:
        timer.cancel()
        with guard:
            for fd in fds:
                os.close(fd)  # closing the descriptor releases its flock
            fds.clear()


def _lock_all(fds: list[int], deadline: float) -> bool:
    pending = list(fds)
    while pending:
        try:
            fcntl.flock(pending[-1], fcntl.LOCK_SH | fcntl.LOCK_NB)
            pending.pop()
        except BlockingIOError:
            if time.monotonic() >= deadline:
                for fd in fds:
                    if fd not in pending:
                        fcntl.flock(fd, fcntl.LOCK_UN)
                return False
            time.sleep(POLL)
    return True


@dataclass
class Read:
    """One read of the records, made with the files held still; its reader sets ``changed`` to the files a writer
    changed meanwhile (judged by their fingerprint), which the next read holds."""

    number: int  # 1 for the first read
    records: Records
    changed: set[Path] = field(default_factory=set)


def reads(workspace: Path, source: str, lock_timeout: float, max_reads: int,
          options: tuple[tuple[str, str], ...] = ()) -> Generator[Read, None, None]:
    """The records, read again and again (at most ``max_reads`` times) with the files their manager flocks held
    still; each read is yielded while they are held, so its reader reads the live state at the same moment.

    A read is followed by another, holding more, while a file changed meanwhile or the records name files to hold
    that were not held (one that did not parse: a writer may have been half-way). A file that changed although
    held (its writer takes no lock) is read again, holding what was held.
    """
    paths = sources.flocked(workspace, source)
    number = 0
    while True:
        number += 1
        with held(sorted(paths), min(lock_timeout, TIMEOUT)):
            read = Read(number, sources.load(workspace, source, lock_timeout, options))
            yield read
        more = (read.changed | sources.flocked(workspace, source, read.records)) - paths
        if (not read.changed and not more) or number >= max_reads:
            return
        paths |= more


def load(workspace: Path, source: str, lock_timeout: float, options: tuple[tuple[str, str], ...] = ()) -> Records:
    """The records, read with the files their manager flocks held still; a file that did not parse (a writer may
    have been half-way) is read once more, held. Only then is a broken file broken."""
    for read in reads(workspace, source, lock_timeout, 2, options):
        last = read
    return last.records
