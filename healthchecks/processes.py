"""One scan of every process, keeping what the judges and fixers need to prove identity."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import psutil

ATTRS = ["pid", "ppid", "name", "cmdline", "create_time", "uids", "cwd", "status"]


@dataclass(frozen=True)
class Proc:
    """A process at scan time. Identity is (pid, create_time): a PID alone can be reused."""

    pid: int
    ppid: int
    pgid: int | None
    name: str
    argv: tuple[str, ...]
    cwd: str | None
    create_time: float
    uid: int | None
    status: str
    is_claude: bool = False
    tmux_env: str | None = None  # TMUX=<socket>,<server pid>,<session>; read for Claude processes only
    tmux_pane: str | None = None  # TMUX_PANE=%<n>

    @property
    def headless(self) -> bool:
        return "--print" in self.argv or "-p" in self.argv

    @property
    def defunct(self) -> bool:
        return self.status == psutil.STATUS_ZOMBIE


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _tmux_env(process: psutil.Process) -> tuple[str | None, str | None]:
    try:
        env = process.environ()
    except (psutil.Error, OSError):
        return None, None
    return env.get("TMUX"), env.get("TMUX_PANE")


def to_proc(process: psutil.Process, info: dict, is_claude: Callable[[str, tuple[str, ...]], bool]) -> Proc:
    """Turn psutil's view into a Proc; unreadable fields become None rather than errors."""
    argv = tuple(info["cmdline"] or ())
    name = info["name"] or ""
    claude = is_claude(name, argv)
    uids = info["uids"]
    tmux_env, tmux_pane = _tmux_env(process) if claude else (None, None)
    return Proc(
        pid=info["pid"],
        ppid=info["ppid"] or 0,
        pgid=_pgid(info["pid"]),
        name=name,
        argv=argv,
        cwd=info["cwd"],
        create_time=info["create_time"] or 0.0,
        uid=uids.real if uids else None,
        status=info["status"] or "",
        is_claude=claude,
        tmux_env=tmux_env,
        tmux_pane=tmux_pane,
    )


def scan(is_claude: Callable[[str, tuple[str, ...]], bool]) -> tuple[Proc, ...]:
    """Every process on the machine, read once."""
    procs = []
    for process in psutil.process_iter(ATTRS, ad_value=None):
        procs.append(to_proc(process, process.info, is_claude))
    return tuple(procs)


def lineage(pid: int) -> frozenset[int]:
    """A process and its ancestors: the suite must never judge or signal the tree it runs in."""
    try:
        me = psutil.Process(pid)
        return frozenset([pid, *(p.pid for p in me.parents())])
    except psutil.Error:
        return frozenset([pid])
