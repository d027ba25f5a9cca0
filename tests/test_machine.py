"""One run over every manager on the machine (--source all): one machine scan for all of them, each manager's findings
exactly as its own run's, and every agent process accounted for (one manager's, a person's, or named as nobody's);
a process two managers claim is a conflict, never ended by either."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from helpers import run_health

from fixers.machine import fix_machine
from fixers.outcome import Status
from fixers.plan import Options, Plan
from fixers.run import FixReport
from healthchecks import processes
from healthchecks.checks import ACCOUNTED_FOR, NOBODY
from healthchecks.observe import observe, observe_machine
from healthchecks.sources.agent_deck.world import DeckWorld
from healthchecks.sources.aoe.world import AoeWorld
from healthchecks.sources.claude_squad import reader as claude_squad
from healthchecks.sources.claude_squad.world import READY, SquadWorld
from healthchecks.testing.world import World, outside_tmux


@dataclass
class Machine:
    """Three managers' stores on one tmux server, a person's Claude in `work`, a Claude nobody launched, and a Claude
    in a claude-squad worktree that carries an agent-deck record's id and conversation (both claim it)."""

    squad: SquadWorld
    deck: DeckWorld
    aoe: AoeWorld
    nobody: int  # pid of the headless Claude nobody launched
    twin: int  # pid of the Claude both claude-squad and agent-deck claim as their orphan

    @property
    def worlds(self) -> tuple[World, ...]:
        return (self.squad, self.deck, self.aoe)

    @property
    def each(self):
        return tuple(w.settings for w in self.worlds)

    def person(self) -> int:
        """The pid of the person's Claude in their `work` session."""
        out = subprocess.run(["tmux", "-L", self.squad.socket_name, "list-panes", "-t", "=work", "-F", "#{pane_pid}"],
                             capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL).stdout
        return int(out.split()[0])


def _ready(world: World, pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (world.bin / ".ready" / str(pid)).exists():
        assert time.monotonic() < deadline, f"stand-in {pid} did not start"
        time.sleep(0.02)


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    tag = secrets.token_hex(4)
    squad, deck, aoe = SquadWorld(tmp_path / "sq", tag=tag), DeckWorld(tmp_path / "dk", tag=tag), AoeWorld(
        tmp_path / "aoe", tag=tag)
    try:
        squad.instance("ok", READY)
        squad.instance("lint", READY, "shell")  # zombie: claude-squad's fault, its session killed by a fix
        twin = squad.instance("twin", READY, None)  # its worktree is where the twin works
        squad.user_session("work", squad.project)  # a person's own Claude in their own session
        deck.row("api")
        deck.row("gone", "running", None)  # ghost: agent-deck's fault (never written: for a person)
        row = deck.row("twin", "running", None)
        conversation = json.loads(row["tool_data"])["claude_session_id"]
        env = {"AGENTDECK_INSTANCE_ID": row["id"], "AGENTDECK_PROFILE": deck.profile}
        deck.loose.append((Path(twin["worktree"]["worktree_path"]), env, ["--resume", conversation]))
        aoe.instance("web")
        aoe.instance("lost", "running", None)  # ghost: agent-of-empires' fault
        for world in (squad, deck, aoe):
            world.start()
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        nobody = subprocess.Popen([str(squad.standin), "--print", "what nobody asked"], cwd=elsewhere,
                                  env=outside_tmux(), start_new_session=True, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        squad.popen.append(nobody)
        _ready(squad, nobody.pid)
        (twin_proc,) = [p for p in deck.standins() if "--resume" in p.cmdline()]
        yield Machine(squad, deck, aoe, nobody.pid, twin_proc.pid)
    finally:
        for world in (squad, deck, aoe):
            world.teardown()


def _running(pid: int) -> bool:
    """Alive and not defunct (a stand-in this test started stays a zombie until reaped)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _found(results, manager: str | None = None, ours: frozenset[str] | None = None) -> set[tuple[str, str, str]]:
    """(check, entity, severity) of every finding (of one manager), the accounted-for check left out; with ``ours``,
    a finding on a process only when it is one of these (another test's agent programs, information in every run,
    start and end between two runs)."""
    return {(f.check, f.entity, f.severity) for cid, r in results.items() if cid != ACCOUNTED_FOR
            for f in r.findings if (manager is None or f.manager == manager)
            and (ours is None or not f.entity.startswith("pid ") or f.entity in ours)}


def test_one_machine_scan_and_one_list_panes_per_server(machine, tmp_path, monkeypatch):
    """Three managers judged from one /proc scan and one `list-panes -a` per tmux server; three runs of one source
    each read them three times. Counted by a tmux on PATH that logs each call around the real one, and a counter
    around the real processes.scan."""
    real = shutil.which("tmux")
    log = tmp_path / "tmux.log"
    wrapper = tmp_path / "wrapbin" / "tmux"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    scans = []
    real_scan = processes.scan
    monkeypatch.setattr(processes, "scan", lambda *a, **k: scans.append(1) or real_scan(*a, **k))

    def list_panes() -> list[str]:
        calls = [line for line in log.read_text().splitlines() if " list-panes -a " in f" {line} "]
        log.write_text("")
        return calls

    log.write_text("")
    found = observe_machine(machine.each)
    calls = list_panes()
    assert len(found.parts) == 3 and len(scans) == 1
    ours = [c for c in calls if c.startswith(f"-L {machine.squad.socket_name} ")]
    assert len(ours) == 1, calls
    assert len(calls) == len(set(calls)), calls  # every other server of this user once too
    for settings in machine.each:
        observe(settings)
    assert len(scans) == 4  # a run of one source scans for itself (its stability loop may read again: not here)
    assert len([c for c in list_panes() if c.startswith(f"-L {machine.squad.socket_name} ")]) == 3


def test_each_manager_finds_what_its_own_run_finds_and_every_process_is_accounted_for(machine):
    alone = {w.settings.source: observe(w.settings) for w in machine.worlds}
    together = observe_machine(machine.each)
    ours = frozenset(f"pid {p.pid}" for w in machine.worlds for p in w.standins())
    for manager, observation in alone.items():
        assert _found(together.results, manager, ours) == _found(observation.results, ours=ours), manager
    assert _found(together.results, ours=ours) == set().union(*(_found(o.results, ours=ours) for o in alone.values()))
    failing = {(f.manager, f.check) for r in together.results.values() for f in r.failing}
    assert {("claude-squad", "zombie_sessions"), ("agent-deck", "ghost_agents"), ("agent-of-empires", "ghost_agents"),
            ("claude-squad", "orphan_processes"), ("agent-deck", "orphan_processes")} <= failing
    accounted = together.results[ACCOUNTED_FOR]
    (conflict,) = accounted.failing
    assert conflict.entity == f"pid {machine.twin}" and conflict.manager == "claude-squad & agent-deck"
    assert "claimed by claude-squad" in conflict.reason and "never acted on" in conflict.reason
    nobodys = {f.entity: f for f in accounted.info if f.manager == NOBODY and f.entity in ours}
    assert set(nobodys) == {f"pid {machine.nobody}"}, accounted.info
    assert "cwd " in nobodys[f"pid {machine.nobody}"].reason and "started " in nobodys[f"pid {machine.nobody}"].reason
    assert f"pid {machine.person()}" not in {f.entity for f in accounted.findings}  # a person's: accounted for
    assert together.conflicted == {machine.twin}


def test_fix_over_every_manager_ends_only_what_one_manager_provably_owns(machine, tmp_path):
    """`--source all --fix --yes`: claude-squad's zombie session goes; the twin two managers claim, the person's
    Claude and the one nobody launched run on; every finding names its manager."""
    keep = {machine.twin, machine.nobody, machine.person()}
    s = machine.squad.settings
    out = tmp_path / "f.json"
    done = run_health(tmp_path, "--source", "all", "--claude-match", s.claude_match, "--claude-exe", "", "--grace",
                      str(s.grace), "--tmux-socket", machine.squad.socket_name, "--claude-squad-dir",
                      str(machine.squad.workspace), "--agent-deck-db", str(machine.deck.db_path), "--aoe-dir",
                      str(machine.aoe.app), "--aoe-profile", machine.aoe.profile,
                      "--findings-json", str(out), "--metrics-file", str(tmp_path / "m.prom"), "--fix", "--yes",
                      env={"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": "", "XDG_DATA_HOME": ""})
    alive = {pid for pid in keep if _running(pid)}
    assert alive == keep, done.stdout[-3000:]
    assert "claudesquad_lint" not in machine.squad.live_sessions(), done.stdout[-3000:]
    assert "two managers of this run claim" in done.stdout, done.stdout[-3000:]
    for manager in ("claude-squad", "agent-deck", "agent-of-empires"):
        assert f"manager {manager}: " in done.stdout, done.stdout[-3000:]
    doc = json.loads(out.read_text())
    assert {m["manager"] for m in doc["settings"]["managers"]} == {"claude-squad", "agent-deck", "agent-of-empires"}
    assert all(f["manager"] for f in doc["findings"])
    assert any(f["check"] == ACCOUNTED_FOR and f["severity"] == "fail" for f in doc["findings"])
    page = (tmp_path / "reports" / "latest.html").read_text()
    picture = page[page.index("<svg"):]  # the fleet grouped by manager, then the conflict, a person's, nobody's
    for cls, pid in (("conflict", machine.twin), ("person", machine.person()), ("nobody", machine.nobody)):
        assert f"<title>{cls}: pid {pid}</title>" in picture, cls
    assert "<title>manager: agent-of-empires</title>" in picture
    # the metrics and the trend are the machine's, not the first manager's workspace's
    metrics = (tmp_path / "m.prom").read_text()
    assert 'workspace="machine"' in metrics and str(machine.squad.workspace) not in metrics
    # every manager's records named, not only the first one's: in the gauge and in the report's environment
    for name in ("claude-squad", "agent-deck", "agent-of-empires"):
        assert f'records_source{{source="{name}",' in metrics, metrics
        assert f"<td>records</td><td>{name}: " in page, name
    (line,) = (tmp_path / "reports" / "history.jsonl").read_text().splitlines()
    assert json.loads(line)["workspace"] == "machine"


def test_a_store_that_cannot_be_read_is_one_line_and_the_others_are_still_judged(machine):
    machine.squad.state_path.write_text('{"instances": [')  # cut mid-write
    together = observe_machine(machine.each)
    (problem,) = together.results["registry_schema"].failing
    assert problem.manager == "claude-squad"
    ghosts = together.results["ghost_agents"]
    assert ghosts.status == "fail" and {f.manager for f in ghosts.failing} == {"agent-deck", "agent-of-empires"}
    assert together.results[ACCOUNTED_FOR].judged  # over the managers whose records were read


def test_two_orchestrator_workspaces_by_repeating_workspace(tmp_path):
    """`--workspace A --workspace B --source all`: each workspace judged as its own run judges it, the second named by
    its path."""
    tag = secrets.token_hex(4)
    first, second = World(tmp_path / "a", tag=tag), World(tmp_path / "b", tag=tag)
    try:
        ghosts = [first.agent("running", None), second.agent("running", None)]
        first.agent("running", "claude")
        for world in (first, second):
            world.start()
        s = first.settings
        out = tmp_path / "f.json"
        done = run_health(tmp_path, "--source", "all", "--workspace", str(first.workspace), "--workspace",
                          str(second.workspace), "--claude-match", s.claude_match, "--claude-exe", "", "--grace",
                          str(s.grace), "--tmux-socket", first.socket_name, "--findings-json", str(out),
                          env={"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": "", "XDG_DATA_HOME": ""})
        doc = json.loads(out.read_text())
        second_name = f"orchestrator {second.workspace}"
        assert [m["manager"] for m in doc["settings"]["managers"]] == ["orchestrator", second_name], done.stdout
        found = {(f["manager"], f["label"]) for f in doc["findings"] if f["check"] == "ghost_agents"}
        assert found == {("orchestrator", f"agent {ghosts[0]}"), (second_name, f"agent {ghosts[1]}")}
    finally:
        first.teardown()
        second.teardown()


def _insert(deck: DeckWorld, row: dict) -> None:
    """A row agent-deck writes into its database (WAL) while another manager's fix runs."""
    conn = sqlite3.connect(deck.db_path)
    try:
        conn.execute(f"INSERT INTO instances ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                     tuple(row.values()))
        conn.commit()
    finally:
        conn.close()


def _fix(seen, confirm=lambda plan: (True, "yes")) -> FixReport:
    return fix_machine(seen, Options(term_timeout=2), dry_run=False, confirm=confirm, show=lambda _: None,
                       report=FixReport(Plan()))


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[SquadWorld, DeckWorld]]:
    """claude-squad and agent-deck on one tmux server, each with a healthy agent; the test adds the rest."""
    tag = secrets.token_hex(4)
    squad, deck = SquadWorld(tmp_path / "sq", tag=tag), DeckWorld(tmp_path / "dk", tag=tag)
    squad.instance("ok", READY)
    deck.row("api")
    try:
        yield squad, deck
    finally:
        squad.teardown()
        deck.teardown()


def test_a_claim_that_appears_between_plan_and_action_is_refused_at_the_moment_of_action(pair):
    """claude-squad's plan ends its orphan and kills its zombie session; agent-deck's records of both are written after
    the plan was confirmed: each phase re-verifies against the machine's claims as they are then, so neither is
    touched, and each refusal names both managers."""
    squad, deck = pair
    squad.instance("lint", READY, "shell")  # claude-squad's zombie
    stray = squad.instance("stray", READY, None)  # its orphan works in its worktree
    late = deck.row("stray", "running", None)  # agent-deck's record of that Claude, written only after the plan
    deck.rows.remove(late)
    conversation = json.loads(late["tool_data"])["claude_session_id"]
    env = {"AGENTDECK_INSTANCE_ID": late["id"], "AGENTDECK_PROFILE": deck.profile}
    deck.loose.append((Path(stray["worktree"]["worktree_path"]), env, ["--resume", conversation]))
    lint = deck.row("lint", "running", None)  # agent-deck's record of claude-squad's session, written late too
    deck.rows.remove(lint)
    lint["tmux_session"] = claude_squad.session_name("lint")
    squad.start()
    deck.start()
    (orphan,) = [p.pid for p in deck.standins() if "--resume" in p.cmdline()]
    seen = observe_machine((squad.settings, deck.settings))
    assert not seen.conflicted

    def confirm(plan: Plan) -> tuple[bool, str]:
        planned = "\n".join(plan.lines())
        assert f"pid {orphan}" in planned and lint["tmux_session"] in planned, planned
        _insert(deck, late)
        _insert(deck, lint)
        return True, "confirmed"

    report = _fix(seen, confirm)
    assert _running(orphan), [o.line() for o in report.outcomes]
    assert lint["tmux_session"] in squad.live_sessions(), [o.line() for o in report.outcomes]
    refused = {o.action.target: o.detail for o in report.outcomes if o.status is Status.REFUSED}
    assert len(refused) == 2, [o.line() for o in report.outcomes]
    for detail in refused.values():
        assert "claude-squad" in detail and "agent-deck" in detail, detail


def test_a_session_two_stores_record_is_one_conflict_neither_fix_touches(pair):
    """The same session on the same server recorded by claude-squad and by agent-deck, no agent process in it: one
    failing accounted-for finding naming both, and neither manager's fix kills it."""
    squad, deck = pair
    squad.instance("dual", READY, "shell")  # a zombie by claude-squad's records
    both = deck.row("dual", "running", None)  # and by agent-deck's: the same session
    both["tmux_session"] = name = claude_squad.session_name("dual")
    squad.start()
    deck.start()
    seen = observe_machine((squad.settings, deck.settings))
    (conflict,) = [f for f in seen.results[ACCOUNTED_FOR].findings if name in f.entity]
    assert conflict.severity == "fail" and conflict.manager == "claude-squad & agent-deck", conflict
    assert "claude-squad" in conflict.reason and "agent-deck" in conflict.reason
    report = _fix(seen)
    assert name in squad.live_sessions(), [o.line() for o in report.outcomes]
    assert not [o.line() for o in report.outcomes if name in o.action.entity]
    assert any(name in h.line() for h in report.plan.held), report.plan.lines()


def test_a_store_that_cannot_be_read_at_the_moment_of_action_stops_what_others_would_end(pair):
    """claude-squad's plan ends its orphan and kills its zombie session; agent-deck's database, read for the plan,
    is unreadable when the actions come (a write half done, a disk error): what agent-deck claims then is unknown,
    so nothing is ended or killed, and each refusal names the store that could not be read."""
    squad, deck = pair
    squad.instance("lint", READY, "shell")  # claude-squad's zombie
    squad.instance("stray", READY, "orphan")  # its orphan works in its worktree
    squad.start()
    deck.start()
    seen = observe_machine((squad.settings, deck.settings))
    assert set(seen.claims) == {"claude-squad", "agent-deck"}
    before = {p.pid for p in squad.standins()}

    def confirm(plan: Plan) -> tuple[bool, str]:
        assert len(plan.actions) == 2, plan.lines()
        with open(deck.db_path, "r+b") as db:  # not a database any more: agent-deck's reader says so
            db.write(b"not a database, overwritten" * 4)
        return True, "confirmed"

    report = _fix(seen, confirm)
    assert before <= {p.pid for p in squad.standins() if _running(p.pid)}, [o.line() for o in report.outcomes]
    assert claude_squad.session_name("lint") in squad.live_sessions(), [o.line() for o in report.outcomes]
    refused = {o.action.target: o.detail for o in report.outcomes if o.status is Status.REFUSED}
    assert len(refused) == 2, [o.line() for o in report.outcomes]
    assert all("agent-deck cannot be read now" in d for d in refused.values()), refused
