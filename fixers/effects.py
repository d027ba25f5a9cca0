"""Every change this tool makes to the machine: signals to processes, tmux mutations, a manager's own commands
(Claude Code's `claude stop`) and the git worktrees its sessions leave.

Nothing else in the project signals a process or changes a tmux server; the readers only read.
Each effect proves its target's identity right before acting: a process by PID + start ticks
recorded in a snapshot (the plan's for an orphan, the verification's for a pane; never read at the kill
itself, which would prove nothing), a session by its tmux id on the same server process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import psutil

from healthchecks import processes, tmux
from healthchecks.processes import Proc, start_ticks
from healthchecks.programs import Role
from healthchecks.tmux import State, TmuxServer

from .outcome import Status


@dataclass(frozen=True)
class Ended:
    status: Status
    detail: str = ""


def _uid(proc: psutil.Process) -> int | None:
    try:
        return proc.uids().real
    except psutil.Error:
        return None


def _bound(pid: int, ticks: int) -> psutil.Process | None:
    """A psutil handle on exactly this process, or None. Made first, identity checked after: a PID
    reused before that is caught here, one reused later by psutil's own check at signal time."""
    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None
    return process if start_ticks(pid) == ticks else None


DEFUNCT = Ended(Status.ALREADY_GONE, "defunct; its parent has to reap it")


def identity_lost(pid: int, ticks: int) -> Ended | None:
    """Why ``pid`` is no longer the process identified by ``ticks`` (gone, exited but not reaped yet, or its PID
    reused), or None. A defunct process keeps its identity until its parent reaps it, yet has nothing left to end."""
    now = start_ticks(pid)
    if now is None:
        return Ended(Status.ALREADY_GONE)
    if now != ticks:
        return Ended(Status.SKIPPED, f"pid {pid} now belongs to another process (start time differs); not signalled")
    try:
        return DEFUNCT if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE else None
    except psutil.NoSuchProcess:
        return Ended(Status.ALREADY_GONE)
    except psutil.Error:
        return None


@dataclass(frozen=True)
class Table:
    """One read of the process table, indexed for ending trees: by pid, by parent, by group or session leader."""

    procs: dict[int, Proc]
    children: dict[int, list[int]]
    led: dict[int, list[Proc]]  # pid -> the processes whose process group or session it leads

    @classmethod
    def read(cls) -> Table:
        procs = {p.pid: p for p in processes.scan(lambda *_: False, exe=False)}
        led: dict[int, list[Proc]] = {}
        for p in procs.values():
            for leader in {p.pgid, p.sid}:
                led.setdefault(leader, []).append(p)
        return cls(procs, processes.children_of(procs.values()), led)


def _members(pid: int, ticks: int, table: Table, group: bool) -> list[int]:
    """The root's descendants, and with ``group`` every process of the process group or session it leads
    (a background job of a pane re-parented to PID 1) with their descendants. None older than the root:
    a member cannot predate the group's leader."""
    found = processes.descendants(table.children, pid)
    if group:
        seen = set(found)
        for proc in table.led.get(pid, ()):
            if proc.start_ticks >= ticks and proc.pid not in seen:
                for member in processes.descendants(table.children, proc.pid):
                    if member not in seen:
                        seen.add(member)
                        found.append(member)
    return found[1:]


def _tree(
    pid: int,
    ticks: int,
    protected: frozenset[int],
    table: Table,
    group: bool,
) -> list[psutil.Process] | Ended:
    """The root and the members that may be signalled: same user as this tool, never the suite itself."""
    me = os.geteuid()
    root = _bound(pid, ticks)
    if root is None:
        return identity_lost(pid, ticks) or Ended(Status.ALREADY_GONE)
    try:
        if root.status() == psutil.STATUS_ZOMBIE:
            return DEFUNCT
        if (uid := _uid(root)) != me:
            return Ended(Status.SKIPPED, f"owned by uid {uid}, not by this user (uid {me}); not signalled")
    except psutil.NoSuchProcess:
        return Ended(Status.ALREADY_GONE)
    except psutil.AccessDenied:
        return Ended(Status.FAILED, f"access denied reading pid {pid}")
    tree = [root]
    for child in _members(pid, ticks, table, group):
        process = _bound(child, table.procs[child].start_ticks)
        if process is not None and child not in protected and _uid(process) == me:
            tree.append(process)
    return tree


def _send(procs: list[psutil.Process], signal: Callable[[psutil.Process], None],
          denied: set[int]) -> list[psutil.Process]:
    """Signal each process (psutil refuses a PID reused since its object was made); the ones signalled, in order.
    A process that is gone is skipped; one this user may not signal is added to ``denied``."""
    sent = []
    for proc in procs:
        try:
            signal(proc)
            sent.append(proc)
        except psutil.NoSuchProcess:
            pass
        except psutil.AccessDenied:
            denied.add(proc.pid)
    return sent


@dataclass(frozen=True)
class _Signals:
    """What the SIGTERM and SIGKILL rounds of end_trees did, by PID: how each tree's root ended follows from it."""

    denied: set[int]
    terminated: set[int]
    killed: set[int]
    survivors: set[int]
    timeout: float

    def ended(self, tree: list[psutil.Process]) -> Ended:
        root = tree[0] if tree else None
        if root is None:
            return Ended(Status.SKIPPED, "nothing to signal")
        if root.pid in self.denied:
            return Ended(Status.FAILED, f"access denied signalling pid {root.pid}")
        if root.pid in self.survivors:
            return Ended(Status.FAILED, f"pid {root.pid} survived SIGKILL")
        if root.pid not in self.terminated:
            return Ended(Status.ALREADY_GONE)
        how = f"SIGKILL after {self.timeout:g}s" if root.pid in self.killed else "SIGTERM"
        return Ended(Status.DONE, f"{len(tree)} process(es) ended ({how})")


def end_trees(
    roots: Iterable[tuple[Hashable, int, int]],
    protected: frozenset[int],
    timeout: float = 5.0,
    *,
    group: bool = False,
) -> dict[Hashable, Ended]:
    """SIGTERM every tree, wait for all of them together (bounded), SIGKILL what is left.

    ``roots`` are (key, pid, start ticks); the result maps each key to how its root ended.
    With ``group`` (a pane's process), the root's process group and session go too.
    ``protected`` PIDs (this suite and its ancestors) are never signalled.
    """
    result: dict[Hashable, Ended] = {}
    trees: dict[Hashable, list[psutil.Process]] = {}
    table = Table.read()  # one read for every tree, just now
    for key, pid, ticks in roots:
        if pid in protected:
            result[key] = Ended(Status.SKIPPED, "this suite or one of its ancestors; never signalled")
            continue
        tree = _tree(pid, ticks, protected, table, group)
        if isinstance(tree, Ended):
            result[key] = tree
        else:
            trees[key] = tree
    denied: set[int] = set()
    signalled = _send([proc for tree in trees.values() for proc in tree], psutil.Process.terminate, denied)
    _, alive = psutil.wait_procs(signalled, timeout=timeout)
    _send(alive, psutil.Process.kill, denied)
    _, still = psutil.wait_procs(alive, timeout=2.0)
    signals = _Signals(denied, {p.pid for p in signalled}, {p.pid for p in alive}, {p.pid for p in still}, timeout)
    result.update((key, signals.ended(tree)) for key, tree in trees.items())
    return result


@dataclass(frozen=True)
class Agent:
    """One agent to end: its process (a pair's wrapper) and the pair's children, each (pid, start ticks) as the plan
    saw it, and which of them the program's Ending signals first (programs.Role)."""

    pid: int
    ticks: int
    children: tuple[tuple[int, int], ...] = ()
    role: Role = Role.ONLY


K = TypeVar("K", bound=Hashable)


def end_agents(agents: Mapping[K, Agent], protected: frozenset[int], timeout: float = 5.0) -> dict[K, Ended]:
    """End each agent whole, in two rounds of end_trees (every process re-verified by its own pid + start ticks at
    its signal). A pair whose wrapper ignores signals (Role.CHILD: Gemini's launcher, cursor-agent's shell): its
    child first (SIGTERM, SIGKILL after the grace), then the wrapper, which exits with it (or is ended). Any other:
    the process first (Codex's wrapper forwards the signal), then each child still there is ended too."""
    first: list[tuple[Hashable, int, int]] = []
    then: list[tuple[Hashable, int, int]] = []
    for key, agent in agents.items():
        parts = [((key, pid), pid, ticks) for pid, ticks in agent.children]
        own = ((key, agent.pid), agent.pid, agent.ticks)
        early, late = (parts, [own]) if agent.role is Role.CHILD and parts else ([own], parts)
        first += early
        then += late
    ended = end_trees(first, protected, timeout)
    if then:  # a second round (and its process table, read just then) only for pairs: lone agents need one
        ended.update(end_trees(then, protected, timeout))
    return {key: _whole(agent, {pid: ended[(key, pid)] for pid in (agent.pid, *(c for c, _ in agent.children))})
            for key, agent in agents.items()}


def _whole(agent: Agent, parts: dict[int, Ended]) -> Ended:
    """How an agent ended, from how each of its processes did: failed if any failed, done if any was signalled."""
    own = parts[agent.pid]
    if not agent.children:
        return own
    statuses = {e.status for e in parts.values()}
    status = Status.FAILED if Status.FAILED in statuses else Status.DONE if Status.DONE in statuses else own.status
    return Ended(status, "; ".join(f"pid {pid}: {e.detail or e.status.value}" for pid, e in parts.items()))


def kill_sessions(server: TmuxServer, ids: set[str], timeout: float, attempts: int = 5) -> tuple[TmuxServer, str]:
    """kill-session by id whatever of ``ids`` is still live; returns (the last read, why it failed).

    tmux stops a command sequence at its first error, and a session whose pane processes just ended
    closes by itself at any moment: so kill what is live, read again, repeat (bounded). Ids restart
    with a new server, so a server that restarted since the checks is left alone.
    """
    socket = _socket(server)
    for _ in range(attempts):
        now = tmux.read_server(socket, timeout, label=server.label)
        if not now.reachable:
            return now, f"tmux unreachable: {now.reason}"
        if now.server_pid is not None and now.server_pid != server.server_pid:  # None: no session left
            return now, f"tmux server restarted (pid {server.server_pid} -> {now.server_pid}); sessions not killed"
        live = sorted(ids & {p.session_id for p in now.panes})
        if not live:
            return now, ""
        command = [word for session_id in live for word in ("kill-session", "-t", session_id, ";")]
        try:
            subprocess.run(tmux.argv(socket, *command[:-1]), capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return now, f"tmux: {exc}"
    return tmux.read_server(socket, timeout, label=server.label), ""


def _socket(server: TmuxServer) -> str | None:
    """How tmux is told which server: its -L name or socket path, None for the default server."""
    return None if server.label == "default" else server.label


def _same_server(server: TmuxServer, timeout: float) -> tuple[TmuxServer, str]:
    """The server read again now, and why it must not be touched ('' when it is the same server process)."""
    socket = _socket(server)
    now = tmux.read_server(socket, timeout, label=server.label)
    if not now.reachable:
        return now, f"tmux unreachable: {now.reason}"
    if None not in (now.server_pid, server.server_pid) and now.server_pid != server.server_pid:
        return now, f"tmux server restarted (pid {server.server_pid} -> {now.server_pid}); not touched"
    return now, ""


def kill_panes(server: TmuxServer, panes: dict[str, int | None], timeout: float) -> dict[str, str]:
    """kill-pane each pane id still live on the same server process and still holding the process it held (its
    pid, or none for a dead pane); returns pane id -> why it was not killed ('' when it was, or is gone)."""
    now, why = _same_server(server, timeout)
    if why:
        return dict.fromkeys(panes, why)
    live = {p.pane_id: p for p in now.panes}
    result, kill = {}, []
    for pane_id, pid in panes.items():
        pane = live.get(pane_id)
        if pane is None:
            result[pane_id] = ""
        elif not pane.dead and pane.pid != pid and pid is not None and start_ticks(pane.pid) is not None:
            result[pane_id] = f"pane {pane_id} now runs another process (pid {pane.pid}); not killed"
        else:
            kill.append(pane_id)
    socket = _socket(server)
    for pane_id in kill:
        try:
            subprocess.run(tmux.argv(socket, "kill-pane", "-t", pane_id), capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            result[pane_id] = f"tmux: {exc}"
            continue
        result[pane_id] = ""
    after = tmux.read_server(socket, timeout, label=server.label)
    still = {p.pane_id for p in after.panes} if after.server_pid == server.server_pid else set()
    return {k: (v or (f"pane {k} still live" if k in still and k in kill else "")) for k, v in result.items()}


def kill_server(server: TmuxServer, panes: set[str], timeout: float) -> str:
    """kill-server, only when it is the same server process and holds no pane but ``panes``; '' when done."""
    if server.label == "default":
        return "the default tmux server is never killed"
    now, why = _same_server(server, timeout)
    if why:
        return why
    if now.state is State.NO_SERVER:
        return ""  # it went by itself (its last pane closed)
    # an empty server lists no pane to name its pid: the one answering on the socket must be the one judged (whose
    # pid the snapshot took from the process listening there), or a server restarted empty there would be killed
    answering = now.server_pid or tmux.answering_pid(_socket(server), timeout)
    if answering is None and tmux.read_server(_socket(server), timeout, label=server.label).state is State.NO_SERVER:
        return ""  # it went by itself between the two reads (its last session closed): nothing left to kill
    if server.server_pid is None or answering != server.server_pid:
        return f"tmux server's process not confirmed (pid {server.server_pid} -> {answering}); not killed"
    if extra := sorted({p.pane_id for p in now.panes} - panes):
        return f"it now holds pane(s) {', '.join(extra)} that were not verified; not killed"
    socket = _socket(server)
    try:
        subprocess.run(tmux.argv(socket, "kill-server"), capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"tmux: {exc}"
    return ""


# --- A manager's own command line, and the git worktrees its sessions leave (Claude Code's background agents) -----
COMMAND_OUTPUT = 4096  # of a manager's or git's output kept for a person


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without git's redirections (GIT_DIR and friends would point git elsewhere)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(extra)
    return env


def _run(argv: list[str], timeout: float, env: dict[str, str], cwd: str | None = None) -> tuple[int, str]:
    """rc and the output (stdout then stderr, bounded) of one command, within ``timeout`` (rc -1: it did not run or
    finish)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout, env=env,
                              cwd=cwd, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return -1, f"no answer within {timeout:.0f} s"
    except OSError as exc:
        return -1, f"cannot run {argv[0]}: {exc.strerror}"
    return done.returncode, (done.stdout + done.stderr).strip()[:COMMAND_OUTPUT]


STOP_TRY = 20.0  # the least time one `claude stop` is given (it answers in ~1.4 s; a loaded machine starts it slowly)


def _stop_unconfirmed(rc: int, out: str) -> bool:
    """`claude stop` could not confirm yet, and saying so: rc 1 "couldn't confirm ... Try again in a moment" (without
    its daemon, while the job's pty host has not exited) or rc 0 with no output (the host's socket did not answer
    before Claude Code's own process ended)."""
    return (rc == 1 and "Try again" in out) or (rc == 0 and not out)


def claude_stop(exe: str, config_dir: str, short: str, timeout: float) -> Ended:
    """End one background job through Claude Code's own `claude stop <short>`, run with the person's config dir:
    done only when it exits 0 saying `stopped <short>`; retried while it cannot confirm yet, within ``timeout``."""
    start = time.monotonic()
    tries = 0
    while True:
        tries += 1
        rc, out = _run([exe, "stop", short], max(STOP_TRY, start + timeout - time.monotonic()),
                       _clean_env({"CLAUDE_CONFIG_DIR": config_dir}))
        if rc == 0 and out.splitlines()[:1] == [f"stopped {short}"]:
            return Ended(Status.DONE, f"`claude stop {short}`: {out}" + (f" (try {tries})" if tries > 1 else ""))
        if not _stop_unconfirmed(rc, out):
            return Ended(Status.FAILED, f"`claude stop {short}` exited {rc}: {out or 'no output'}")
        if time.monotonic() + 1 > start + timeout:
            return Ended(Status.FAILED, f"`claude stop {short}` could not confirm the job stopped in {tries} tries "
                                        f"over {time.monotonic() - start:.0f} s; last it exited {rc}: "
                                        f"{out or 'no output'}; run it again once the job's processes have exited")
        time.sleep(1)


def git_binary() -> str | None:
    """The git this user's PATH names, resolved once to its real file."""
    found = shutil.which("git")
    return os.path.realpath(found) if found else None


def _git(git: str, repo: str, *args: str, timeout: float) -> tuple[int, str]:
    return _run([git, "-C", repo, *args], timeout, _clean_env({"GIT_OPTIONAL_LOCKS": "0"}))


def _locked_by(git: str, repo: str, path: str, timeout: float) -> str | None:
    """The lock reason git records for the worktree at ``path`` now (None: not a locked worktree of ``repo``)."""
    rc, out = _git(git, repo, "worktree", "list", "--porcelain", "-z", timeout=timeout)
    if rc != 0:
        return None
    for block in out.split("\0\0"):
        fields = block.strip("\0").split("\0")
        if fields and fields[0] == f"worktree {path}":
            return next((f.removeprefix("locked ") for f in fields if f.startswith("locked")), None)
    return None


def worktree_loss(git: str, repo: str, path: str, branch: str, timeout: float) -> str | None:
    """What removing the worktree would lose (one line), or None when nothing: any change, untracked or ignored
    file, or a branch head no other branch contains."""
    rc, out = _git(git, path, "status", "--porcelain", "--untracked-files=all", "--ignored", timeout=timeout)
    if rc != 0 or out:
        return f"it has uncommitted, untracked or ignored files ({out.splitlines()[0] if out else f'rc {rc}'})"
    rc, head = _git(git, path, "rev-parse", "--verify", "HEAD", timeout=timeout)
    if rc != 0:
        return f"its HEAD cannot be read ({head})"
    rc, out = _git(git, repo, "for-each-ref", "--contains", head, "--format=%(refname)", "refs/heads/",
                   timeout=timeout)
    others = [ref for ref in out.splitlines() if ref != f"refs/heads/{branch}"] if rc == 0 else []
    return None if others else f"its head {head[:12]} is in no other branch"


def remove_worktree(repo: str, path: str, pid: int, ticks: int, branch: str, timeout: float) -> Ended:
    """`git worktree unlock` then `git worktree remove` (never --force) of a worktree whose lock still reads
    `... (pid P start T)` for this very dead agent, and only when nothing can be lost; the branch is kept."""
    git = git_binary()
    if git is None:
        return Ended(Status.FAILED, "git is not installed")
    reason = _locked_by(git, repo, path, timeout)
    if reason is None or f"(pid {pid} start {ticks})" not in reason:
        return Ended(Status.SKIPPED, "its lock no longer names that agent; left alone")
    if start_ticks(pid) == ticks:
        return Ended(Status.SKIPPED, f"its agent (pid {pid}) runs again; left alone")
    if loss := worktree_loss(git, repo, path, branch, timeout):
        how = f"git -C '{repo}' worktree unlock '{path}' && git -C '{repo}' worktree remove '{path}'"
        return Ended(Status.REFUSED, f"{loss}: nothing is removed that could be lost; a person would run: {how}")
    for args in (("worktree", "unlock", path), ("worktree", "remove", path)):
        rc, out = _git(git, repo, *args, timeout=timeout)
        if rc != 0:
            return Ended(Status.FAILED, f"git {' '.join(args[:2])} exited {rc}: {out}")
    return Ended(Status.DONE, f"unlocked and removed (git worktree remove); branch {branch or '(detached)'} kept")
