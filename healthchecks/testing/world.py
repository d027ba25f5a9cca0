"""Build real orchestrator worlds (registries, a private tmux server, Claude stand-ins) and tear them down.

One builder serves the project's tests, the demo and the benchmark. Everything it starts is
findable by its own unique marks, so teardown ends only what it started:
- the tmux server has a private socket name (``tmux -L hc-<hex>``), never the default server;
- every Claude stand-in is a script named ``claude-<8 hex>`` (the kernel's 15-character process
  name) in the world's own directory, so no real process can match the world's Claude matcher.
The stand-in exits on SIGHUP like today's Claude Code does, so ``kill-session`` ends it. Orphans are made the
ways they arise today: a `setsid`-detached launch (the pipeline in its own session survives the pane), or a
node-era Claude that ignores SIGHUP (the titled stand-in, or ``ignores_hup``) left by ``kill-session``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shlex
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import libtmux
import psutil

from ..settings import Settings
from ..tmux import default_socket_path

# The orchestrator's status values, written out here so the worlds' counters do not borrow the product's
# own classification: a bug there would then be agreed with by the tests.
ACTIVE_STATUSES = (None, "running", "working", "blocked", "reviewing")
TERMINAL_STATUSES = ("completed", "failed", "error", "terminated", "killed", "phase_completed")
FINISHED_STATUSES = ("completed", "terminated", "error", "failed")  # what the orchestrator's completed_count counts

STANDIN = """#!/bin/bash
# Stand-in for Claude Code: exits on SIGHUP like the native binary (HC_IGNORE_HUP: ignores it, as node-era
# Claude did), says it is ready, reads a prompt piped on stdin (as the current release sends it), blocks until killed.
[ -n "$HC_IGNORE_HUP" ] && trap '' HUP
[ -n "$HC_IGNORE_TERM" ] && trap '' TERM
: > "${0%/*}/.ready/$$"
[ -t 0 ] || cat > /dev/null
exec 3<>"${0%/*}/.fifo"
while :; do read -rt 86400 -u 3; done
"""
# Stand-in for node-based Claude Code, which sets process.title = "claude": libuv writes the title over
# the process's argument area and NULs the rest, and renames the process. So /proc/<pid>/cmdline reads
# the title alone: --print, the flags and the prompt are gone. This one takes its title from its name, and
# ignores SIGHUP as node-era Claude did (so kill-session leaves it: an orphan).
TITLED = """#!{python}
import ctypes, os, signal, sys, time
signal.signal(signal.SIGHUP, signal.SIG_IGN)
if os.environ.get("HC_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(os.path.join(os.path.dirname(sys.argv[0]), ".ready", str(os.getpid())), "w").close()
if not os.isatty(0):
    sys.stdin.buffer.read()
title = os.path.basename(sys.argv[0]).removesuffix("-node").encode()
after_name = open("/proc/self/stat", "rb").read().rsplit(b")", 1)[1].split()
start, end = int(after_name[45]), int(after_name[46])  # arg_start, arg_end (fields 48 and 49)
with open("/proc/self/mem", "r+b") as mem:
    mem.seek(start)
    mem.write(title + b"\\0" * (end - start - len(title)))
ctypes.CDLL(None).prctl(15, title, 0, 0, 0)  # PR_SET_NAME, as libuv does
while True:
    time.sleep(3600)
"""
# The current release's tables the checks read, as DOMAIN.md describes them (created here, not copied).
STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
  task_id TEXT PRIMARY KEY, workspace TEXT, workspace_base TEXT, description TEXT, status TEXT, priority TEXT,
  client_cwd TEXT, created_at TEXT, updated_at TEXT, current_phase_index INTEGER);
CREATE TABLE IF NOT EXISTS agents (
  agent_id TEXT PRIMARY KEY, task_id TEXT NOT NULL, type TEXT, model TEXT, tmux_session TEXT, parent TEXT,
  depth INTEGER, phase_index INTEGER, claude_pid INTEGER, cursor_pid INTEGER, tracked_files TEXT, started_at TEXT,
  completed_at TEXT, status TEXT, progress INTEGER, last_update TEXT, prompt_preview TEXT, review_id TEXT,
  final_verdict TEXT, FOREIGN KEY (task_id) REFERENCES tasks(task_id) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS idx_agents_task ON agents(task_id);
CREATE INDEX IF NOT EXISTS idx_agents_status ON agents(status);
CREATE TABLE IF NOT EXISTS agent_hierarchy (
  id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, parent_agent_id TEXT, child_agent_id TEXT NOT NULL,
  spawned_at TEXT, FOREIGN KEY (task_id) REFERENCES tasks(task_id) ON DELETE CASCADE, UNIQUE(task_id, child_agent_id));
"""
Running = Literal["claude", "shell", "orphan", None]


@dataclass
class AgentSpec:
    id: str
    task_id: str
    status: str | None
    running: Running  # what lives for it: Claude in its session, a bare shell, a leaked Claude, or nothing
    started_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)
    stdin_prompt: bool = False  # the current release (E5): `cat prompt | claude ...` from the client directory
    titled: bool = False  # a node-based Claude whose argv reads only its title (it ignores SIGHUP)
    ignores_hup: bool = False  # a Claude that survives kill-session (node era); else an orphan is setsid-detached

    @property
    def survives_hangup(self) -> bool:
        return self.titled or self.ignores_hup

    @property
    def session(self) -> str:
        return f"agent_{self.id}"


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


class World:
    """A temporary orchestrator world. Use as a context manager, or call start() and teardown()."""

    def __init__(
        self,
        root: Path,
        *,
        seed: int | None = None,
        grace: float = 0.3,
        tag: str | None = None,
        era: Literal["json", "sqlite"] = "json",
        first_era: bool = False,
        project: str = "ws",
    ) -> None:
        """``tag`` shares one tmux server and one Claude matcher between worlds (workspaces on one machine).
        ``era`` "sqlite" is the current release: agents in `registry/state.sqlite3`, prompts on stdin, and JSON
        files that hold no agents. ``first_era`` writes the JSON files as 526a899..d388d16 did: global entries
        without a status, task registries without `workspace_base`/`client_cwd`, `completed_count` counting
        only `completed` agents. ``project`` names the project folder that holds `.agent-workspace` (a space, a quote,
        a bracket: people's folders)."""
        self.root = Path(root)
        self.era = era
        self.first_era = first_era
        self.tag = tag or secrets.token_hex(4)
        self.rng = random.Random(seed)
        # Mixed into every session name this world makes: worlds of one seed built in the same second (xdist workers,
        # another run's --demo) would otherwise name theirs alike, and a fix reads every tmux server of this user.
        self.salt = secrets.randbits(24)
        self.workspace = self.root / project / ".agent-workspace"
        self.bin = self.root / "bin"
        self.home = self.root / "home"  # a place outside the workspace, for foreign processes
        self.standin = self.bin / f"claude-{self.tag}"
        self.titled = self.bin / f"claude-{self.tag}-node"
        self.socket_name = f"hc-{self.tag}"
        self.grace = grace
        self.agents: list[AgentSpec] = []
        self.agent_ids: set[str] = set()
        self.tasks: dict[str, str] = {}
        self.extra_sessions: list[tuple[str, str, Path]] = []  # (name, command, cwd)
        self.foreign_count = 0
        self.stubborn: set[str] = set()  # agent ids whose stand-in ignores SIGTERM
        self.popen: list[subprocess.Popen[bytes]] = []
        self.orphan_pids: dict[str, int] = {}  # agent id -> its leaked Claude's pid, once start() made it
        self.server = libtmux.Server(socket_name=self.socket_name, config_file="/dev/null")
        for d in (self.workspace / "registry", self.bin, self.bin / ".ready", self.home):
            d.mkdir(parents=True, exist_ok=True)
        os.mkfifo(self.bin / ".fifo")
        self.standin.write_text(STANDIN)
        self.standin.chmod(0o755)
        self.titled.write_text(TITLED.format(python=sys.executable))
        self.titled.chmod(0o755)

    # -- describing the world --------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return Settings(
            workspace=self.workspace,
            tmux_sockets=(self.socket_name,),
            claude_match=f"^{self.standin.name}$",
            claude_exe="",  # only this world's stand-ins are Claude here, not a real one running nearby
            grace=self.grace,
        )

    def task(self, task_id: str | None = None, description: str = "demo task") -> str:
        if task_id is None:
            task_id = f"TASK-20251029-{len(self.tasks):06d}-{self.rng.getrandbits(32):08x}"
        self.tasks.setdefault(task_id, description)
        return task_id

    def agent(
        self,
        status: str | None = None,
        running: Running = None,
        *,
        task_id: str | None = None,
        agent_type: str = "worker",
        started_ago: float = 3600.0,
        stubborn: bool = False,
        stdin_prompt: bool = False,
        titled: bool = False,
        ignores_hup: bool = False,
        **extra: Any,
    ) -> str:
        """Add an agent entry; ``running`` says what lives for it on the machine."""
        task_id = task_id or (next(iter(self.tasks)) if self.tasks else self.task())
        self.task(task_id)
        started = datetime.now().replace(microsecond=0) - _seconds(started_ago)
        agent_id = f"{agent_type}-{started:%H%M%S}-{self._unique():06x}"
        while agent_id in self.agent_ids:
            agent_id = f"{agent_type}-{started:%H%M%S}{self.rng.randrange(1000):03d}-{self._unique():06x}"
        stdin_prompt = stdin_prompt or self.era == "sqlite"
        self.agents.append(AgentSpec(agent_id, task_id, status, running, started, extra, stdin_prompt, titled,
                                     ignores_hup))
        self.agent_ids.add(agent_id)
        if stubborn:
            self.stubborn.add(agent_id)
        return agent_id

    def _unique(self) -> int:
        """24 bits of the seed's sequence, made this world's own by its salt: a name no other world running now has."""
        return self.rng.getrandbits(24) ^ self.salt

    def untracked_session(self, name: str | None = None, claude: bool = True) -> str:
        """An agent-prefixed session with no registry entry, as another workspace would leave."""
        name = name or f"agent_elsewhere-{self._unique():06x}"
        cmd = f"{shlex.quote(str(self.standin))} --print 'another workspace'" if claude else "cat"
        self.extra_sessions.append((name, cmd, self.home))
        return name

    def user_session(self, name: str = "work", cwd: Path | None = None) -> str:
        """A user's own non-agent session with an interactive Claude inside (never an orphan)."""
        self.extra_sessions.append((name, shlex.quote(str(self.standin)), cwd or self.workspace))
        return name

    def foreign_claude(self) -> int:
        """A Claude outside tmux that nothing ties to this workspace (the user's own, an MCP server)."""
        self.foreign_count += 1
        return self.foreign_count

    # -- registries ------------------------------------------------------------------------------
    def global_entry(self, spec: AgentSpec) -> dict[str, Any]:
        entry = {
            "task_id": spec.task_id,
            "type": spec.id.split("-")[0],
            "parent": "orchestrator",
            "started_at": iso(spec.started_at),
            "tmux_session": spec.session,
        }
        if self.first_era:  # its global entries never get more than the deploy's fields
            entry.update(spec.extra)
            return entry
        if spec.status is not None:
            entry["status"] = spec.status
            entry["last_update"] = iso(spec.started_at + _seconds(300))
        if spec.status in TERMINAL_STATUSES:
            key = "completed_at" if spec.status == "completed" else "terminated_at"
            entry[key] = iso(spec.started_at + _seconds(600))
        entry.update(spec.extra)
        return entry

    def global_registry(self, **overrides: Any) -> dict[str, Any]:
        active = sum(1 for a in self.agents if a.status in ACTIVE_STATUSES)
        data = {
            "created_at": "2025-10-15T18:39:58.210818",
            "total_tasks": len(self.tasks),
            "active_tasks": len(self.tasks),
            "total_agents_spawned": len(self.agents),
            "active_agents": active,
            "max_concurrent_agents": 20,
            "tasks": {
                tid: {"description": d, "created_at": "2025-10-29T22:53:19.000000", "status": "INITIALIZED"}
                for tid, d in self.tasks.items()
            },
            "agents": {a.id: self.global_entry(a) for a in self.agents},
        }
        data.update(overrides)
        return data

    def task_registry(self, task_id: str, mine: list[AgentSpec] | None = None, **overrides: Any) -> dict[str, Any]:
        mine = mine if mine is not None else [a for a in self.agents if a.task_id == task_id]
        entries = []
        for a in mine:
            entry = {
                "id": a.id,
                "type": a.id.split("-")[0],
                "tmux_session": a.session,
                "parent": "orchestrator",
                "depth": 1,
                "status": a.status or "running",
                "started_at": iso(a.started_at),
                "progress": 100 if a.status == "completed" else 40,
                "last_update": iso(a.started_at),
                "prompt": f"You are a {a.id.split('-')[0]} agent. Your agent id is {a.id}.",
            }
            entries.append(entry)
        data = {
            "task_id": task_id,
            "task_description": self.tasks[task_id],
            "created_at": "2025-10-29T22:53:19.000000",
            "workspace": str(self.workspace / task_id),
            "workspace_base": str(self.workspace),
            "client_cwd": str(self.workspace.parent),
            "status": "INITIALIZED",
            "priority": "P1",
            "agents": entries,
            "agent_hierarchy": {"orchestrator": [a.id for a in mine]},
            "max_agents": 45,
            "max_depth": 5,
            "max_concurrent": 20,
            "total_spawned": len(mine),
            "active_count": sum(1 for e in entries if e["status"] in ACTIVE_STATUSES),
            "completed_count": sum(1 for e in entries if e["status"] in FINISHED_STATUSES),
        }
        if self.first_era:
            del data["workspace_base"], data["client_cwd"]
            data["completed_count"] = sum(1 for e in entries if e["status"] == "completed")
        data.update(overrides)
        return data

    @property
    def global_path(self) -> Path:
        return self.workspace / "registry" / "GLOBAL_REGISTRY.json"

    def task_path(self, task_id: str) -> Path:
        return self.workspace / task_id / "AGENT_REGISTRY.json"

    def write_registries(
        self, global_overrides: dict[str, Any] | None = None, task_overrides: dict[str, dict[str, Any]] | None = None
    ) -> None:
        """The JSON registries; in the SQLite era, the state database and JSON mirrors without agents whose
        counters are stale (as the current release leaves them)."""
        if self.era == "sqlite":
            self.write_state()
            mirror = {**self.global_registry(**(global_overrides or {})), "agents": {}}
            write_json(self.global_path, mirror)
            for task_id in self.tasks:
                (self.workspace / task_id / "logs").mkdir(parents=True, exist_ok=True)
                write_json(self.task_path(task_id), self.task_registry(task_id, [], active_count=3, total_spawned=7))
            return
        write_json(self.global_path, self.global_registry(**(global_overrides or {})))
        by_task: dict[str, list[AgentSpec]] = {t: [] for t in self.tasks}
        for spec in self.agents:
            by_task[spec.task_id].append(spec)
        for task_id, mine in by_task.items():
            (self.workspace / task_id / "logs").mkdir(parents=True, exist_ok=True)
            overrides = (task_overrides or {}).get(task_id, {})
            write_json(self.task_path(task_id), self.task_registry(task_id, mine, **overrides))

    @property
    def state_path(self) -> Path:
        return self.workspace / "registry" / "state.sqlite3"

    def write_state(self) -> None:
        """The current release's state database: tables made from DOMAIN.md's schema, one row per agent."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.state_path, isolation_level=None)
        try:
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=10000"):
                conn.execute(f"PRAGMA {pragma}")
            conn.executescript(STATE_SCHEMA)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO tasks(task_id, workspace, workspace_base, description, status, priority, client_cwd, "
                "created_at) VALUES (?,?,?,?,?,?,?,?)",
                [
                    (tid, str(self.workspace / tid), str(self.workspace), d, "INITIALIZED", "P1", str(self.client_dir),
                     "2025-10-29T22:53:19.000000")
                    for tid, d in self.tasks.items()
                ],
            )
            conn.executemany(
                "INSERT INTO agents(agent_id, task_id, type, model, tmux_session, parent, depth, phase_index, "
                "started_at, completed_at, status, progress, last_update, prompt_preview) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [self._state_row(spec) for spec in self.agents],
            )
            conn.executemany(
                "INSERT INTO agent_hierarchy(task_id, parent_agent_id, child_agent_id, spawned_at) VALUES (?,?,?,?)",
                [(spec.task_id, "orchestrator", spec.id, iso(spec.started_at)) for spec in self.agents],
            )
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _state_row(self, spec: AgentSpec) -> tuple[Any, ...]:
        entry = self.global_entry(spec)
        return (
            spec.id, spec.task_id, entry["type"], "sonnet", spec.session, "orchestrator", 1, 0,
            entry["started_at"], entry.get("completed_at") or entry.get("terminated_at"), spec.status,
            100 if spec.status == "completed" else 40, entry.get("last_update"), self.prompt(spec)[:200],
        )

    # -- bringing it to life ---------------------------------------------------------------------
    @staticmethod
    def launch_args(prompt: str | None = None) -> list[str]:
        """The orchestrator's flags for Claude in every era; the prompt follows them until E5 pipes it on stdin."""
        flags = ["--print", "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"]
        return [*flags, "--model", "sonnet", *([prompt] if prompt is not None else [])]

    def agent_command(self, spec: AgentSpec) -> str:
        """The orchestrator's own command shape, with the stand-in in place of `claude`."""
        task_dir = self.workspace / spec.task_id
        if spec.running == "shell":
            return f"cd {shlex.quote(str(task_dir))} && cat"
        env = "HC_IGNORE_TERM=1 " if spec.id in self.stubborn else ""
        env += "HC_IGNORE_HUP=1 " if spec.ignores_hup else ""
        prompt = self.prompt(spec)
        log = task_dir / "logs" / f"{spec.id}_stream.jsonl"
        binary = shlex.quote(str(self.titled if spec.titled else self.standin))
        if spec.stdin_prompt:  # E5: the prompt on stdin, Claude in the client directory
            prompt_file = task_dir / f"agent_prompt_{spec.id}.txt"
            prompt_file.write_text(prompt)
            args = " ".join(map(shlex.quote, self.launch_args()))
            where, pipeline = self.client_dir, f"cat {shlex.quote(str(prompt_file))} | {env}{binary} {args}"
        else:
            args = " ".join(map(shlex.quote, self.launch_args(prompt)))
            where, pipeline = task_dir, f"{env}{binary} {args}"
        pipeline += f" | tee {shlex.quote(str(log))}"
        if spec.running == "orphan" and not spec.survives_hangup:  # detached: it outlives its pane
            pipeline = f"setsid -w sh -c {shlex.quote(pipeline)}"
        pipefail = "set -o pipefail; " if spec.stdin_prompt else ""
        return f"{pipefail}cd {shlex.quote(str(where))} && {pipeline}"

    def prompt(self, spec: AgentSpec) -> str:
        return f"You are a {spec.id.split('-')[0]} agent. Your agent id is {spec.id}."

    @property
    def client_dir(self) -> Path:
        """The project the workspace belongs to: where the current release runs Claude."""
        return self.workspace.parent

    def start(self, timeout: float = 60.0) -> World:
        """Write the registries (unless already written) and start every session and process."""
        if not self.global_path.exists():
            self.write_registries()
        sessions = [
            (a.session, self.agent_command(a), self.workspace / a.task_id) for a in self.agents if a.running is not None
        ] + self.extra_sessions
        for _, _, cwd in sessions:
            cwd.mkdir(parents=True, exist_ok=True)
            (cwd / "logs").mkdir(exist_ok=True)
        if sessions:
            script = self.root / "sessions.tmux"
            script.write_text(
                "".join(f"new-session -d -s {_tq(name)} -c {_tq(str(cwd))} {_tq(cmd)}\n" for name, cmd, cwd in sessions)
            )
            env = outside_tmux()
            subprocess.run(
                [
                    "tmux",
                    "-L",
                    self.socket_name,
                    "-f",
                    "/dev/null",
                    "start-server",
                    ";",
                    "set",
                    "-g",
                    "exit-empty",
                    "off",
                    ";",
                    "source-file",
                    str(script),
                ],
                check=True,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
        created = time.monotonic()  # the sessions exist from here on: their grace counts from now
        for _ in range(self.foreign_count):
            env = outside_tmux()
            self.popen.append(
                subprocess.Popen(
                    [str(self.standin), "--resume"],
                    cwd=self.home,
                    env=env,
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        expected = (
            sum(1 for a in self.agents if a.running in ("claude", "orphan"))
            + self.foreign_count
            + sum(1 for _, cmd, _ in self.extra_sessions if str(self.standin) in cmd)
        )
        self.wait_ready(expected, timeout)
        orphans = [a for a in self.agents if a.running == "orphan"]
        if orphans:
            self.orphan_pids.update(self.claude_in_sessions(orphans))
            self.kill_sessions([a.session for a in orphans])
            self.wait_reparented(set(self.orphan_pids.values()), timeout)
        if sessions:  # let the sessions age past the grace period, so what is judged is what was built
            time.sleep(max(0.0, self.grace - (time.monotonic() - created)))
        return self

    def standins(self, starting: bool = False) -> list[psutil.Process]:
        """This world's Claude stand-ins, found by their unique script path (or, once a titled one has
        rewritten its argv, by its unique title); with ``starting``, titled ones not yet renamed too."""
        scripts = {str(self.standin), str(self.titled)} if starting else {str(self.standin)}
        found = []
        for p in psutil.process_iter(["cmdline", "status", "name", "ppid"]):
            cmd = p.info["cmdline"] or []
            mine = (len(cmd) >= 2 and cmd[1] in scripts) or cmd[:1] == [self.standin.name]
            if mine and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(p)
        # A stand-in forking its `cat` of stdin has, for a moment, a child that looks like itself: not a stand-in.
        pids = {p.pid for p in found}
        return [p for p in found if p.info["ppid"] not in pids]

    def claude_in_sessions(self, specs: list[AgentSpec]) -> dict[str, int]:
        """agent id -> pid of the stand-in running below its session's pane."""
        listing = subprocess.run(
            ["tmux", "-L", self.socket_name, "list-panes", "-a", "-F", "#{session_name}\t#{pane_pid}"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=True,
        ).stdout
        pane = dict(line.split("\t") for line in listing.splitlines())
        above = {p.pid: {p.pid, *(a.pid for a in _parents(p))} for p in self.standins()}
        return {spec.id: next(pid for pid, up in above.items() if int(pane[_stored(spec.session)]) in up)
                for spec in specs}

    def wait_ready(self, expected: int, timeout: float) -> None:
        """Wait until every stand-in runs with its traps set (it says so in bin/.ready/<pid>), so a kill-session
        cannot race them."""
        deadline = time.monotonic() + timeout
        while True:
            ready = [p for p in self.standins() if (self.bin / ".ready" / str(p.pid)).exists()]
            if len(ready) >= expected:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(ready)} of {expected} Claude stand-ins started")
            time.sleep(0.02)

    def kill_sessions(self, names: list[str]) -> None:
        """Kill sessions in batches (one tmux call per 50); wait_reparented() checks the result."""
        for start in range(0, len(names), 50):
            args: list[str] = []
            for name in names[start:start + 50]:
                args += ["kill-session", "-t", f"={_stored(name)}", ";"]
            subprocess.run(["tmux", "-L", self.socket_name, *args[:-1]], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=60)

    def wait_reparented(self, pids: set[int], timeout: float) -> None:
        """Wait until the stand-ins of killed sessions no longer descend from the tmux server."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server_pid()
            pending = [p for p in self.standins() if p.pid in pids and server in {a.pid for a in _parents(p)}]
            if not pending:
                return
            time.sleep(0.02)
        raise TimeoutError("orphaned stand-ins were not re-parented in time")

    def server_pid(self) -> int | None:
        proc = subprocess.run(
            ["tmux", "-L", self.socket_name, "display-message", "-p", "#{pid}"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=10,
        )
        return int(proc.stdout) if proc.returncode == 0 and proc.stdout.strip().isdigit() else None

    def live_sessions(self) -> set[str]:
        try:
            return {s.session_name for s in self.server.sessions if s.session_name} if self.server.is_alive() else set()
        except Exception:  # libtmux raises a variety of errors for a dead server
            return set()

    def teardown(self) -> None:
        """End exactly what this world started: its stand-ins by PID, its own tmux server by socket."""
        for p in self.standins(starting=True):
            with contextlib.suppress(psutil.Error):
                p.kill()
        if self.server.is_alive():
            self.server.kill()
        for popen in self.popen:
            if popen.poll() is None:
                popen.kill()
            popen.wait(timeout=10)
        Path(default_socket_path(self.socket_name)).unlink(missing_ok=True)

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()


def outside_tmux() -> dict[str, str]:
    """This environment as outside any tmux client: no TMUX/TMUX_PANE, but TMUX_TMPDIR kept, so the world's
    server lives where the checks (and the world's teardown) look for it."""
    return {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}


def _stored(name: str) -> str:
    return name.replace(".", "_").replace(":", "_")


def _seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def _tq(text: str) -> str:
    """Quote for tmux's command parser (double quotes; escape what it expands)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def _parents(p: psutil.Process) -> list[psutil.Process]:
    try:
        return p.parents()
    except psutil.Error:
        return []


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
