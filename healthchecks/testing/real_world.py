"""A fleet of the real Claude Code, deployed the way the current orchestrator (E5) deploys it, in a private tmux server.

Each agent's session runs the orchestrator's own pipeline:
``set -o pipefail; cd '<client dir>' && cat '<prompt file>' | <claude> --print --output-format stream-json
--input-format text --verbose --dangerously-skip-permissions --model <m> | tee '<log>'; exit_code=$?;
python3 '<notifier>' ...``. Claude talks to a scripted Messages API on 127.0.0.1 (messages_api.py); the prompt
names its script (``hc-script:hang`` keeps it waiting for an answer, ``hc-script:bash`` has it run a long Bash
tool command) and a label, so the world knows when each Claude has started. The notifier stand-in
(``completion_notifier.py``) hangs, as a notifier waiting on a busy database does: a session whose Claude was
killed keeps its shell and notifier, the zombie the checks must find.

Teardown ends what the world started, found by its own marks: its private tmux server by socket, and every
process whose working directory lies in the world's private directory (Claude, its Bash tool's own-session
children, the people's `claude` runs, the pipelines).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil

from ..settings import Settings
from ..sightings import FILE as SIGHTINGS_FILE
from ..tmux import default_socket_path
from . import real_claude
from .messages_api import MessagesAPI
from .world import AgentSpec, Running, World, _stored, _tq

NOTIFIER = """import sys, time
# Stand-in for the orchestrator's completion notifier, hanging as one waiting on a busy database does.
while True:
    time.sleep(3600)
"""
HEADLESS = ["--print", "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"]


class RealWorld(World):
    """A World whose Claude is the real binary in one install layout (real_claude.LAYOUTS)."""

    def __init__(self, root: Path, layout: str, exe: Path, api: MessagesAPI, *, grace: float = 1.0) -> None:
        super().__init__(root, grace=grace, era="sqlite")
        self.api = api
        self.layout = layout
        self.claude_path = real_claude.layout(layout, exe, self.root, self.home)
        self.env = real_claude.environment(api.url, api.proxy_url, self.home)
        self.notifier = self.root / "orchestrator" / "completion_notifier.py"
        self.notifier.parent.mkdir(parents=True)
        self.notifier.write_text(NOTIFIER)
        self.scripts: dict[str, str] = {}  # agent id -> its prompt's script
        self.binaries: dict[str, Path] = {}  # agent id -> another path to exec than the layout's
        self.people: list[subprocess.Popen[bytes]] = []
        self.labels: set[str] = set()  # what the API must have been asked before the world is ready
        self.detached: set[str] = set()

    @property
    def settings(self) -> Settings:
        """The defaults a person would run with (the real binary recognised as installed), on this world's server."""
        return Settings(workspace=self.workspace, tmux_sockets=(self.socket_name,), grace=self.grace,
                        sightings=self.root / "state" / SIGHTINGS_FILE)

    def real_agent(self, status: str | None, running: Running, script: str = "hang", binary: Path | None = None,
                   detached: bool = False, **kwargs: Any) -> str:
        """An agent; ``detached``: its Claude alone is launched with setsid (`cat … | setsid claude … | tee …`)."""
        agent_id = self.agent(status, running, stdin_prompt=True, **kwargs)
        self.scripts[agent_id] = script
        if detached:
            self.detached.add(agent_id)
        if binary is not None:
            self.binaries[agent_id] = binary
        if running is not None:
            self.labels.add(agent_id)
        return agent_id

    def unrecognised_binary(self, name: str = "assistant") -> Path:
        """The same binary under a name and path no matcher knows (a hardlink, never a 400 MB copy)."""
        path = self.root / "tools" / name
        real_claude._link(self.claude_path.resolve(), path)
        return path

    def prompt(self, spec: AgentSpec) -> str:
        script = self.scripts.get(spec.id, "hang")
        return f"hc-script:{script} hc-label:{spec.id} You are a worker agent. Your agent id is {spec.id}."

    def agent_command(self, spec: AgentSpec) -> str:
        """The orchestrator's E5 deploy command, with the real Claude."""
        task_dir = self.workspace / spec.task_id
        prompt_file = task_dir / f"agent_prompt_{spec.id}.txt"
        prompt_file.parent.mkdir(parents=True, exist_ok=True)
        prompt_file.write_text(self.prompt(spec))
        log = task_dir / "logs" / f"{spec.id}_stream.jsonl"
        binary = shlex.quote(str(self.binaries.get(spec.id, self.claude_path)))
        if spec.id in self.detached:
            binary = f"setsid {binary}"
        args = "--print --output-format stream-json --input-format text --verbose --dangerously-skip-permissions"
        pipeline = f"cat {shlex.quote(str(prompt_file))} | {binary} {args} --model sonnet | tee {shlex.quote(str(log))}"
        if spec.running == "orphan":  # a setsid-detached launch: the pipeline outlives its pane
            pipeline = f"setsid -w bash -c {shlex.quote('set -o pipefail; ' + pipeline)}"
        notify = f"python3 {shlex.quote(str(self.notifier))} --agent {spec.id} --exit-code $exit_code"
        return (f"set -o pipefail; cd {shlex.quote(str(self.client_dir))} && {pipeline}; exit_code=$?; {notify}")

    def person_session(self, name: str = "work") -> None:
        """A person's interactive `claude` in their own session of the same server, in the project directory."""
        self.extra_sessions.append((name, shlex.quote(str(self.claude_path)), self.client_dir))

    def person_headless(self, label: str, flags: bool) -> None:
        """A person's `claude -p`, run from the project directory outside tmux, with or without the four flags."""
        args = [str(self.claude_path), *(HEADLESS if flags else ["-p"]), f"hc-script:hang hc-label:{label} summarize"]
        self.labels.add(label)
        self.people.append(subprocess.Popen(args, cwd=self.client_dir, env=self.env, start_new_session=True,
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))

    # -- bringing it to life ---------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> RealWorld:
        self.client_dir.mkdir(parents=True, exist_ok=True)
        self.write_registries()
        sessions = [(a.session, self.agent_command(a), self.client_dir) for a in self.agents if a.running]
        sessions += self.extra_sessions
        script = self.root / "sessions.tmux"
        script.write_text("".join(f"new-session -d -s {_tq(n)} -c {_tq(str(c))} {_tq(c_)}\n" for n, c_, c in sessions))
        subprocess.run(["tmux", "-L", self.socket_name, "-f", "/dev/null", "start-server", ";", "set", "-g",
                        "exit-empty", "off", ";", "set", "-g", "default-shell", "/bin/bash", ";", "source-file",
                        str(script)], check=True, env=self.env, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
        created = time.monotonic()
        self.wait(lambda: self.labels <= self.api.labels(), timeout, "every Claude asked the scripted API")
        orphans = [a for a in self.agents if a.running == "orphan"]
        if orphans:
            self.orphan_pids.update({a.id: self.claude_of(a.id) for a in orphans})
            self.kill_sessions([a.session for a in orphans])
            self.wait(lambda: not self.session_pids(a.session for a in orphans), timeout, "orphans left their panes")
        time.sleep(max(0.0, self.grace - (time.monotonic() - created)))
        return self

    @staticmethod
    def wait(condition: Callable[[], object], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"not in {timeout:g}s: {what}")
            time.sleep(0.05)

    def pane_pids(self) -> dict[str, int]:
        """session name -> its first pane's process."""
        listing = subprocess.run(["tmux", "-L", self.socket_name, "list-panes", "-a", "-F",
                                  "#{session_name}\t#{pane_pid}"], capture_output=True, text=True,
                                 stdin=subprocess.DEVNULL, timeout=60)
        return {n: int(p) for n, p in (line.split("\t") for line in listing.stdout.splitlines())}

    def session_pids(self, names: Iterable[str]) -> set[int]:
        """Every process below the panes of these sessions."""
        panes = self.pane_pids()
        found: set[int] = set()
        for name in names:
            if (root := panes.get(_stored(name))) is not None:
                with contextlib.suppress(psutil.Error):
                    found |= {root, *(c.pid for c in psutil.Process(root).children(recursive=True))}
        return found

    def claude_of(self, agent_id: str) -> int:
        """The pid of the real Claude below this agent's pane (found by its binary)."""
        binaries = {str(self.claude_path.resolve()), str(self.claude_path)} | {str(b) for b in self.binaries.values()}
        for pid in self.session_pids([f"agent_{agent_id}"]):
            with contextlib.suppress(psutil.Error):
                if psutil.Process(pid).exe() in binaries:
                    return pid
        raise LookupError(f"no Claude below agent {agent_id}'s pane")

    def tool_children(self, claude: int) -> list[psutil.Process]:
        """A Claude's Bash tool processes: its descendants in a session of their own."""
        with contextlib.suppress(psutil.Error):
            return [c for c in psutil.Process(claude).children(recursive=True) if os.getsid(c.pid) != os.getsid(claude)]
        return []

    def kill_claude(self, agent_id: str) -> tuple[int, list[int]]:
        """SIGKILL an agent's Claude in its pane (its Bash tool's own-session children survive it); returns its pid
        and those children's, once the pane runs only its shell and the notifier."""
        claude = self.claude_of(agent_id)
        tools = [p.pid for p in self.tool_children(claude)]
        os.kill(claude, signal.SIGKILL)

        def settled() -> bool:
            pids = self.session_pids([f"agent_{agent_id}"])
            return claude not in pids and only_shell_and_notifier(pids, self.notifier)

        self.wait(settled, 30, f"agent {agent_id}'s pane settled after its Claude was killed")
        return claude, tools

    def teardown(self) -> None:
        """End exactly what this world started: its tmux server by socket, its processes by their directory."""
        with contextlib.suppress(Exception):
            if self.server.is_alive():
                self.server.kill()
        root = str(self.root.resolve())
        mine = []
        for p in psutil.process_iter(["cwd", "uids"]):
            cwd = p.info["cwd"] or ""
            if (cwd == root or cwd.startswith(root + "/")) and p.pid != os.getpid():
                mine.append(p)
        for p in mine:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(mine, timeout=10)
        for popen in self.people:
            with contextlib.suppress(Exception):
                popen.wait(timeout=10)
        Path(default_socket_path(self.socket_name)).unlink(missing_ok=True)


def only_shell_and_notifier(pids: Iterable[int], notifier: Path) -> bool:
    """The pane holds its shell and the notifier itself, nothing else. Its arguments naming the notifier prove
    nothing: `python3` may be a launcher (a pyenv shim runs `env`, `readlink`, `basename` ... in the pane before it
    execs the interpreter), and the check rightly calls a pane running those working."""
    kinds = [_kind(pid, str(notifier)) for pid in pids]
    return "notifier" in kinds and set(kinds) <= {"shell", "notifier"}


def _kind(pid: int, notifier: str) -> str:
    """"shell", "notifier" (a python interpreter running it), or "other" (anything else, or gone meanwhile)."""
    try:
        proc = psutil.Process(pid)
        binary, argv = Path(proc.exe()).name, proc.cmdline()
    except (psutil.Error, OSError):
        return "other"
    if binary in ("bash", "sh"):
        return "shell"
    return "notifier" if re.fullmatch(r"python[0-9.]*", binary) and argv[1:2] == [notifier] else "other"

