"""Claude Code's background jobs, changed only through Claude Code's own command line: a ghost job (recorded at work,
its agent dead, no daemon respawning it) is ended by `claude stop <short>`, run with the person's config dir
within STOP_TIMEOUT, its exit code and output checked. Claude Code's files are never written or deleted here
(`claude stop` writes `stopped` itself); removing a job (`claude rm`, --prune) is left to the person.

The binary run is the one Claude Code's own processes run: the /proc/<pid>/exe of its daemon or of a background
agent, each proven by pid + start ticks at that moment; else the `launchTarget` daemon.lock names, only when it is
a regular file that no one but its owner (this user or root) can change. Never a PATH lookup of `claude`, which an
agent could plant.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fixers import effects
from fixers.outcome import Status
from fixers.writers import Edits, Written
from healthchecks.processes import start_ticks
from healthchecks.records import Records

from .reader import launch_target

# `claude stop` answers in ~1.4 s (measured); without its daemon it cannot confirm until the job's pty host has
# exited, ~5 s after its agent (longer under load): retried within this
STOP_TIMEOUT = 30.0


def _exe_of(pid: int, ticks: int | None) -> str | None:
    """The binary a process of this identity runs now (None: gone, reused, or its binary replaced)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    if start_ticks(pid) != ticks or exe.endswith(" (deleted)") or not os.path.isfile(exe):
        return None
    return exe


def _owned_file(path: str) -> str | None:
    """``path``'s real file when only its owner (this user or root) can change it, else None."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return None
    safe = stat.S_ISREG(st.st_mode) and st.st_uid in (0, os.geteuid()) and not st.st_mode & 0o022
    return real if safe else None


def claude_exe(records: Records) -> str | None:
    """The Claude Code binary its own background processes run, as the module's docstring says."""
    service = records.authority.service
    if service is None:
        return None
    identities = [(service.daemon.pid, service.daemon.start_ticks)] if service.daemon else []
    identities += [(pid, ticks) for _, pid, ticks, kind, _ in service.sessions if kind == "bg"]
    for pid, ticks in identities:
        if exe := _exe_of(pid, ticks):
            return exe
    target = launch_target(records.workspace)
    return _owned_file(target) if target else None


def check(records: Records, edits: Edits, lock_timeout: float) -> str | None:
    if edits.prunes or edits.archives:
        return ("Claude Code's jobs are removed only by `claude rm`, a person's choice (run without --prune); "
                "nothing was changed")
    if edits.marks and claude_exe(records) is None:
        return ("no Claude Code binary is proven (no live daemon or background agent, and daemon.lock's launchTarget "
                "is not a file only its owner can change): `claude stop` cannot be run; nothing was changed")
    return None


def write(records: Records, edits: Edits, lock_timeout: float) -> Written:
    """`claude stop <short>` for every ghost job verified a moment ago, one by one."""
    written = Written()
    exe = claude_exe(records)
    for short in sorted(edits.marks):
        if exe is None:
            written.failed[short] = "no Claude Code binary is proven any more: `claude stop` not run"
            continue
        ended = effects.claude_stop(exe, str(records.workspace), short, STOP_TIMEOUT)
        (written.done if ended.status is Status.DONE else written.failed)[short] = ended.detail
    return written


def pending(workspace: Path) -> bool:
    """Nothing is written here: nothing is ever left half done."""
    return False


def recover_workspace(workspace: Path, lock_timeout: float) -> list[str]:
    return []
