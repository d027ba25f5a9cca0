"""Gas Town's world for tests and its demo, made exactly as it makes its own (the program is not run).

A town directory (`mayor/town.json`, `mayor/rigs.json`), its own tmux server on the socket Gas Town derives from the
town, sessions made with `new-session -e` carrying the agents' GT_* environment (also in their processes), GT_PANE_ID
set afterwards in the session only, and `.runtime/pids/<session>.pid` written as TrackPID writes it (`<pid>|<ps
lstart>` with LC_ALL=C, or an older release's bare pid). The shared world's own private server stands in for the
default server, where a person's session lives.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psutil

from ...settings import Settings
from ...testing.bench import BenchWorld, started
from ...testing.world import World, _tq, outside_tmux
from ...tmux import FORMAT, default_socket_path
from . import reader as gastown

# A stand-in for beads' `bd` (not installable here: its npm package downloads a release binary), answering only
# what the reader asks (gastown/ledger.py) as beads' source prints it: `list ... --json` -> a JSON array of issues
# (types.IssueWithCounts), the agent's state in its description's `agent_state:` line. Its data: a map from the real
# path of its working directory to that folder's issues, beside it; `delay` seconds before answering.
BD_STANDIN = """#!{python}
import json, os, sys, time
data = json.load(open(os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "bd.json")))
args = sys.argv[1:]
if "list" not in args or "--json" not in args or "--label=gt:agent" not in args:
    sys.exit("Error: unknown command " + " ".join(args))
time.sleep(data["delay"])
print(json.dumps(data["issues"].get(os.path.realpath(os.getcwd()), []), indent=2))
"""
Running = Literal["claude", "shell", "dead"]
PidFile = Literal["good", "bare", "dead", "reused"]


@dataclass
class Member:
    session: str
    role: str
    rig: str | None
    running: Running
    pid_file: PidFile | None
    launch: dict[str, str] | None = None  # variables set at launch over Gas Town's own (a session it did not make)
    outlives: bool = False  # its Claude ignores SIGHUP and outlives the town's server: an orphan


class TownWorld(World):
    """A Gas Town town with rigs (name -> beads prefix), its agents' sessions on its own server, loose processes
    carrying its GT_* pair, and bystanders."""

    def __init__(self, root: Path, rigs: dict[str, str] | None = None, socket: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.town = self.root / "gt"
        (self.town / "mayor").mkdir(parents=True, exist_ok=True)
        self.rigs = rigs or {"gastown": "gt", "beads": "bd"}
        self.given_socket = socket  # --gt-socket, when the town's server is not the one its path derives
        self.town_socket = gastown.town_socket(self.town, socket)
        self.members: list[Member] = []
        self.loose: list[dict[str, str]] = []  # environments of Claudes started outside tmux
        self.dead_pid = 0  # a pid no process holds (a finished child's)
        self.panes: dict[str, int] = {}  # session -> its pane's process (the agent: Gas Town's launch execs it)
        self.issues: dict[str, list[dict[str, Any]]] = {}  # the beads ledger: folder (real path) -> its issues

    @property
    def settings(self) -> Settings:
        return Settings(workspace=self.town, tmux_sockets=(self.socket_name,), claude_match=f"^{self.standin.name}$",
                        claude_exe="", grace=self.grace, source=gastown.NAME,
                        place_options=(("--gt-socket", self.given_socket),) if self.given_socket else ())

    @property
    def global_path(self) -> Path:
        return self.town / "mayor" / "rigs.json"

    def files(self) -> dict[str, bytes]:
        """Every file of the town, by path: compared before and after a run (never written)."""
        return {str(p): p.read_bytes() for p in sorted(self.town.rglob("*")) if p.is_file()}

    def env(self, session: str, role: str, rig: str | None) -> dict[str, str]:
        """The GT_* environment StartSession passes with `new-session -e` (config/env.go, lifecycle.go:190-214)."""
        found = {"GT_ROLE": role, "GT_ROOT": str(self.town), "GT_SESSION": session, "GT_AGENT": "claude",
                 "GT_PROCESS_NAMES": "node,claude", "GT_RUN": str(uuid.uuid4()), "BD_ACTOR": role,
                 "CLAUDECODE": "", "NODE_OPTIONS": ""}
        if rig:
            found["GT_RIG"] = rig
        return found

    def member(self, session: str, role: str, rig: str | None = None, running: Running = "claude",
              pid_file: PidFile | None = "good", launch: dict[str, str] | None = None,
              outlives: bool = False) -> Member:
        """An agent's session. ``running``: Claude, a shell only (its agent exited), or a dead pane kept by
        remain-on-exit. ``pid_file``: as TrackPID writes it, a bare pid, or one whose pid is dead or reused.
        ``outlives``: its Claude ignores SIGHUP (node-era) and outlives the town's server, started again without
        its session (restart_server): its pid file then names that very Claude, now outside every pane."""
        hup = {"HC_IGNORE_HUP": "1"} if outlives else {}
        member = Member(session, role, rig, running, pid_file, {**hup, **(launch or {})}, outlives)
        self.members.append(member)
        return member

    def gone_pair(self, session: str, role: str, rig: str | None = None) -> None:
        """A Claude outside tmux carrying the GT_* pair of a session that is gone, and nothing else: no pid file
        names it and no run saw it there (a person's Claude started from an agent's shell inherits the same pair)."""
        self.loose.append(self.env(session, role, rig))

    def loose_claude(self, env: dict[str, str]) -> None:
        """A Claude outside tmux with these variables (bystanders: another town's pair, a live session's)."""
        self.loose.append(env)

    def bead(self, bead_id: str, state: str, folder: str = "", legacy: bool = False) -> None:
        """An agent bead in the ledger of the town (``folder`` ''), or of a rig's folder, as Gas Town writes it
        (CreateAgentBead: its fields as `key: value` lines of the description; ``legacy``: the old structured
        field only)."""
        path = os.path.realpath(self.town / folder)
        fields = f"role_type: polecat\nrig: null\nagent_state: {state}\nhook_bead: null"
        issue: dict[str, Any] = {
            "id": bead_id, "title": bead_id, "description": bead_id if legacy else f"{bead_id}\n\n{fields}",
            "status": "open", "priority": 2, "issue_type": "agent", "labels": ["gt:agent"],
            "created_at": "2026-04-30T09:00:00Z", "updated_at": "2026-04-30T09:00:00Z", "dependency_count": 0,
            "dependent_count": 0, "comment_count": 0}
        if legacy:
            issue["agent_state"] = state
        self.issues.setdefault(path, []).append(issue)

    def bd(self, delay: float = 0.0) -> Path:
        """The folder holding the stand-in `bd` over this world's ledger (put it first on PATH)."""
        folder = self.root / "bd-bin"
        folder.mkdir(exist_ok=True)
        (folder / "bd.json").write_text(json.dumps({"delay": delay, "issues": self.issues}))
        script = folder / "bd"
        script.write_text(BD_STANDIN.replace("{python}", sys.executable))
        script.chmod(0o755)
        return folder

    def write_registries(self, *_: object, **__: object) -> None:
        """town.json and rigs.json as `gt install` / `gt rig add` write them (indented JSON)."""
        (self.town / "mayor" / "town.json").write_text(json.dumps({"type": "town", "version": 2, "name": "gt"},
                                                                  indent=2))
        rigs = {name: {"git_url": f"https://example.invalid/{name}.git", "added_at": "2026-04-30T09:00:00Z",
                       "beads": {"repo": "", "prefix": prefix}} for name, prefix in self.rigs.items()}
        self.global_path.write_text(json.dumps({"version": 1, "rigs": rigs}, indent=2))

    def _tmux(self, *args: str, timeout: float = 60) -> str:
        return subprocess.run(["tmux", "-L", self.town_socket, "-f", "/dev/null", *args], check=True,
                              capture_output=True, text=True, env=outside_tmux(), stdin=subprocess.DEVNULL,
                              timeout=timeout).stdout

    def _town_sessions(self, members: list[Member]) -> None:
        if not members:
            return
        script = ["set -g exit-empty off"]
        for m in members:
            # Gas Town's launch is `exec env ... claude` (config/loader.go): the pane's process is the agent itself
            cmd = {"claude": f"exec {shlex.quote(str(self.standin))}", "shell": "cat", "dead": "true"}[m.running]
            launch = {**self.env(m.session, m.role, m.rig), **(m.launch or {})}
            env = " ".join(f"-e {_tq(f'{k}={v}')}" for k, v in launch.items())
            script.append(f"new-session -d -s {_tq(m.session)} -c {_tq(str(self.town))} {env} {_tq(cmd)}")
            if m.running == "dead":  # StartSession's optional remain-on-exit (set here before the pane exits)
                script.insert(-1, "set -g remain-on-exit on")
        path = self.root / "town.tmux"
        path.write_text("\n".join(script) + "\n")
        self._tmux("start-server", ";", "source-file", str(path))
        args: list[str] = []  # GT_PANE_ID: set after launch, in the session env only (lifecycle.go:270-276)
        for line in self._tmux("list-panes", "-a", "-F", "#{session_name}\t#{pane_id}").splitlines():
            name, pane = line.split("\t")
            args += ["set-environment", "-t", f"={name}", "GT_PANE_ID", pane, ";"]
        for start in range(0, len(args), 600):  # 100 a client: its command list is one message of at most 16 KiB
            self._tmux(*args[start:start + 600][:-1])
        self._execd()

    def _execd(self, timeout: float = 60.0) -> None:
        """Wait until every live pane's process runs its command: until it execs, it is the tmux server's fork (its
        name `tmux: server`), which the checks leave alone as "not recognised" (on a loaded machine a check came
        before that exec, and a shell member's session was no zombie)."""
        deadline = time.monotonic() + timeout
        while True:
            listed = self._tmux("list-panes", "-a", "-F", "#{pane_dead} #{pane_pid}").split()
            waiting = [pid for dead, pid in zip(listed[::2], listed[1::2], strict=True)
                       if dead == "0" and _comm(int(pid)) == "tmux: server"]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"pane processes {waiting[:5]} did not start their commands in time")
            time.sleep(0.02)

    def _pid_files(self, members: list[Member]) -> None:
        folder = self.town / gastown.PIDS
        folder.mkdir(parents=True, exist_ok=True)
        if not members:
            return
        panes = dict(line.split("\t") for line in self._tmux("list-panes", "-a", "-F",
                                                                "#{session_name}\t#{pane_pid}").splitlines())
        self.panes |= {name: int(pid) for name, pid in panes.items()}
        if not self.dead_pid:
            done = subprocess.Popen(["true"])
            done.wait()
            self.dead_pid = done.pid
        for m in members:
            if m.pid_file is None:
                continue
            pid = {"dead": self.dead_pid, "reused": os.getpid()}.get(m.pid_file, int(panes.get(m.session, 0)))
            start = lstart(pid) if m.pid_file in ("good", "reused") else ""
            if m.pid_file == "reused":
                start = "Thu Jan  1 09:00:00 2026"  # the process it tracked started then; this pid is another's
            if m.pid_file == "dead":
                start = "Thu Apr 30 09:02:38 2026"
            record = f"{pid}|{start}" if start else str(pid)
            (folder / f"{m.session}.pid").write_text(record + "\n")  # os.WriteFile: plain, no lock

    def start(self, timeout: float = 60.0) -> TownWorld:
        try:
            return self._start(timeout)
        except BaseException:
            self.teardown()  # a start that failed half-way leaves nothing running
            raise

    def _start(self, timeout: float) -> TownWorld:
        self.write_registries()
        self._town_sessions(self.members)
        created = time.monotonic()  # the town's sessions exist from here on: their grace counts from now
        self._pid_files(self.members)
        for env in self.loose:
            self.popen.append(subprocess.Popen(
                [str(self.standin)], cwd=self.town, env={**outside_tmux(), **env}, start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        super().start(timeout)
        claude = sum(m.running == "claude" for m in self.members) + len(self.loose)
        claude += sum(1 for _, cmd, _ in self.extra_sessions if str(self.standin) in cmd)
        self.wait_ready(claude, timeout)
        if lost := [m.session for m in self.members if m.outlives]:
            self.restart_server(lost, timeout)  # (waits out the grace of the sessions it launches again)
        else:
            time.sleep(max(0.0, self.grace - (time.monotonic() - created)))  # as World.start: judged as built
        return self

    def launch(self, member: Member, timeout: float = 60.0) -> None:
        """Launch one more agent's session now, on the running town (its pid file as ``member`` says), and wait until
        its Claude runs."""
        claude = len([p for p in self.standins() if (self.bin / ".ready" / str(p.pid)).exists()])
        self._town_sessions([member])
        self._pid_files([member])
        self.wait_ready(claude + (member.running == "claude"), timeout)

    def restart_server(self, lost: list[str], timeout: float = 60.0) -> None:
        """The town's server killed and started again (a crash; `gt down` then `gt up`) with every session but
        ``lost``: a Claude ignoring SIGHUP (node-era) outlives its server, re-parented outside tmux, its pid file as
        TrackPID left it; the others exit on SIGHUP and are launched again, their pid files rewritten."""
        server = psutil.Process(int(self._tmux("display-message", "-p", "#{pid}").strip()))
        self._tmux("kill-server")
        deadline = time.monotonic() + timeout
        while server.is_running() and server.status() != psutil.STATUS_ZOMBIE:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the town's tmux server {server.pid} did not exit in time")
            time.sleep(0.02)
        for m in self.members:
            m.outlives = m.outlives or m.session in lost
        kept = [m for m in self.members if not m.outlives]
        self._town_sessions(kept)
        created = time.monotonic()  # the sessions launched again exist from here on: their grace counts from now
        self._pid_files(kept)
        outliving = sum(m.running == "claude" and alive(self.panes.get(m.session, 0)) for m in self.members
                        if m.outlives)
        self.wait_ready(sum(m.running == "claude" for m in kept) + outliving + len(self.loose), timeout)
        time.sleep(max(0.0, self.grace - (time.monotonic() - created)))  # as World.start: judged as built

    def town_sessions(self) -> set[str]:
        with contextlib.suppress(subprocess.SubprocessError):
            return set(self._tmux("list-sessions", "-F", "#{session_name}", timeout=10).split())
        return set()

    def teardown(self) -> None:
        """End what this world started: the base world's, then the town's server by its socket."""
        super().teardown()
        with contextlib.suppress(subprocess.SubprocessError):
            self._tmux("kill-server", timeout=10)
        Path(default_socket_path(self.town_socket)).unlink(missing_ok=True)


def alive(pid: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return pid > 0 and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False


def lstart(pid: int) -> str:
    """`ps -o lstart= -p <pid>` under LC_ALL=C, trimmed, as Gas Town's processStartTime reads it."""
    return subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, check=False,
                          env={**os.environ, "LC_ALL": "C"}, timeout=10).stdout.strip()


def town_demo(root: Path, grace: float = 0.3) -> TownWorld:
    """Gas Town's demo: a healthy mayor and witness, a crew session running nothing (a person's), a zombie polecat
    (a shell only), a dead-pane refinery, an orphan Claude that outlived the town's server (its pid file names it),
    stale pid files (dead, reused), a bare one, bystanders (a person's session on the default server's stand-in,
    Claudes carrying another town's pair, a live session's, or a gone session's with nothing else)."""
    world = TownWorld(root, seed=20260430, grace=grace)
    world.member("hq-mayor", "mayor")
    world.member("gt-witness", "gastown/witness", "gastown", pid_file="bare")
    world.member("gt-crew-max", "gastown/crew/max", "gastown", "shell", pid_file=None)  # a person's: normal
    world.member("gt-furiosa", "gastown/polecats/furiosa", "gastown", "shell")  # zombie
    world.member("bd-refinery", "beads/refinery", "beads", "dead", pid_file=None)  # zombie
    world.member("bd-nux", "beads/polecats/nux", "beads", pid_file="dead")  # stale pid file
    world.member("hq-deacon", "deacon", pid_file="reused")  # stale pid file
    world.member("gt-slit", "gastown/polecats/slit", "gastown", outlives=True)  # orphan: its pid file names it
    world.gone_pair("gt-rictus", "gastown/polecats/rictus", "gastown")  # a gone session's pair alone: information
    other = world.env("gt-witness", "gastown/witness", "gastown")
    world.loose_claude({**other, "GT_ROOT": str(world.root / "elsewhere" / "gt")})  # another town's
    world.loose_claude(world.env("hq-mayor", "mayor", None))  # a live session's pair: inherited, information
    world.user_session("work", world.town)
    return world.start()


def town_bench(root: Path, agents: int) -> BenchWorld:
    """The bench's Gas Town round: ``agents`` sessions on the town's server, a tenth running Claude with a pid file,
    the rest crew running a shell; its floor what a snapshot must read of the town: one `list-panes -a` of its
    server (its sessions and their panes' processes, the live state too), each pane process's environment, every
    pid file."""
    live = max(1, agents // 10)
    world = TownWorld(root, grace=0.0)
    for i in range(agents):
        world.member(f"gt-p{i}" if i < live else f"gt-crew-c{i}", "gastown/polecats/p" if i < live else
                     f"gastown/crew/c{i}", "gastown", "claude" if i < live else "shell", "good" if i < live else None)
    started(world)

    def raw_read() -> None:
        for line in world._tmux("list-panes", "-a", "-F", FORMAT).splitlines():
            Path(f"/proc/{line.split(chr(9))[3]}/environ").read_bytes()  # pane_pid, the fourth field
        for path in (world.town / gastown.PIDS).iterdir():
            path.read_bytes()

    return BenchWorld(world, agents, agents, raw_read,
                      "list-panes -a of the town + its pane processes' environ + pid files")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
