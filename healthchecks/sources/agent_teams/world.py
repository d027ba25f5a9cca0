"""Build real Claude Code Agent Teams worlds: a config dir in the real shape, leads and teammates as stand-ins with
the real argv, in panes of private tmux servers, and each fault the checks know. Torn down by its own marks.

Every tmux server of the world lives under its own TMUX_TMPDIR (``<tmp>/hc-teams-<hex>``), so a swarm server named
as Claude names it (``-L claude-swarm-<lead pid>``) can never be a real one: the world's checks run with that
TMUX_TMPDIR too (``environment()``). The stand-ins are one script, named ``claude-<8 hex>``: the process name of a
native install is its file's name, as here, and the world's Claude matcher matches that name only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psutil

from ...processes import start_ticks
from ...settings import Settings
from ...testing.bench import BenchWorld, started
from ...testing.world import STANDIN, outside_tmux

SIZE = "400"  # columns and rows of a window: room for a lead and its teammates side by side
COLORS = ("blue", "green", "yellow", "purple", "orange", "pink", "cyan", "red")


@dataclass
class Member:
    name: str
    running: bool = True  # a live teammate process in its pane
    pane: str | None = None  # its pane id once started
    fault: str = ""  # "gone": its pane was closed; "dead": its process exited, the pane remains; "reused": the id
    # names a person's pane; "duplicate": a second process carries its id, outside tmux
    pid: int | None = None


@dataclass
class Team:
    name: str
    session_id: str
    in_tmux: bool  # the lead runs in a pane of the world's lead server (else: a private swarm server)
    lead_alive: bool = True
    members: list[Member] = field(default_factory=list)
    lead_pid: int | None = None
    lead_ticks: int | None = None
    lead_pane: str | None = None

    def agent_id(self, member: Member) -> str:
        return f"{member.name}@{self.name}"


class TeamWorld:
    """A temporary Agent Teams world. Use as a context manager, or call start() and teardown()."""

    def __init__(self, root: Path, grace: float = 0.3) -> None:
        self.root = Path(root)
        self.grace = grace
        self.tag = secrets.token_hex(4)
        self.config_dir = self.root / "claude-config"
        self.project = self.root / "proj"
        self.bin = self.root / "bin"
        self.standin = self.bin / f"claude-{self.tag}"
        self.tmpdir = Path(tempfile.mkdtemp(prefix="hc-teams-"))  # short: a socket path has ~100 bytes
        self.lead_server = f"hc-{self.tag}"
        self.teams: list[Team] = []
        self.person: dict[str, str] = {}  # what a person runs beside the teams: "shell"/"claude" -> pane id
        self.popen: list[subprocess.Popen[bytes]] = []
        self.stray_servers: list[str] = []  # swarm servers of no team (the team dir already gone)
        self._old_tmpdir: str | Literal[False] | None = False  # False: this process's TMUX_TMPDIR is its own
        for d in (self.config_dir / "teams", self.config_dir / "sessions", self.project, self.bin):
            d.mkdir(parents=True, exist_ok=True)
        os.mkfifo(self.bin / ".fifo")
        self.standin.write_text(STANDIN)
        self.standin.chmod(0o755)

    # -- describing -----------------------------------------------------------------------------------------
    def team(self, members: list[Member] | int = 2, *, in_tmux: bool = True, lead_alive: bool = True) -> Team:
        if isinstance(members, int):
            members = [Member(f"mate{i + 1}") for i in range(members)]
        session_id = str(uuid.UUID(int=secrets.randbits(128)))
        team = Team(f"session-{session_id[:8]}", session_id, in_tmux, lead_alive, members)
        self.teams.append(team)
        return team

    @property
    def env(self) -> dict[str, str]:
        return {**outside_tmux(), "TMUX_TMPDIR": str(self.tmpdir)}

    @property
    def settings(self) -> Settings:
        return Settings(
            workspace=self.config_dir,  # the store's own place is the run's workspace
            tmux_sockets=(self.lead_server,),
            claude_match=f"^{self.standin.name}$",
            grace=self.grace,
            source="agent-teams",
        )

    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        """The checks see the world's tmux servers where Claude would put them: under its TMUX_TMPDIR."""
        self.enter()
        try:
            yield
        finally:
            self.leave()

    def enter(self) -> None:
        """This process looks for tmux servers under the world's TMUX_TMPDIR until leave() (or teardown)."""
        if self._old_tmpdir is False:
            self._old_tmpdir = os.environ.get("TMUX_TMPDIR")
            os.environ["TMUX_TMPDIR"] = str(self.tmpdir)

    def leave(self) -> None:
        if self._old_tmpdir is not False:
            if self._old_tmpdir is None:
                os.environ.pop("TMUX_TMPDIR", None)
            else:
                os.environ["TMUX_TMPDIR"] = self._old_tmpdir
            self._old_tmpdir = False

    # -- tmux -----------------------------------------------------------------------------------------------
    def tmux(self, server: str, *args: str) -> str:
        proc = subprocess.run(["tmux", "-L", server, "-f", "/dev/null", *args], env=self.env, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=30, check=True)
        return proc.stdout.strip()

    def socket(self, server: str) -> Path:
        return self.tmpdir / f"tmux-{os.getuid()}" / server

    def teammate_command(self, team: Team, member: Member, index: int) -> str:
        """What the lead's respawn-pane runs (2.1.332's shape, the stand-in as Claude's exec path)."""
        args = [
            "--agent-id", team.agent_id(member), "--agent-name", member.name, "--team-name", team.name,
            "--agent-color", COLORS[index % len(COLORS)], "--parent-session-id", team.session_id,
            "--lead-verify-key", f"{int(time.time() * 1000)}.{secrets.token_urlsafe(16)}",
            "--agent-type", "general-purpose", "--dangerously-skip-permissions", "--model", "claude-opus-5-5",
        ]
        return (f"cd {self.project} && env CLAUDECODE=1 CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS=1 {self.standin} "
                + " ".join(args))

    def start(self, timeout: float = 60.0) -> TeamWorld:
        self.tmux(self.lead_server, "start-server", ";", "set", "-g", "exit-empty", "off", ";", "new-session", "-d",
                  "-x", SIZE, "-y", SIZE, "-s", "person", "-c", str(self.project), "bash --norc --noprofile")
        self.person["shell"] = self.tmux(self.lead_server, "display-message", "-p", "-t", "person", "#{pane_id}")
        # a person's own interactive Claude beside the teams (#30098: never a teammate, never touched)
        self.person["claude"] = self.tmux(self.lead_server, "split-window", "-d", "-t", self.person["shell"], "-P",
                                          "-F", "#{pane_id}", f"{self.standin} --dangerously-skip-permissions")
        for team in self.teams:
            self._start_team(team)
        self._wait(lambda: all(t.lead_pid for t in self.teams), timeout)
        for team in self.teams:
            self._write_team(team)
        for team in self.teams:
            self._apply_faults(team, timeout)
        time.sleep(self.grace)
        return self

    def _lead_pid(self, server: str, pane: str) -> int:
        pane_pid = int(self.tmux(server, "display-message", "-p", "-t", pane, "#{pane_pid}"))
        return self._standin_at(pane_pid)

    def _standin_at(self, pid: int, timeout: float = 30.0) -> int:
        """The stand-in at or below a pane's process (sh may exec it, or fork it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):
                for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
                    if p.name() == self.standin.name:
                        return p.pid
            time.sleep(0.02)
        raise TimeoutError(f"no stand-in under pid {pid}")

    def _start_team(self, team: Team) -> None:
        lead_cmd = f"{self.standin} --dangerously-skip-permissions"
        if team.in_tmux:
            server = self.lead_server
            self.tmux(server, "new-session", "-d", "-x", SIZE, "-y", SIZE, "-s", f"lead-{team.name}", "-c",
                      str(self.project), lead_cmd)
            team.lead_pane = self.tmux(server, "display-message", "-p", "-t", f"lead-{team.name}", "#{pane_id}")
            team.lead_pid = self._lead_pid(server, team.lead_pane)
        else:  # the lead outside tmux: Claude makes claude-swarm-<lead pid> for the teammates
            popen = subprocess.Popen([str(self.standin), "--dangerously-skip-permissions"], cwd=self.project,
                                     env=self.env, start_new_session=True, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.popen.append(popen)
            team.lead_pid = popen.pid
            server = f"claude-swarm-{popen.pid}"
            self.tmux(server, "new-session", "-d", "-x", SIZE, "-y", SIZE, "-s", "swarm", "-c", str(self.project),
                      "cat")
            team.lead_pane = self.tmux(server, "display-message", "-p", "-t", "swarm", "#{pane_id}")
        lead_pid = team.lead_pid
        assert lead_pid is not None  # set just above, in either branch
        self._wait(lambda: start_ticks(lead_pid) is not None, 10)
        team.lead_ticks = start_ticks(lead_pid)
        for i, member in enumerate(team.members):
            if member.fault == "reused":
                member.pane = self.person["shell"]
                continue
            if not member.running and member.fault != "dead":
                member.pane = f"%{900 + i}"  # a pane long gone
                continue
            member.pane = self.tmux(server, "split-window", "-d", "-t", team.lead_pane, "-P", "-F", "#{pane_id}",
                                    self.teammate_command(team, member, i))
            if member.fault == "dead":
                self.tmux(server, "set-option", "-p", "-t", member.pane, "remain-on-exit", "on")
            pane_pid = int(self.tmux(server, "display-message", "-p", "-t", member.pane, "#{pane_pid}"))
            member.pid = self._standin_at(pane_pid)
        if not team.in_tmux:  # a swarm pane of its own is only the placeholder `cat`: teammates replace it
            self.tmux(server, "kill-pane", "-t", team.lead_pane)

    def server_of(self, team: Team) -> str:
        return self.lead_server if team.in_tmux else f"claude-swarm-{team.lead_pid}"

    def _write_team(self, team: Team) -> None:
        now = int(time.time() * 1000)
        members = [{
            "agentId": f"team-lead@{team.name}", "name": "team-lead", "agentType": "team-lead", "joinedAt": now,
            "tmuxPaneId": "leader", "cwd": str(self.project), "subscriptions": [], "backendType": "in-process",
        }]
        for i, m in enumerate(team.members):
            members.append({
                "agentId": team.agent_id(m), "name": m.name, "color": COLORS[i % len(COLORS)],
                "joinedAt": now - 60_000, "tmuxPaneId": m.pane, "subscriptions": [], "agentType": "general-purpose",
                "model": "claude-opus-5-5", "planModeRequired": False, "cwd": str(self.project),
                "backendType": "tmux", "isActive": True,
            })
        config = {
            "name": team.name, "createdAt": now - 120_000, "leadAgentId": f"team-lead@{team.name}",
            "leadSessionId": team.session_id,
            "leadProcess": {"pid": team.lead_pid, "pidSpace": _pid_space(), "claimedAt": now - 120_000,
                            "procStart": str(team.lead_ticks)},
            "members": members,
        }
        folder = self.config_dir / "teams" / team.name
        (folder / "inboxes").mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        for m in team.members:
            (folder / "inboxes" / f"{m.name}.json").write_text("[]")
        tasks = self.config_dir / "tasks" / team.name
        tasks.mkdir(parents=True, exist_ok=True)
        (tasks / "1.json").write_text(json.dumps({"id": "1", "subject": "demo task", "status": "in_progress"}))
        session = {"pid": team.lead_pid, "sessionId": team.session_id, "cwd": str(self.project),
                   "startedAt": now - 120_000, "procStart": str(team.lead_ticks), "version": "2.1.332",
                   "kind": "interactive", "entrypoint": "cli"}
        if team.in_tmux:
            session["tmux"] = f"lead-{team.name}:@0.{team.lead_pane}"
        (self.config_dir / "sessions" / f"{team.lead_pid}.json").write_text(json.dumps(session))

    def _apply_faults(self, team: Team, timeout: float) -> None:
        server = self.server_of(team)
        for i, member in enumerate(team.members):
            if member.fault == "dead" and member.pid:
                psutil.Process(member.pid).kill()

                def pane_dead(pane: str = member.pane or "") -> bool:
                    return self.tmux(server, "display-message", "-p", "-t", pane, "#{pane_dead}") == "1"

                self._wait(pane_dead, timeout)
            elif member.fault == "duplicate":
                args = self.teammate_command(team, member, i).split(" && env ", 1)[1].split()[2:]
                dup = subprocess.Popen(args, cwd=self.project, env=self.env, start_new_session=True,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.popen.append(dup)
            elif member.fault == "gone" and member.pid and member.pane:
                self.tmux(server, "kill-pane", "-t", member.pane)
        if not team.lead_alive and (lead := team.lead_pid) is not None:
            psutil.Process(lead).kill()
            for popen in self.popen:
                if popen.pid == team.lead_pid:
                    popen.wait(timeout=10)
            self._wait(lambda: _gone(lead, team.lead_ticks), timeout)  # reaped, or defunct: dead to the checks

    def stray_swarm_server(self) -> str:
        """A claude-swarm-<pid> server whose lead is long gone and whose team dir was removed, holding a teammate
        that never exited (#69808, orca#15146). Returned once the teammate runs: until its pane's shell has exec'd
        the stand-in, the pane runs something other than a teammate, and the server is rightly left alone."""
        name = ""
        while not name or (self.tmpdir / f"tmux-{os.getuid()}" / name).exists():
            # a dead pid whose name no server of this world has: on a busy machine the pid of a lead this world
            # killed (its swarm server left behind, the orphaned team's fault) comes round again within minutes
            dead = subprocess.Popen(["true"])
            dead.wait(10)
            name = f"claude-swarm-{dead.pid}"
        team = Team(f"session-{secrets.token_hex(4)}", str(uuid.uuid4()), False)
        cmd = self.teammate_command(team, Member("lost"), 0)
        self.tmux(name, "new-session", "-d", "-s", "swarm", "-c", str(self.project), cmd)
        self.stray_servers.append(name)
        self._standin_at(int(self.tmux(name, "display-message", "-p", "-t", "swarm", "#{pane_pid}")))
        return name

    @staticmethod
    def _wait(condition: Callable[[], object], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("the teams world did not come up in time")
            time.sleep(0.02)

    # -- teardown -------------------------------------------------------------------------------------------
    def standins(self) -> list[psutil.Process]:
        found = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = p.info["cmdline"] or []
            if str(self.standin) in cmd[:2]:
                found.append(p)
        return found

    def servers(self) -> list[str]:
        folder = self.tmpdir / f"tmux-{os.getuid()}"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def teardown(self) -> None:
        """End exactly what this world started: its stand-ins by their unique path, its servers by their sockets
        under its own TMUX_TMPDIR."""
        self.leave()
        for name in self.servers():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(["tmux", "-L", name, "kill-server"], env=self.env, capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=10)
        for p in self.standins():
            with contextlib.suppress(psutil.Error):
                p.kill()
        for popen in self.popen:
            if popen.poll() is None:
                popen.kill()
            popen.wait(timeout=10)
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> TeamWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()


def _gone(pid: int, ticks: int | None) -> bool:
    try:
        return start_ticks(pid) != ticks or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _pid_space() -> str:
    """As 2.1.332 writes it: `vm#pid:[<inode of this pid namespace>]`."""
    try:
        return "vm#" + os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def demo(root: Path, grace: float = 0.3) -> TeamWorld:
    """One of every Agent Teams fault beside a healthy team and a person's panes (--demo-source agent-teams)."""
    world = TeamWorld(root, grace)
    world.team(2)  # healthy: a lead in tmux, two teammates beside a person's shell and Claude
    world.team([Member("mate1"), Member("ghost", running=False), Member("dead", fault="dead"),
                Member("reused", fault="reused"), Member("twin", fault="duplicate")])
    world.team(2, in_tmux=False, lead_alive=False)  # the lead died: its teammates run on in its swarm server
    world.team([Member("gone", running=False)], lead_alive=False)  # stale: lead dead, no member runs
    world.start()
    world.stray_swarm_server()
    world.enter()  # this run's checks look under the world's TMUX_TMPDIR until its teardown
    return world


def bench(root: Path, members: int, per_team: int = 5) -> BenchWorld:
    """The bench's Agent Teams round: ``members`` teammates in healthy teams of ``per_team`` (at 500, 100 teams x 5
    members), every lead alive in the leads' server; its floor a json.loads of every config.json."""
    teams = max(1, members // per_team)
    world = TeamWorld(root, grace=0.0)
    for _ in range(teams):
        world.team(per_team)
    started(world)
    world.enter()  # the bench's checks look under the world's TMUX_TMPDIR until its teardown
    configs = sorted((world.config_dir / "teams").glob("*/config.json"))
    return BenchWorld(world, teams * per_team, teams, lambda: [json.loads(path.read_bytes()) for path in configs],
                      "json.loads of every config.json", f"{teams} teams x {per_team} members")
