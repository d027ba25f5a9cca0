"""agent-of-empires' world for tests, its demo and its bench world, made exactly as aoe makes it
(the program is not run).

It reuses the shared world's machinery (a private tmux server standing in for the default one aoe uses, Claude
stand-ins found by their unique names, teardown by PID and by socket) and renders aoe's store: the profile's
sessions.json, renamed into place; each record's session named as aoe names it, its agent launched as aoe wraps it
(`exec <sh> -c 'stty susp undef; exec env AOE_INSTANCE_ID=<id> claude --session-id <uuid>'`, without -l so that no
login file of this machine runs), with `remain-on-exit on` on its pane and AOE_INSTANCE_ID as a hidden session
variable, as aoe sets them right after creating it.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ...settings import Settings
from ...testing.bench import BenchWorld, started
from ...testing.world import World, _tq, outside_tmux
from . import reader as aoe

DEAD_WITHIN = 10.0  # how long an exiting agent may take to leave its pane dead


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _set_after_launch(name: str, rid: str) -> list[str]:
    """What aoe sets on a session right after creating it: `remain-on-exit on`, a hidden AOE_INSTANCE_ID."""
    return [f"set-option -p -t {_tq('=' + name + ':')} remain-on-exit on",
            f"set-environment -h -t {_tq('=' + name)} AOE_INSTANCE_ID {rid}"]


class AoeWorld(World):
    """An aoe app directory (one profile's sessions.json), its sessions on a private server, Claude stand-ins
    launched as aoe launches Claude, its helper sessions, and bystanders."""

    def __init__(self, root: Path, profile: str = "main", **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.app = self.root / "config" / "agent-of-empires"
        self.profile = profile
        self.workspace = self.app / "profiles" / profile
        self.project = self.root / "project"
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.project.mkdir(exist_ok=True)
        self.records: list[dict[str, Any]] = []
        # (session, command, extra tmux commands after it): aoe's own sessions, made after the shared world's
        self.aoe_sessions: list[tuple[str, str, list[str]]] = []
        self.loose: list[tuple[dict[str, str], list[str]]] = []  # Claude outside tmux: env, args
        self.dying: list[str] = []  # sessions whose agent exits: their pane .0 must be dead before judging

    @property
    def settings(self) -> Settings:
        return Settings(workspace=self.workspace, tmux_sockets=(self.socket_name,),
                        claude_match=f"^{self.standin.name}$", grace=self.grace, source=aoe.NAME)

    @property
    def global_path(self) -> Path:
        return self.sessions_path

    @property
    def sessions_path(self) -> Path:
        return self.workspace / aoe.SESSIONS

    def _launch(self, rid: str, program: str) -> str:
        """aoe's wrap of an agent's command (wrap_command_ignore_suspend), its AOE_INSTANCE_ID prefix included."""
        inner = f"stty susp undef; exec env AOE_INSTANCE_ID={rid} {program}"
        return f"exec sh -c {shlex.quote(inner)}"

    def instance(self, title: str, status: str = "running", running: str | None = "claude", *,
                 started_ago: float = 600) -> dict[str, Any]:
        """One record as aoe writes it. ``running``: "claude" in pane .0 of its session; "shell" (the agent gone,
        a shell left); "dead" (the agent exited: its pane .0 dead, the session kept by remain-on-exit); "split"
        (its pane .0 dead, a person's Claude in a pane split beside it); "orphan" (no session; its Claude runs on
        outside tmux, as #150's survived a stop); None (no session)."""
        rid, conversation = secrets.token_hex(8), str(uuid.uuid4())
        now = datetime.now(timezone.utc)
        record = {"id": rid, "title": title, "project_path": str(self.project), "group_path": "project",
                  "command": "", "tool": "claude", "yolo_mode": False, "status": status,
                  "created_at": _rfc3339(now - timedelta(seconds=started_ago)),
                  "last_accessed_at": _rfc3339(now), "agent_session_id": conversation}
        self.records.append(record)
        name = aoe.session_name(title, rid)
        claude = f"{shlex.quote(str(self.standin))} --session-id {conversation}"
        after = _set_after_launch(name, rid)
        if running == "claude":
            self.aoe_sessions.append((name, self._launch(rid, claude), after))
        elif running == "shell":
            self.aoe_sessions.append((name, self._launch(rid, "sh"), after))
        elif running in ("dead", "split"):
            self.aoe_sessions.append((name, self._launch(rid, "sleep 0.3"), after))
            self.dying.append(name)
            if running == "split":  # a person split the window and runs their own Claude there
                after.append(f"split-window -d -t {_tq('=' + name + ':')} {_tq(shlex.quote(str(self.standin)))}")
        elif running == "orphan":
            self.loose.append(({"AOE_INSTANCE_ID": rid}, ["--session-id", conversation]))
        return record

    def run_program(self, record: dict[str, Any], tool: str, argv: list[str], env: dict[str, str]) -> None:
        """A record made with ``running=None`` runs another agent program in pane .0 of its session, wrapped as aoe
        wraps an agent with hooks (AOE_INSTANCE_ID in its environment): ``argv`` with only ``env`` (a real program's
        offline environment), recorded as aoe records it (`tool`). The pane stays, dead, when the program ends."""
        record["tool"] = tool
        rid = record["id"]
        name = aoe.session_name(record["title"], rid)
        offline = shlex.join(["env", "-i", *(f"{k}={v}" for k, v in {**env, "AOE_INSTANCE_ID": rid}.items()), *argv])
        after = _set_after_launch(name, rid)
        self.aoe_sessions.append((name, self._launch(rid, offline), after))

    def helper(self, record: dict[str, Any], prefix: str = "aoe_term_") -> str:
        """A record's paired shell (`aoe_term_<title>_<id8>`, or `aoe_cterm_`): a shell, never an agent."""
        name = prefix + aoe.session_name(record["title"], record["id"]).removeprefix("aoe_")
        self.aoe_sessions.append((name, "exec sh", []))
        return name

    def other_profiles_claude(self) -> None:
        """A Claude of another aoe profile, outside tmux: its AOE_INSTANCE_ID names no record of this profile."""
        self.loose.append(({"AOE_INSTANCE_ID": secrets.token_hex(8)}, ["--session-id", str(uuid.uuid4())]))

    def persons_claude(self) -> None:
        self.loose.append(({}, []))

    def write_registries(self, *_: object, **__: object) -> None:
        """As aoe's Storage::update does: serde_json pretty (two spaces), a temporary file in the folder, renamed."""
        fd, tmp = tempfile.mkstemp(dir=self.workspace, prefix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(self.records, indent=2, ensure_ascii=False))
        os.replace(tmp, self.sessions_path)

    def _make_sessions(self, timeout: float) -> None:
        lines = [f"new-session -d -s {_tq(name)} -c {_tq(str(self.project))} {_tq(cmd)}\n" + "".join(
            f"{extra}\n" for extra in after) for name, cmd, after in self.aoe_sessions]
        script = self.root / "aoe-sessions.tmux"
        script.write_text("".join(lines))
        subprocess.run(["tmux", "-L", self.socket_name, "-f", "/dev/null", "start-server", ";", "set", "-g",
                        "exit-empty", "off", ";", "source-file", str(script)], check=True, env=outside_tmux(),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)

    def _wait_dead(self, timeout: float) -> None:
        """Until every exiting agent's pane .0 is dead (bounded)."""
        deadline = time.monotonic() + min(timeout, DEAD_WITHIN)
        while self.dying:
            listing = subprocess.run(["tmux", "-L", self.socket_name, "list-panes", "-a", "-F",
                                      "#{session_name}\t#{pane_index}\t#{pane_dead}"], capture_output=True,
                                     text=True, stdin=subprocess.DEVNULL, timeout=60).stdout
            dead = {line.split("\t")[0] for line in listing.splitlines() if line.endswith("\t0\t1")}
            if set(self.dying) <= dead:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"agent panes not dead: {sorted(set(self.dying) - dead)}")
            time.sleep(0.05)

    def start(self, timeout: float = 60.0) -> AoeWorld:
        self.write_registries()
        for env, args in self.loose:
            self.popen.append(subprocess.Popen(
                [str(self.standin), *args], cwd=self.project, env={**outside_tmux(), **env}, start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        super().start(timeout)
        created = time.monotonic()
        if self.aoe_sessions:
            self._make_sessions(timeout)
        standin = str(self.standin)
        in_sessions = sum(cmd.count(standin) + sum(a.count(standin) for a in after)
                          for _, cmd, after in self.aoe_sessions)
        in_sessions += sum(1 for _, cmd, _ in self.extra_sessions if standin in cmd)
        self.wait_ready(in_sessions + len(self.loose), timeout)
        self._wait_dead(timeout)
        time.sleep(max(0.0, self.grace - (time.monotonic() - created)))  # its sessions aged past the grace
        return self


def aoe_demo(root: Path, grace: float = 0.3) -> AoeWorld:
    """agent-of-empires' demo: healthy sessions, a stopped one long gone, its helper shell, a leaked session of a
    stopped record, a ghost, two zombies (a dead agent pane, a shell left), aoe's own error verdict, #150's Claude
    surviving a stop, another profile's Claude, a person's `work` session and own Claude."""
    world = AoeWorld(root, seed=20251029, grace=grace)
    fix = world.instance("fix login", "waiting")
    world.instance("api server", "running")
    world.instance("old spike", "stopped", None)  # stopped, its session gone: healthy
    world.helper(fix)  # its paired shell: never an agent
    world.instance("stopped but live", "stopped")  # leaked
    world.instance("gone", "running", None)  # ghost
    world.instance("crashed", "idle", "dead")  # zombie: pane .0 dead
    world.instance("left a shell", "waiting", "shell")  # zombie: only a shell
    world.instance("failed", "error", "dead")  # aoe's own verdict: information
    world.instance("survivor", "stopped", "orphan")  # #150
    world.other_profiles_claude()
    world.user_session("work", world.project)
    world.persons_claude()
    return world.start()


def aoe_bench(root: Path, agents: int) -> BenchWorld:
    """The bench's agent-of-empires round: ``agents`` records, a tenth running with Claude in their sessions, the
    rest stopped without one; its floor one json.loads of sessions.json."""
    live = max(1, agents // 10)
    world = AoeWorld(root, seed=agents)
    for i in range(agents):
        world.instance(f"task {i}", "running" if i < live else "stopped", "claude" if i < live else None)
    started(world)
    return BenchWorld(world, agents, live, lambda: json.loads(world.sessions_path.read_bytes()),
                      "json.loads of sessions.json")
