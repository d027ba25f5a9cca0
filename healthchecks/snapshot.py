"""Collect one read-only snapshot of registries, tmux servers and processes.

Reading the registry, tmux and processes is not atomic: an agent deployed in between would look
like a ghost. So the registry files are fingerprinted again after the live reads and the whole
snapshot is taken again (a bounded number of times) when they changed. Processes are scanned
before tmux is read: a process inside a pane has a pane at least as old as itself, so every
scanned process that runs in a session finds that session in the later tmux read. The evidence of
ownership (cwd, TMUX environment) is read last, and only for Claude processes outside every pane
and their process groups: the only processes judged by it.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from . import processes, registry, tmux
from .registry import Registries
from .settings import Settings
from .tmux import TmuxServer

MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Snapshot:
    settings: Settings
    taken_at: float
    duration: float
    attempts: int
    stable: bool  # False: the registry kept changing while we read; judged on the last read
    registries: Registries
    servers: tuple[TmuxServer, ...]
    processes: tuple[processes.Proc, ...]
    self_pids: frozenset[int]  # the collecting process and its ancestors
    tmux_version: str = ""

    @cached_property
    def by_pid(self) -> dict[int, processes.Proc]:
        return {p.pid: p for p in self.processes}

    @property
    def tmux_ok(self) -> bool:
        return all(s.reachable for s in self.servers)

    @property
    def tmux_errors(self) -> tuple[str, ...]:
        return tuple(f"tmux server {s.label}: {s.reason}" for s in self.servers if not s.reachable)


def fingerprint(workspace: Path) -> tuple[tuple[str, str | None], ...]:
    """Hash the registry files' bytes without parsing them: cheap enough to do after every read.

    Only regular files are read: a FIFO, a directory or a symlink in a registry's place gets no
    digest (the loader reports it), because reading a FIFO would block this run forever.
    """
    paths = [workspace / registry.GLOBAL_RELPATH, *sorted(workspace.glob(registry.TASK_GLOB))]
    result = []
    for path in paths:
        try:
            regular = stat.S_ISREG(path.lstat().st_mode)
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if regular else None
        except OSError:
            digest = None
        result.append((str(path), digest))
    return tuple(result)


def pane_of(children: dict[int, list[int]], servers: tuple[TmuxServer, ...]) -> dict[int, tuple[str, str]]:
    """pid -> (server, session) for every process that descends from a live pane."""
    return {
        pid: (server.label, pane.session)
        for server in servers
        for pane in server.panes
        for pid in processes.descendants(children, pane.pid)
    }


def needs_proof(procs: tuple[processes.Proc, ...], servers: tuple[TmuxServer, ...]) -> set[int]:
    """Claude processes that descend from no pane, and the members of their process groups."""
    in_panes = pane_of(processes.children_of(procs), servers)
    groups = {p.pgid for p in procs if p.is_claude and p.pid not in in_panes}
    return {p.pid for p in procs if p.pgid in groups or (p.is_claude and p.pid not in in_panes)}


def read_servers(settings: Settings) -> tuple[TmuxServer, ...]:
    return tuple(tmux.read_server(s, settings.tmux_timeout) for s in (settings.tmux_sockets or (None,)))


def collect(settings: Settings, max_attempts: int = MAX_ATTEMPTS) -> Snapshot:
    started = time.monotonic()
    self_pids = processes.lineage(os.getpid())
    attempts = 0
    while True:
        attempts += 1
        regs = registry.load(settings.workspace)
        procs = processes.scan(settings.is_claude)
        servers = read_servers(settings)
        procs = processes.with_details(procs, needs_proof(procs, servers))
        stable = fingerprint(settings.workspace) == regs.fingerprint
        if stable or attempts >= max_attempts:
            break
    return Snapshot(
        settings=settings,
        taken_at=time.time(),
        duration=time.monotonic() - started,
        attempts=attempts,
        stable=stable,
        registries=regs,
        servers=servers,
        processes=procs,
        self_pids=self_pids,
        tmux_version=tmux.version(),
    )
