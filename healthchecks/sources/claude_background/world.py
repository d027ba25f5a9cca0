"""Claude Code background agents' world for its demo: stand-ins shaped like the real files (DOMAIN.md, "Claude Code
background agents"; the real binary is run by tests/test_claude_background.py).

A config dir with jobs/<short>/state.json, daemon/roster.json, daemon.lock and sessions/<pid>.json written as
2.1.332 writes them, the agents being the shared world's Claude stand-ins started outside tmux (their sessions files
carry their real start ticks), and a git project holding `-w` worktrees locked as Claude Code locks them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ...processes import start_ticks
from ...settings import Settings
from ...testing.world import World, outside_tmux
from . import reader

GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "hc",
           "GIT_AUTHOR_EMAIL": "hc@example.invalid", "GIT_COMMITTER_NAME": "hc",
           "GIT_COMMITTER_EMAIL": "hc@example.invalid"}


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat().replace("+00:00", "Z")


class BackgroundWorld(World):
    """Claude Code's background service as its files show it, with stand-in agents and a project repository."""

    def __init__(self, root: Path, grace: float = 0.3) -> None:
        super().__init__(root, grace=grace)
        self.config = self.root / "home" / ".claude"
        self.project = self.root / "project"
        for folder in ("jobs", "sessions", "daemon"):
            (self.config / folder).mkdir(parents=True, exist_ok=True)
        self.project.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("commit", "-q", "--allow-empty", "-m", "start")
        self.workers: dict[str, dict[str, Any]] = {}

    @property
    def settings(self) -> Settings:
        return Settings(workspace=self.config, tmux_sockets=(self.socket_name,),
                        claude_match=f"^{self.standin.name}$", claude_exe="", grace=self.grace,
                        source=reader.NAME, place_options=(("--claude-config-dir", str(self.config)),))

    @property
    def global_path(self) -> Path:
        return self.config / reader.LOCK

    def git(self, *args: str) -> None:
        subprocess.run(["git", "-C", str(self.project), *args], check=True, capture_output=True, timeout=60,
                       env={**os.environ, **GIT_ENV}, stdin=subprocess.DEVNULL)

    def _dead(self) -> tuple[int, int]:
        """The identity of a process that ran and is gone (pid + start ticks): what a stale file names."""
        done = subprocess.Popen(["sleep", "0"], stdin=subprocess.DEVNULL)
        ticks = start_ticks(done.pid) or 1
        done.wait(timeout=10)
        return done.pid, ticks

    def _agent(self, cwd: Path) -> tuple[int, int]:
        """A stand-in agent outside tmux, in its own session as the daemon's are, working in ``cwd``."""
        popen = subprocess.Popen([str(self.standin)], cwd=cwd, env=outside_tmux(), start_new_session=True,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.popen.append(popen)
        self.wait_ready(len(self.popen), 30)
        return popen.pid, start_ticks(popen.pid) or 0

    def _session_file(self, pid: int, ticks: int, short: str, cwd: Path) -> None:
        data = {"pid": pid, "sessionId": f"{short}-0000-4000-8000-000000000000", "cwd": str(cwd),
                "startedAt": 0, "procStart": str(ticks), "version": "2.1.332", "kind": "bg", "entrypoint": "cli",
                "jobId": short, "status": "busy"}
        (self.config / "sessions" / f"{pid}.json").write_text(json.dumps(data))

    def job(self, name: str, state: str = "working", *, alive: bool = True, worktree: str = "",
            locked: bool = True) -> str:
        """One `claude --bg` job; ``alive``: its agent runs (else its roster names a dead agent); ``worktree``:
        made with `-w NAME` (the worktree and its lock as Claude Code leaves them; ``locked`` False: unlocked, as a
        live daemon left one after `claude rm` in the real test)."""
        short = secrets.token_hex(4)
        cwd = self.project
        if worktree:
            cwd = self.project / ".claude" / "worktrees" / worktree
            self.git("worktree", "add", "-q", "-b", f"worktree-{worktree}", str(cwd))
        pid, ticks = self._agent(cwd) if alive else self._dead()
        if worktree and locked:
            self.git("worktree", "lock", "--reason", f"claude session {worktree} (pid {pid} start {ticks})", str(cwd))
        self._session_file(pid, ticks, short, cwd)
        host, host_ticks = self._dead()
        self.workers[short] = {"pid": host, "procStart": str(host_ticks), "sessionId": short, "attempt": 1,
                               "cwd": str(cwd), "startedAt": 0, "replPid": pid, "replProcStart": str(ticks)}
        (self.config / "jobs" / short).mkdir()
        state_file = {"state": state, "detail": "", "sessionId": short, "cwd": str(cwd), "name": name,
                      "createdAt": _iso(0), "updatedAt": _iso(0), "backend": "daemon"}
        (self.config / "jobs" / short / "state.json").write_text(json.dumps(state_file))
        return short

    def removed(self, short: str) -> None:
        """`claude rm`: its job folder and roster entry gone, its worktree, branch and lock kept."""
        (self.config / "jobs" / short / "state.json").unlink()
        (self.config / "jobs" / short).rmdir()
        del self.workers[short]

    def write_registries(self, *_: object, **__: object) -> None:
        """The daemon's roster and its lock, naming a daemon that is gone (SIGKILLed, its sessions live on)."""
        pid, ticks = self._dead()
        roster = {"proto": 1, "supervisorPid": pid, "updatedAt": 0, "workers": self.workers}
        (self.config / "daemon" / "roster.json").write_text(json.dumps(roster))
        lock = {"pid": pid, "procStart": str(ticks), "startedAt": 0, "origin": "transient"}
        (self.config / reader.LOCK).write_text(json.dumps(lock))


def demo(root: Path, grace: float = 0.3) -> BackgroundWorld:
    """One of every fault: a ghost job, a leaked clean worktree (and an unlocked one, information), the daemon gone
    while a session runs, stale sessions files; beside a healthy job and a person's own Claude in a `work` session."""
    world = BackgroundWorld(root, grace)
    world.job("refactor the parser")  # healthy, its agent running on after its daemon died
    world.job("write the changelog", alive=False)  # a ghost: working, its agent dead, no daemon
    world.removed(world.job("try a spike", alive=False, worktree="spike"))  # stopped + removed: worktree leaked
    world.removed(world.job("old idea", alive=False, worktree="old", locked=False))  # unlocked: a person's to judge
    world.user_session("work", world.project)
    world.write_registries()
    world.start()
    return world
