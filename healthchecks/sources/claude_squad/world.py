"""claude-squad's world for tests, its demo and its bench world, written exactly as it writes its files (the
program is not run).

It reuses the shared world's machinery (a private tmux server, Claude stand-ins found by their unique names,
teardown by PID and by socket) and renders claude-squad's store instead of the orchestrator's registries.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ...settings import Settings
from ...testing.bench import BenchWorld, started
from ...testing.world import World, outside_tmux
from . import reader as claude_squad

# claude-squad's status integers (session/instance.go): Running 0, Ready 1, Loading 2, Paused 3.
RUNNING, READY, LOADING, PAUSED = 0, 1, 2, 3


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class SquadWorld(World):
    """A claude-squad directory (`state.json`, `worktrees/`), its sessions on a private server (standing in for
    the default server claude-squad uses), Claude stand-ins run as its `program`, and bystanders."""

    def __init__(self, root: Path, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.workspace = self.root / "squad"
        self.project = self.root / "project"  # the repository its instances branch from
        (self.workspace / "worktrees").mkdir(parents=True, exist_ok=True)
        self.project.mkdir(exist_ok=True)
        self._git("init", "-q", "-b", "main")
        self._git("commit", "-q", "--allow-empty", "-m", "start")
        self.instances: list[dict[str, Any]] = []
        self.loose: list[Path] = []  # cwd of each Claude started outside tmux (orphans, a person's)

    @property
    def settings(self) -> Settings:
        return Settings(workspace=self.workspace, tmux_sockets=(self.socket_name,),
                        claude_match=f"^{self.standin.name}$", grace=self.grace, source=claude_squad.NAME)

    @property
    def global_path(self) -> Path:
        return self.state_path

    @property
    def state_path(self) -> Path:
        return self.workspace / claude_squad.STATE

    def _git(self, *args: str) -> None:
        """git in the instances' repository, with no configuration of this machine's (its identity fixed)."""
        env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "hc",
               "GIT_AUTHOR_EMAIL": "hc@example.invalid", "GIT_COMMITTER_NAME": "hc",
               "GIT_COMMITTER_EMAIL": "hc@example.invalid"}
        subprocess.run(["git", "-C", str(self.project), *args], check=True, env=env, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=60)

    def instance(self, title: str, status: int = RUNNING, running: str | None = "claude", *, lost: bool = False,
                 started_ago: float = 600, worktree_path: str | None = None) -> dict[str, Any]:
        """One instance as claude-squad keeps it. ``running``: "claude" in its session, "shell" (no Claude),
        "orphan" (its Claude outside tmux, working in its worktree), None (no session). ``lost``: its record is
        gone (another claude-squad process wrote over it) while its session and worktree stay. ``worktree_path``:
        recorded instead of the worktree claude-squad made (a hand-edited or hostile record)."""
        branch = f"hc/{title.replace(' ', '-')}"
        worktree = self.workspace / "worktrees" / f"{branch.replace('/', '-')}_{secrets.token_hex(8)}"
        if status != PAUSED:  # as claude-squad makes one (`git worktree add`); Pause removes it, keeps the branch
            self._git("worktree", "add", "-q", "-b", branch, str(worktree))
        now = datetime.now(timezone.utc)
        record = {
            "title": title, "path": str(self.project), "branch": branch, "status": status, "height": 40,
            "width": 120, "created_at": _rfc3339(now - timedelta(seconds=started_ago)),
            "updated_at": _rfc3339(now), "auto_yes": False, "program": str(self.standin),
            "worktree": {"repo_path": str(self.project), "worktree_path": worktree_path or str(worktree),
                         "session_name": title, "branch_name": branch,
                         "base_commit_sha": secrets.token_hex(20), "is_existing_branch": False},
            "diff_stats": {"added": 0, "removed": 0, "content": ""},
        }
        if not lost:
            self.instances.append(record)
        cwd = worktree if worktree.exists() else self.project
        name = claude_squad.session_name(title)
        if running == "claude":
            self.extra_sessions.append((name, shlex.quote(str(self.standin)), cwd))
        elif running == "shell":
            self.extra_sessions.append((name, "cat", cwd))
        elif running == "orphan":
            self.loose.append(cwd)
        return record

    def run_program(self, record: dict[str, Any], command: str, argv: list[str], env: dict[str, str],
                    shell: bool = True) -> None:
        """An instance made with ``running=None`` runs another agent program in its pane: ``argv`` with only
        ``env`` (a real program's offline environment), recorded as claude-squad records it (`program`: the
        command, ``command``). A shell stays in the pane when the program ends, as after a person's Ctrl-C; without
        ``shell`` the program is the pane's own process, as claude-squad starts it (a shell leading the pane's
        session would hang up the program's whole process group when kill-session ends that shell)."""
        record["program"] = command
        launch = shlex.join(["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv])
        cwd = Path(record["worktree"]["worktree_path"])
        command_line = f"{launch}; exec sh" if shell else launch
        self.extra_sessions.append((claude_squad.session_name(record["title"]), command_line, cwd))

    def persons_claude(self, cwd: Path) -> None:
        """A person's own `claude` outside tmux, working in ``cwd`` (their project: never this fleet's)."""
        self.loose.append(cwd)

    def write_registries(self, *_: object, **__: object) -> None:
        """As claude-squad's SaveInstances does: json.MarshalIndent, two spaces, no lock."""
        state = {"help_screens_seen": 0, "instances": self.instances}
        self.state_path.write_text(json.dumps(state, indent=2))

    def start(self, timeout: float = 60.0) -> SquadWorld:
        self.write_registries()
        for cwd in self.loose:
            self.popen.append(subprocess.Popen(
                [str(self.standin)], cwd=cwd, env=outside_tmux(), start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        super().start(timeout)
        in_sessions = sum(1 for _, cmd, _ in self.extra_sessions if str(self.standin) in cmd)
        self.wait_ready(in_sessions + len(self.loose), timeout)
        return self


def squad_demo(root: Path, grace: float = 0.3) -> SquadWorld:
    """claude-squad's demo: a healthy pair, a paused instance keeping its session, a ghost, a zombie, an orphan
    working in its worktree, a record lost to an unlocked write, a person's `work` session and own Claude."""
    world = SquadWorld(root, seed=20251029, grace=grace)
    world.instance("fix auth", READY)
    world.instance("add tests", RUNNING)
    world.instance("refactor.db layer", PAUSED)  # paused since v1.0.10: session kept for Resume
    world.instance("docs pass", RUNNING, None)  # ghost
    world.instance("lint", READY, "shell")  # zombie
    world.instance("perf", READY, "orphan")  # its session gone, its Claude still working in its worktree
    world.instance("migrate", READY, "claude", lost=True)  # lost record
    world.user_session("work", world.project)
    world.persons_claude(world.project)
    return world.start()


def squad_bench(root: Path, agents: int) -> BenchWorld:
    """The bench's claude-squad round: ``agents`` instances, a tenth ready with Claude in their sessions, the rest
    paused without one; its floor one json.loads of state.json."""
    live = max(1, agents // 10)
    world = SquadWorld(root, seed=agents)
    for i in range(agents):
        world.instance(f"task {i}", READY if i < live else PAUSED, "claude" if i < live else None)
    started(world)
    return BenchWorld(world, agents, live, lambda: json.loads(world.state_path.read_bytes()),
                      "json.loads of state.json")
