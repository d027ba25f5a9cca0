"""Every agent program's orphans, ending pairs and leftovers (issue 28, items 2 and 3), on stand-ins shaped as the
real programs run (DOMAIN.md, "Other agent programs"): a Gemini CLI whose launcher ignores SIGTERM, SIGINT and SIGHUP
and whose relaunched child ignores SIGHUP (both outlive tmux kill-session), and Codex's app-server daemon (a copy of
its binary under ``~/.codex/packages/``). The real programs: test_programs_fleet.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
from helpers import alive, fix_in_process, plan_now

from healthchecks import processes
from healthchecks.observe import observe
from healthchecks.programs import GEMINI
from healthchecks.sources.claude_squad import reader as claude_squad
from healthchecks.sources.claude_squad.world import READY, SquadWorld

GEMINI_SCRIPT = """import os, signal, subprocess, sys, time
if os.environ.get("GEMINI_CLI_NO_RELAUNCH"):  # the relaunched child: SIGTERM ends it, SIGHUP does not
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while True:
        time.sleep(60)
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # the launcher ignores them, and exits with its child
    signal.signal(s, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, *sys.argv], env={**os.environ, "GEMINI_CLI_NO_RELAUNCH": "true"})
sys.exit(child.wait())
"""


def gemini_standin(root: Path) -> list[str]:
    """Gemini CLI as npm lays it out (`.bin/gemini` -> `@google/gemini-cli/bundle/gemini.js`), run by a `node` that
    is a copy of python (the scan knows node by its file name, the program by its script's real path)."""
    modules = root / "node_modules"
    script = modules / "@google" / "gemini-cli" / "bundle" / "gemini.js"
    script.parent.mkdir(parents=True)
    script.write_text(GEMINI_SCRIPT)
    (modules / ".bin").mkdir()
    (modules / ".bin" / "gemini").symlink_to(script)
    node = root / "bin" / "node"
    node.parent.mkdir()
    shutil.copy2("/usr/bin/python3" if os.path.exists("/usr/bin/python3") else os.path.realpath(sys.executable), node)
    return [str(node), str(modules / ".bin" / "gemini")]


def codex_daemon(root: Path) -> Path:
    """Codex's app-server daemon's binary: a copy of sleep where Codex copies its own."""
    path = root / ".codex" / "packages" / "app-server-daemon" / "releases" / "0.169.0" / "bin" / "codex"
    path.parent.mkdir(parents=True)
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", path)
    return path


def _under(root: Path) -> list[psutil.Process]:
    """This test's stand-ins: every process whose binary lies under ``root`` (its private copies)."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.exe().startswith(f"{root}/"):
                found.append(proc)
    return found


@contextlib.contextmanager
def ending_ours(root: Path) -> Iterator[None]:
    """Whatever outlives its pane (the stand-ins under ``root``) is ended at the end, by PID (psutil checks the
    start time: never another process)."""
    try:
        yield
    finally:
        left = _under(root)
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(left, timeout=10)


def _wait(condition: Callable[[], object], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not in {timeout:g}s: {what}")
        time.sleep(0.1)


def _geminis(world: SquadWorld, root: Path) -> dict[int, processes.Proc]:
    return {p.pid: p for p in processes.scan(world.settings.is_claude)
            if p.program is GEMINI and p.exe.startswith(f"{root}/")}


def _pair_in(world: SquadWorld, root: Path, cwd: Path, besides: int = 0) -> tuple[int, int]:
    """(launcher, child) of the Gemini stand-in working in ``cwd`` (not the one launched as ``besides``), once both
    run."""
    def pair() -> tuple[int, int] | None:
        found = [p for p in _geminis(world, root).values() if os.readlink(f"/proc/{p.pid}/cwd") == str(cwd)]
        child = next((p for p in found if p.ppid != besides and any(q.pid == p.ppid for q in found)), None)
        return (child.ppid, child.pid) if child is not None else None
    _wait(pair, f"a Gemini pair in {cwd}")
    found = pair()
    assert found is not None
    return found


def _kill_session(world: SquadWorld, name: str) -> None:
    subprocess.run(["tmux", "-L", world.socket_name, "kill-session", "-t", name], check=True, timeout=30,
                   stdin=subprocess.DEVNULL, capture_output=True)


def _gemini_world(tmp_path: Path) -> tuple[SquadWorld, Path, list[str], dict[str, Path]]:
    """A claude-squad fleet with two instances running Gemini and a person's Gemini in a `work` session."""
    root = tmp_path / "programs"
    gemini = gemini_standin(root)
    world = SquadWorld(tmp_path / "world", grace=0.2)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    works = {}
    for title in ("gemini one", "gemini two"):
        record = world.instance(title, READY, None)
        world.run_program(record, "gemini", gemini, env)
        works[title] = Path(record["worktree"]["worktree_path"])
    world.extra_sessions.append(("work", " ".join(gemini), world.project))  # a person's own Gemini
    return world, root, gemini, works


def test_a_gemini_pair_outliving_kill_session_is_one_orphan_and_the_fix_ends_both(tmp_path):
    world, root, _, works = _gemini_world(tmp_path)
    with ending_ours(root):
        world.start()
        try:
            one = _pair_in(world, root, works["gemini one"])
            person = _pair_in(world, root, world.project)
            _kill_session(world, claude_squad.session_name("gemini one"))
            _wait(lambda: one[0] not in world_panes(world), "the pair out of its pane")
            classes = observe(world.settings).analysis.attribution.claude_classes
            orphans = [(c.proc.pid, tuple(p.pid for p in c.carried)) for c in classes["orphan"]]
            assert orphans == [(one[0], (one[1],))], classes["orphan"]
            _, plan = plan_now(world.settings)
            lines = [a.describe() for a in plan.actions]
            assert len(lines) == 1 and f"pid {one[0]}" in lines[0] and f"child pid {one[1]} first" in lines[0], lines
            report = fix_in_process(world.settings, term_timeout=3)
            assert [o.status.value for o in report.outcomes] == ["done"], [o.line() for o in report.outcomes]
            _wait(lambda: not alive(one[0]) and not alive(one[1]), "both ended")
            assert all(alive(pid) for pid in person), "the person's Gemini was signalled"
        finally:
            world.teardown()


def test_a_gemini_surviving_the_last_session_of_a_server_kept_empty_is_that_servers_orphan(tmp_path):
    """A server left with no session (`exit-empty off`) answers `list-panes -a` with no pane, so no pid: the pair
    its killed pane left, still that server's child, is a killed pane's survivor all the same (its pid is known by
    the socket it listens on)."""
    root = tmp_path / "programs"
    gemini = gemini_standin(root)
    world = SquadWorld(tmp_path / "world", grace=0.2)
    record = world.instance("gemini one", READY, None)
    world.run_program(record, "gemini", gemini, {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}, shell=False)
    with ending_ours(root):
        world.start()
        try:
            server = world.server_pid()
            one = _pair_in(world, root, Path(record["worktree"]["worktree_path"]))
            _kill_session(world, claude_squad.session_name("gemini one"))
            _wait(lambda: one[0] not in world_panes(world), "the pair out of its pane")
            assert world.server_pid() == server and psutil.Process(one[0]).ppid() == server  # empty, still its child
            analysis = observe(world.settings).analysis
            classes = analysis.attribution.claude_classes
            orphans = [(c.proc.pid, tuple(p.pid for p in c.carried)) for c in classes["orphan"]]
            assert orphans == [(one[0], (one[1],))], classes
            assert [s.server_pid for s in analysis.snapshot.servers] == [server]
            report = fix_in_process(world.settings, term_timeout=3)
            assert [o.status.value for o in report.outcomes] == ["done"], [o.line() for o in report.outcomes]
            _wait(lambda: not alive(one[0]) and not alive(one[1]), "both ended")
        finally:
            world.teardown()


def world_panes(world: SquadWorld) -> set[int]:
    """Every process below a pane of the world's server now."""
    panes = subprocess.run(["tmux", "-L", world.socket_name, "list-panes", "-a", "-F", "#{pane_pid}"],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL).stdout.split()
    children = processes.children_of(processes.scan(world.settings.is_claude, exe=False))
    return {pid for pane in panes for pid in processes.descendants(children, int(pane))}


def _squad_kill(world: SquadWorld, title: str, worktree: Path) -> None:
    """claude-squad's Kill (434ca25): the record out of state.json first, then kill-session, then the worktree."""
    state = json.loads(world.state_path.read_text())
    state["instances"] = [i for i in state["instances"] if i["title"] != title]
    world.state_path.write_text(json.dumps(state, indent=2))
    _kill_session(world, claude_squad.session_name(title))
    world._git("worktree", "remove", "-f", str(worktree))


def test_a_gemini_surviving_claude_squads_kill_is_known_by_its_removed_worktree_and_its_gone_terminal(tmp_path):
    """The removed worktree alone is not enough: a person's Gemini outside tmux working in that worktree keeps its
    (no) terminal and is left alone; the one whose pane was killed with it is the orphan."""
    world, root, gemini, works = _gemini_world(tmp_path)
    with ending_ours(root):
        person = subprocess.Popen(gemini, cwd=works["gemini two"], start_new_session=True, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        world.popen.append(person)
        world.start()
        try:
            two = _pair_in(world, root, works["gemini two"], besides=person.pid)
            _squad_kill(world, "gemini two", works["gemini two"])
            _wait(lambda: not works["gemini two"].exists() and two[0] not in world_panes(world), "the Kill done")
            classes = observe(world.settings).analysis.attribution.claude_classes
            orphans = {c.proc.pid: c for c in classes["orphan"]}
            assert set(orphans) == {two[0]}, classes
            assert "was removed, and its terminal is gone" in orphans[two[0]].reason
            report = fix_in_process(world.settings, term_timeout=3)
            assert [o.status.value for o in report.outcomes] == ["done"], [o.line() for o in report.outcomes]
            assert not alive(two[0]) and not alive(two[1]) and alive(person.pid)
        finally:
            world.teardown()


def test_codex_daemons_left_behind_are_leftovers_failing_only_with_evidence(tmp_path):
    """A daemon whose Codex is gone, working in an instance's worktree, is that agent's leftover (failing, ended by
    the fix); one working elsewhere is nobody's (the accounted-for check's information, with its age and CPU time),
    never signalled; a Gemini whose pane was killed in a person's session is nobody's too."""
    world = SquadWorld(tmp_path / "world", grace=0.2)
    root = tmp_path / "home"
    daemon = codex_daemon(root)
    gemini = gemini_standin(root)
    work = Path(world.instance("codex gone", READY, None)["worktree"]["worktree_path"])
    # a person's, killed below: the launcher is its pane's command, so it stays the live server's child
    world.extra_sessions += [("work", " ".join(gemini), world.project), ("keep", "cat", world.project)]
    with ending_ours(root):
        ours = subprocess.Popen([str(daemon), "1000"], cwd=work, start_new_session=True, stdin=subprocess.DEVNULL)
        theirs = subprocess.Popen([str(daemon), "1001"], cwd=tmp_path, start_new_session=True,
                                  stdin=subprocess.DEVNULL)
        world.popen += [ours, theirs]
        world.start()
        try:
            person = _pair_in(world, root, world.project)
            _kill_session(world, "work")
            _wait(lambda: person[0] not in world_panes(world), "the person's Gemini out of its pane")
            judged = observe(world.settings).results
            results = judged["orphan_processes"]
            failing = {f.entity: f.reason for f in results.failing}
            assert set(failing) == {f"pid {ours.pid}"}, failing
            assert "a leftover: Codex's app-server daemon" in failing[f"pid {ours.pid}"]
            # nothing ties the others to this store: not this store's information, but the machine's nobody's
            assert {f"pid {theirs.pid}", f"pid {person[0]}"}.isdisjoint(f.entity for f in results.info), results.info
            info = {f.entity: f.reason for f in judged["accounted_for"].info}
            assert "a leftover: Codex's app-server daemon" in info[f"pid {theirs.pid}"], info
            assert " old, " in info[f"pid {theirs.pid}"] and " of CPU" in info[f"pid {theirs.pid}"]
            assert "a Gemini CLI process whose terminal is gone" in info[f"pid {person[0]}"], info
            report = fix_in_process(world.settings, term_timeout=3)
            assert [o.status.value for o in report.outcomes] == ["done"], [o.line() for o in report.outcomes]
            ours.wait(timeout=10)
            assert theirs.poll() is None and alive(person[0]) and alive(person[1])
        finally:
            world.teardown()
