"""agent-deck's world for tests, its demo and its bench world, written exactly as it writes its files (the
program is not run).

It reuses the shared world's machinery (a private tmux server, Claude stand-ins found by their unique names,
teardown by PID and by socket) and renders agent-deck's state database instead of the orchestrator's registries.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import sqlite3
import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ...settings import Settings
from ...testing.bench import BenchWorld, started
from ...testing.world import World, outside_tmux
from . import reader as agent_deck

# agent-deck's tables at v1.14.0 (schema_version 13): the columns it has, in its order; other tables it keeps.
DECK_SCHEMA = """
CREATE TABLE metadata (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE groups (path TEXT PRIMARY KEY, name TEXT, expanded INTEGER, sort_order INTEGER);
CREATE TABLE instances (
  id TEXT PRIMARY KEY, title TEXT, project_path TEXT, group_path TEXT, sort_order INTEGER, command TEXT,
  wrapper TEXT, tool TEXT, status TEXT, tmux_session TEXT, tmux_socket_name TEXT DEFAULT '', created_at INTEGER,
  last_accessed INTEGER, parent_session_id TEXT, is_conductor INTEGER DEFAULT 0, no_transition_notify INTEGER
  DEFAULT 0, title_locked INTEGER DEFAULT 0, worktree_path TEXT, worktree_repo TEXT, worktree_branch TEXT,
  account TEXT, archived_at INTEGER DEFAULT 0, auto_name INTEGER DEFAULT 0, auto_name_description TEXT,
  pin INTEGER DEFAULT 0, last_sent_at INTEGER, tool_data TEXT, acknowledged INTEGER DEFAULT 0);
CREATE TABLE instance_heartbeats (instance_id TEXT PRIMARY KEY, pid INTEGER, updated_at INTEGER);
CREATE TABLE session_claims (instance_id TEXT PRIMARY KEY, owner TEXT, claimed_at INTEGER);
CREATE TABLE recent_sessions (id INTEGER PRIMARY KEY, instance_id TEXT, opened_at INTEGER);
CREATE TABLE cost_events (id INTEGER PRIMARY KEY, instance_id TEXT, cost REAL, at INTEGER);
CREATE TABLE watchers (id TEXT PRIMARY KEY, instance_id TEXT);
CREATE TABLE watcher_events (id INTEGER PRIMARY KEY, watcher_id TEXT, at INTEGER);
"""


class DeckWorld(World):
    """An agent-deck profile (`state.db`, WAL), its sessions on a private server that every row names in
    `tmux_socket_name`, Claude stand-ins launched as its panes launch Claude, and bystanders."""

    def __init__(self, root: Path, profile: str = "default", **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.profile = profile
        self.workspace = self.root / "data" / "agent-deck" / "profiles" / profile
        self.project = self.root / "project"
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.project.mkdir(exist_ok=True)
        self.rows: list[dict[str, Any]] = []
        self.loose: list[tuple[Path, dict[str, str], list[str]]] = []  # Claude outside tmux: cwd, env, args

    @property
    def settings(self) -> Settings:
        return Settings(workspace=self.workspace, tmux_sockets=(self.socket_name,),
                        claude_match=f"^{self.standin.name}$", grace=self.grace, source=agent_deck.NAME)

    @property
    def global_path(self) -> Path:
        return self.db_path

    @property
    def db_path(self) -> Path:
        return self.workspace / agent_deck.DB

    def row(self, title: str, status: str = "running", running: str | None = "claude", *,
            renamed: bool = False, started_ago: float = 600) -> dict[str, Any]:
        """One row as agent-deck writes it. ``running``: "claude" in its session, "shell" (no Claude), "orphan"
        (its Claude outside tmux, #729), None (no session). ``renamed``: a restart recreated the session under a
        new name without recording it (before v1.14.0)."""
        rid = f"{secrets.token_hex(4)}-{int(datetime.now(timezone.utc).timestamp())}"
        conversation = str(uuid.uuid4())
        stored = f"agentdeck_{re.sub(r'[^a-zA-Z0-9-]+', '-', title)}_{secrets.token_hex(4)}"
        row = {"id": rid, "title": title, "project_path": str(self.project), "group_path": "", "sort_order": 0,
               "command": "claude", "wrapper": "", "tool": "claude", "status": status, "tmux_session": stored,
               "tmux_socket_name": self.socket_name,
               "created_at": int(datetime.now(timezone.utc).timestamp() - started_ago), "last_accessed": 0,
               "tool_data": json.dumps({"claude_session_id": conversation}), "archived_at": 0}
        self.rows.append(row)
        env = {"AGENTDECK_INSTANCE_ID": rid, "AGENTDECK_PROFILE": self.profile}
        launch = f"export AGENTDECK_INSTANCE_ID={rid} AGENTDECK_PROFILE={shlex.quote(self.profile)}; "
        name = stored.replace(stored.rsplit("_", 1)[1], secrets.token_hex(4)) if renamed else stored
        if running == "claude":
            cmd = f"{launch}exec {shlex.quote(str(self.standin))} --session-id {conversation}"
            self.extra_sessions.append((name, cmd, self.project))
        elif running == "shell":
            self.extra_sessions.append((name, "cat", self.project))
        elif running == "orphan":
            self.loose.append((self.project, env, ["--resume", conversation]))
        return row

    def run_program(self, row: dict[str, Any], tool: str, argv: list[str], env: dict[str, str],
                    exit_to_shell: bool = False) -> None:
        """A row made with ``running=None`` runs another agent program in its session: ``argv`` with only ``env``
        (a real program's offline environment) and agent-deck's two variables, recorded as agent-deck records it
        (`tool` and `command`). The program is the pane's own process, as agent-deck's `export ...; <tool>` leaves it
        (the pane's shell runs its last command in its own place); ``exit_to_shell`` (its [shell] option, #1161)
        runs `<tool>; exec "$SHELL" -i` instead: a shell is left in the pane when the program ends."""
        row["tool"] = row["command"] = tool
        ids = {"AGENTDECK_INSTANCE_ID": row["id"], "AGENTDECK_PROFILE": self.profile}
        launch = shlex.join(["env", "-i", *(f"{k}={v}" for k, v in {**env, **ids}.items()), *argv])
        exports = f"export AGENTDECK_INSTANCE_ID={row['id']} AGENTDECK_PROFILE={shlex.quote(self.profile)}; "
        command = f"{exports}{launch}; exec sh -i" if exit_to_shell else f"{exports}exec {launch}"
        self.extra_sessions.append((row["tmux_session"], command, self.project))

    def other_profiles_claude(self) -> None:
        """A Claude of another agent-deck profile, outside tmux: its id names no row of this database."""
        env = {"AGENTDECK_INSTANCE_ID": f"{secrets.token_hex(4)}-1", "AGENTDECK_PROFILE": "work"}
        self.loose.append((self.project, env, ["--session-id", str(uuid.uuid4())]))

    def persons_claude(self) -> None:
        self.loose.append((self.project, {}, []))

    def inherited(self, row: dict[str, Any], args: tuple[str, ...] = ()) -> None:
        """A person's interactive Claude outside tmux, started from a shell that inherited ``row``'s
        AGENTDECK_INSTANCE_ID (one opened from its pane, say), with ``args``."""
        env = {"AGENTDECK_INSTANCE_ID": row["id"], "AGENTDECK_PROFILE": self.profile}
        self.loose.append((self.project, env, list(args)))

    def write_registries(self, *_: object, **__: object) -> None:
        conn = sqlite3.connect(self.db_path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(DECK_SCHEMA)
            conn.execute("INSERT INTO metadata VALUES ('schema_version', '13')")
            for row in self.rows:
                cols = ", ".join(row)
                conn.execute(f"INSERT OR REPLACE INTO instances ({cols}) VALUES ({', '.join('?' * len(row))})",
                             tuple(row.values()))
            conn.commit()
        finally:
            conn.close()

    def start(self, timeout: float = 60.0) -> DeckWorld:
        if not self.db_path.exists():
            self.write_registries()
        for cwd, env, args in self.loose:
            self.popen.append(subprocess.Popen(
                [str(self.standin), *args], cwd=cwd, env={**outside_tmux(), **env}, start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        super().start(timeout)
        in_sessions = sum(1 for _, cmd, _ in self.extra_sessions if str(self.standin) in cmd)
        self.wait_ready(in_sessions + len(self.loose), timeout)
        return self


def deck_demo(root: Path, grace: float = 0.3) -> DeckWorld:
    """agent-deck's demo: healthy rows, a stopped row whose session runs (started again by hand), a ghost, a
    restart's unrecorded rename, a zombie, the #729 orphan of a stopped row, another profile's Claude, a person's
    `work` session and own Claude."""
    world = DeckWorld(root, seed=20251029, grace=grace)
    world.row("api server", "running")
    world.row("docs", "idle")
    world.row("by hand", "stopped")  # its session runs: information, never ended
    world.row("gone", "waiting", None)  # ghost
    world.row("restarted", "running", renamed=True)  # ghost, and an untracked agentdeck_ session
    world.row("stuck", "running", "shell")  # zombie
    world.row("stopped early", "stopped", "orphan")  # #729
    world.other_profiles_claude()
    world.user_session("work", world.project)
    world.persons_claude()
    return world.start()


def deck_bench(root: Path, agents: int) -> BenchWorld:
    """The bench's agent-deck round: ``agents`` rows, a tenth running with Claude in their sessions, the rest
    stopped without one; its floor one SELECT * FROM instances."""
    live = max(1, agents // 10)
    world = DeckWorld(root, seed=agents)
    for i in range(agents):
        world.row(f"task {i}", "running" if i < live else "stopped", "claude" if i < live else None)
    started(world)

    def select_all() -> None:
        conn = sqlite3.connect(world.db_path)
        try:
            conn.execute("SELECT * FROM instances").fetchall()
        finally:
            conn.close()

    return BenchWorld(world, agents, live, select_all, "SELECT * FROM instances")
