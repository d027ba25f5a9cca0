"""A claude-squad fleet running every agent program at once: the real Codex, Gemini CLI, opencode and Aider
(real_programs.py, offline, each against the scripted loopback API) and a stand-in of cursor-agent's documented shape
(it cannot be installed here), one instance each, started together in one world. Healthy: no failing finding and no
"not recognised" information; then opencode's process killed (a shell left in its pane): a zombie, in its name. The
same five in an agent-deck fleet and in an agent-of-empires one, each started as that manager starts it: one killed is
a zombie naming it, and `--fix` ends its session alone.

Skipped where the programs cannot be had (CI sets HC_REAL_PROGRAMS=required: a failure there).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from helpers import failing, fix_in_process, installed_program

from healthchecks import processes
from healthchecks.idle import idle
from healthchecks.observe import observe
from healthchecks.programs import AIDER, CODEX, CURSOR_AGENT, GEMINI, OPENCODE, AgentProgram
from healthchecks.sources.agent_deck.world import DeckWorld
from healthchecks.sources.aoe import reader as aoe
from healthchecks.sources.aoe.world import AoeWorld
from healthchecks.sources.claude_squad import reader as claude_squad
from healthchecks.sources.claude_squad.world import READY, SquadWorld
from healthchecks.testing import real_programs
from healthchecks.testing.messages_api import MessagesAPI
from healthchecks.testing.world import World

pytestmark = pytest.mark.real_programs
# claude-squad's `program` for each -> (its table entry, how many processes it runs once up: wrapper/launcher + child)
FLEET: dict[str, tuple[AgentProgram, int]] = {
    "codex": (CODEX, 2), "gemini": (GEMINI, 2), "opencode": (OPENCODE, 1), "aider": (AIDER, 1),
    "cursor-agent": (CURSOR_AGENT, 2)}


def _offline(name: str, home: Path, api: MessagesAPI, work: Path, script: str = "hang") -> tuple[list[str], dict]:
    """The argv and environment of ``name`` run interactively on a prompt the API leaves hanging (a busy agent), or
    answers by another ``script``; cursor-agent's stand-in waits."""
    if name == "cursor-agent":
        return [str(real_programs.cursor_agent_standin(home)), "-p", "hi"], {"PATH": os.environ["PATH"],
                                                                              "HOME": str(home)}
    program = real_programs.PROGRAMS[name]
    env = real_programs.environment(program, home, api, work)
    return real_programs.command(program, installed_program(program), f"hc-script:{script} hc-label:{name} say hi"), env


def _launch(world: SquadWorld, name: str, home: Path, api: MessagesAPI, script: str = "hang",
            shell: bool = True) -> None:
    """One claude-squad instance whose pane runs the program (``_offline``); ``shell``: run_program's."""
    record = world.instance(name, READY, None)
    argv, env = _offline(name, home, api, Path(record["worktree"]["worktree_path"]), script)
    world.run_program(record, name, argv, env, shell)


def _programs_in_panes(world: World) -> dict[str, list[str]]:
    """Session name -> the names of the programs the scan recognises below its pane."""
    panes = subprocess.run(["tmux", "-L", world.socket_name, "list-panes", "-a", "-F", "#{session_name} #{pane_pid}"],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL).stdout.split("\n")
    procs = processes.scan(world.settings.is_claude)
    by_pid, children = {p.pid: p for p in procs}, processes.children_of(procs)
    found: dict[str, list[str]] = {}
    for line in filter(None, panes):
        session, pid = line.rsplit(" ", 1)
        below = (by_pid.get(p) for p in processes.descendants(children, int(pid)))
        found[session] = [p.program.name for p in below if p is not None and p.agent and p.program is not None]
    return found


def _wait(condition: Callable[[], object], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not in {timeout:g}s: {what()}")
        time.sleep(0.5)



def _pane_processes(world: World, session: str) -> list[str] | None:
    """What runs below the session's pane, as `name (idle kind or None)`; None when the session is gone."""
    panes = subprocess.run(["tmux", "-L", world.socket_name, "list-panes", "-t", session, "-F", "#{pane_pid}"],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    if panes.returncode != 0:
        return None
    procs = processes.scan(world.settings.is_claude)
    by_pid, children = {p.pid: p for p in procs}, processes.children_of(procs)
    below = [by_pid[p] for line in panes.stdout.split() for p in processes.descendants(children, int(line))
             if p in by_pid]
    return [f"{p.name} ({idle(p)})" for p in below]


def _only_idle(world: World, session: str) -> bool:
    shown = _pane_processes(world, session)
    return shown is not None and all(not entry.endswith("(None)") for entry in shown)

def _up(world: World, sessions: dict[str, str]) -> bool:
    """Every program of FLEET up below its session's pane (``sessions``: program -> session), each process of it."""
    found = _programs_in_panes(world)
    return all(found.get(sessions[name]) == [entry.name] * count for name, (entry, count) in FLEET.items())


def _end_everything_of(homes: list[Path]) -> None:
    """What outlives the tmux server (Gemini's pair, Codex's daemons): found by this test's private HOMEs."""
    left = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("HOME") in {str(h) for h in homes}:
                left.append(proc)
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.kill()  # psutil checks the start time: never another process
    psutil.wait_procs(left, timeout=10)


def test_every_program_in_one_fleet_is_a_working_agent_and_a_killed_one_a_zombie(tmp_path):
    api = MessagesAPI(default="error")
    world = SquadWorld(tmp_path / "world", grace=0.5)
    homes = [tmp_path / f"home-{name}" for name in FLEET]
    try:
        for name, home in zip(FLEET, homes, strict=True):
            home.mkdir()
            _launch(world, name, home, api)
        world.start()
        squad = {name: claude_squad.session_name(name) for name in FLEET}
        _wait(lambda: _up(world, squad), 240, lambda: f"every program up in its pane: {_programs_in_panes(world)}")
        results = observe(world.settings).results
        assert not failing(results), failing(results)
        unrecognised = [f.reason for r in results.values() for f in r.info if "not recognised" in f.reason]
        assert not unrecognised, unrecognised

        opencode = claude_squad.session_name("opencode")
        pane = subprocess.run(["tmux", "-L", world.socket_name, "display", "-p", "-t", opencode, "#{pane_pid}"],
                              capture_output=True, text=True, timeout=30, check=True).stdout.strip()
        procs = processes.scan(world.settings.is_claude)
        children = processes.children_of(procs)
        native = [p for p in procs if p.program is OPENCODE and p.pid in processes.descendants(children, int(pane))]
        assert len(native) == 1, native
        psutil.Process(native[0].pid).kill()
        # its pane settled: the session still there, and every process below its pane an idle one (the shell the
        # launch execs once the program ends), not merely no program any more
        _wait(lambda: _only_idle(world, opencode), 30,
              lambda: f"opencode's pane idle: {_pane_processes(world, opencode)}")
        judged = observe(world.settings).results["zombie_sessions"]
        zombies = {f.entity: f.reason for f in judged.failing}
        seen = [f"{f.severity} {f.entity}: {f.reason}" for f in judged.findings]
        assert set(zombies) == {f"session {opencode}"}, (seen, _pane_processes(world, opencode))
        assert zombies[f"session {opencode}"].startswith("no opencode process in its panes (only idle ones")
    finally:
        world.teardown()
        _end_everything_of(homes)
        api.close()


def _ours(home: Path) -> list[processes.Proc]:
    """The processes running with this HOME (the test's private one): the program's own, daemons included."""
    found = []
    for proc in processes.scan(lambda *_: False):
        with contextlib.suppress(OSError):
            if processes.environ(proc.pid, frozenset({"HOME"})) == (("HOME", str(home)),):
                found.append(proc)
    return found


def _parent(pid: int) -> str:
    try:
        return psutil.Process(pid).parent().name()  # type: ignore[union-attr]
    except (psutil.Error, AttributeError):
        return "gone"


def _screen(world: SquadWorld, session: str) -> str:
    return subprocess.run(["tmux", "-L", world.socket_name, "capture-pane", "-p", "-t", session], capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL).stdout


def _still(world: SquadWorld, session: str, text: str) -> bool:
    """The pane shows ``text`` and nothing on it changes for a second (no spinner, no timer): its program is drawing
    nothing, so nothing it would write after a hangup meets the freed terminal's EIO."""
    first = _screen(world, session)
    time.sleep(1)
    return text in first and _screen(world, session) == first


def _left_its_pane(pair: set[int]) -> bool:
    """Gemini's launcher and child survived kill-session, their terminal removed (the launcher, the pane's own
    process, still the tmux server's child)."""
    return all(processes.terminal_gone(pid) for pid in pair)


def test_real_gemini_and_codex_killed_with_their_sessions_are_found_and_ended_whole(tmp_path):
    """kill-session on a claude-squad instance running the real Gemini CLI leaves its launcher and child: ONE orphan
    agent, and `--fix` ends both; on one running the real Codex, its two app-server daemons stay (their Codex gone):
    leftovers tied to the instance by their worktree, ended. A person's Gemini and Codex in a `work` session and a
    Gemini outside tmux are never signalled."""
    api = MessagesAPI(default="error")
    world = SquadWorld(tmp_path / "world", grace=0.5)
    homes = {name: tmp_path / f"home-{name}" for name in ("gemini", "codex", "p-gemini", "p-codex", "p-loose")}
    try:
        for home in homes.values():
            home.mkdir()
        # started as claude-squad starts it, the pane's own process (a shell leading the pane would hang up the
        # pair when kill-session ends it: Gemini shuts down), asked in a folder it does not trust yet: it stops at
        # its trust question drawing nothing, so it survives (drawing then, e.g. a spinner, it gets EIO and exits)
        _launch(world, "gemini", homes["gemini"], api, "done", shell=False)
        _launch(world, "codex", homes["codex"], api)
        for name in ("gemini", "codex"):  # a person's, in their own session
            program = real_programs.PROGRAMS[name]
            env = real_programs.environment(program, homes[f"p-{name}"], api, world.project)
            argv = real_programs.command(program, installed_program(program), "hc-script:hang mine")
            launch = shlex.join(["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv])
            world.extra_sessions.append((f"work-{name}", launch, world.project))
        gemini = real_programs.PROGRAMS["gemini"]
        env = real_programs.environment(gemini, homes["p-loose"], api, world.project)
        loose = subprocess.Popen(real_programs.command(gemini, installed_program(gemini), "hc-script:hang mine",
                                                       headless=True), cwd=world.project, env=env,
                                 start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        world.start()
        def bystanders() -> set[int]:
            return {p.pid for name in ("p-gemini", "p-codex", "p-loose") for p in _ours(homes[name])}

        # both up and asking the API, Codex's daemons started, and the person's Gemini pair and Codex up
        _wait(lambda: len([p for p in _ours(homes["gemini"]) if p.program is GEMINI]) == 2
              and "gemini" in api.labels()
              and sum(1 for p in _ours(homes["codex"]) if "app-server" in p.argv) == 2
              and len([p for p in _ours(homes["p-gemini"]) if p.program is GEMINI]) == 2
              and any(p.program is CODEX for p in _ours(homes["p-codex"])),
              90, lambda: f"Gemini's pair, Codex's daemons, the person's both up: {_programs_in_panes(world)}")
        gemini_session = claude_squad.session_name("gemini")
        _wait(lambda: _still(world, gemini_session, "Do you trust"), 60,
              lambda: f"Gemini still at its trust question: {_screen(world, gemini_session)[-600:]!r}")
        spared = bystanders()
        pair = {p.pid for p in _ours(homes["gemini"]) if p.program is GEMINI}
        daemons = {p.pid for p in _ours(homes["codex"]) if "app-server" in p.argv}
        for name in ("gemini", "codex"):
            subprocess.run(["tmux", "-L", world.socket_name, "kill-session", "-t", claude_squad.session_name(name)],
                           check=True, timeout=30, stdin=subprocess.DEVNULL, capture_output=True)
        _wait(lambda: not [p for p in _ours(homes["codex"]) if p.program is CODEX] and _left_its_pane(pair), 30,
              lambda: f"Codex ended, Gemini's pair out of its pane: {[_parent(pid) for pid in pair]}")
        classes = observe(world.settings).analysis.attribution.claude_classes
        orphans = {c.proc.pid: {p.pid for p in c.carried} for c in classes["orphan"]}
        seen = [(k, c.proc.pid, c.reason) for k, found in classes.items() for c in found if k != "attached"]
        launcher = next((pid for pid in orphans if pid in pair), None)
        assert launcher is not None, (pair, seen)
        assert {launcher} | orphans[launcher] == pair, orphans
        assert set(orphans) == {launcher} | daemons, (orphans, [c.reason for c in classes["orphan"]])
        report = fix_in_process(world.settings, term_timeout=5)
        statuses = {o.action.target.pid: o.status.value for o in report.outcomes}
        assert set(statuses) == {launcher} | daemons, [o.line() for o in report.outcomes]
        assert statuses[launcher] == "done", [o.line() for o in report.outcomes]
        assert {statuses[pid] for pid in daemons} == {"done"}, [o.line() for o in report.outcomes]
        assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                       for pid in pair | daemons)
        assert spared <= bystanders() and loose.poll() is None, "a bystander was signalled"
    finally:
        world.teardown()
        _end_everything_of(list(homes.values()))
        api.close()


# agent-deck's and agent-of-empires' `tool` for each program of FLEET (cursor-agent's is `cursor` in both)
TOOLS = {name: "cursor" if name == "cursor-agent" else name for name in FLEET}


def _persons(world: DeckWorld | AoeWorld, name: str, home: Path, api: MessagesAPI) -> None:
    """A person's own ``name`` in their `work` session, in the fleet's project, with no manager's variable."""
    argv, env = _offline(name, home, api, world.project)
    launch = shlex.join(["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv])
    world.extra_sessions.append(("work", launch, world.project))


def _below(world: World, session: str) -> list[psutil.Process]:
    """The processes below the session's panes now (psutil's handles: each checks its start time later)."""
    panes = subprocess.run(["tmux", "-L", world.socket_name, "list-panes", "-t", session, "-F", "#{pane_pid}"],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=True)
    children = processes.children_of(processes.scan(world.settings.is_claude))
    found = []
    for pid in (p for line in panes.stdout.split() for p in processes.descendants(children, int(line))):
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found


def _healthy_then_one_killed(world: DeckWorld | AoeWorld, sessions: dict[str, str], victim: str) -> str:
    """Every program up in its session: no failing finding, none "not recognised"; then ``victim``'s program
    SIGKILLed and its pane settled: that session alone a zombie naming it. Returns the zombie's reason."""
    _wait(lambda: _up(world, sessions), 120, lambda: f"every program up in its pane: {_programs_in_panes(world)}")
    results = observe(world.settings).results
    assert not failing(results), failing(results)
    unrecognised = [f.reason for r in results.values() for f in r.info if "not recognised" in f.reason]
    assert not unrecognised, unrecognised
    entry = FLEET[victim][0]
    agent = [p for p in processes.scan(world.settings.is_claude) if p.program is entry
             and p.pid in {q.pid for q in _below(world, sessions[victim])}]
    assert len(agent) == 1, agent
    psutil.Process(agent[0].pid).kill()
    # settled: the shell left in its pane idle, or its pane dead (every process below it gone)
    _wait(lambda: _only_idle(world, sessions[victim]), 30,
          lambda: f"{victim}'s pane idle: {_pane_processes(world, sessions[victim])}")
    judged = observe(world.settings).results["zombie_sessions"]
    zombies = {f.entity: f.reason for f in judged.failing}
    seen = [f"{f.severity} {f.entity}: {f.reason}" for f in judged.findings]
    assert set(zombies) == {f"session {sessions[victim]}"}, seen
    return zombies[f"session {sessions[victim]}"]


def _fix_ends_only(world: World, sessions: dict[str, str], victim: str) -> None:
    """`--fix --yes` kills the zombie's session and nothing else: every other session's program and the person's
    own in `work` still run, each the same process (psutil compares start times). Only the programs' own processes
    are counted: what they start for a moment (in CI four such children below the spared panes had ended by
    themselves by the end of the fix) says nothing of the fix."""
    programs = {p.pid for p in processes.scan(world.settings.is_claude) if p.program is not None}
    below = [p for name, session in sessions.items() if name != victim for p in _below(world, session)]
    spared = [p for p in [*below, *_below(world, "work")] if p.pid in programs]
    report = fix_in_process(world.settings, term_timeout=5)
    done = [(o.action.kind.value, o.action.entity, o.status.value) for o in report.outcomes]
    assert done == [("kill_session", f"session {sessions[victim]}", "done")], [o.line() for o in report.outcomes]
    assert _pane_processes(world, sessions[victim]) is None
    assert spared and all(p.is_running() for p in spared), [p for p in spared if not p.is_running()]


def test_agent_deck_fleet_runs_every_program_and_ends_only_the_one_killed(tmp_path):
    """agent-deck rows whose sessions run Codex, Gemini CLI, opencode, Aider (real) and the cursor-agent stand-in,
    each the pane's own process as agent-deck starts it (`tool` recorded), Aider's with exit_to_shell (a shell left
    when it ends); a person's own Aider in `work`. Healthy, then Aider killed: its session a zombie naming Aider,
    and `--fix` ends that session alone."""
    api = MessagesAPI(default="error")
    world = DeckWorld(tmp_path / "world", grace=0.5)
    homes = {name: tmp_path / f"home-{name}" for name in (*FLEET, "person")}
    try:
        sessions = {}
        for name in FLEET:
            homes[name].mkdir()
            row = world.row(name, "running", None)
            argv, env = _offline(name, homes[name], api, world.project)
            world.run_program(row, TOOLS[name], argv, env, exit_to_shell=name == "aider")
            sessions[name] = row["tmux_session"]
        homes["person"].mkdir()
        _persons(world, "aider", homes["person"], api)
        world.start()
        reason = _healthy_then_one_killed(world, sessions, "aider")
        assert reason.startswith(f"no {AIDER.name} process in its panes (only idle ones"), reason
        _fix_ends_only(world, sessions, "aider")
    finally:
        world.teardown()
        _end_everything_of(list(homes.values()))
        api.close()


def test_aoe_fleet_runs_every_program_and_ends_only_the_one_killed(tmp_path):
    """agent-of-empires records whose sessions run the same programs wrapped as aoe wraps them (`remain-on-exit on`,
    AOE_INSTANCE_ID); a person's own opencode in `work`. Healthy, then opencode killed: its pane .0 dead, the
    session a zombie naming opencode, and `--fix` ends that session alone."""
    api = MessagesAPI(default="error")
    world = AoeWorld(tmp_path / "world", grace=0.5)
    homes = {name: tmp_path / f"home-{name}" for name in (*FLEET, "person")}
    try:
        sessions = {}
        for name in FLEET:
            homes[name].mkdir()
            record = world.instance(name, "running", None)
            argv, env = _offline(name, homes[name], api, world.project)
            world.run_program(record, TOOLS[name], argv, env)
            sessions[name] = aoe.session_name(name, record["id"])
        homes["person"].mkdir()
        _persons(world, "opencode", homes["person"], api)
        world.start()
        reason = _healthy_then_one_killed(world, sessions, "opencode")
        assert OPENCODE.name in reason, reason
        _fix_ends_only(world, sessions, "opencode")
    finally:
        world.teardown()
        _end_everything_of(list(homes.values()))
        api.close()
