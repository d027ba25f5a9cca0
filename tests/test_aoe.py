"""agent-of-empires' records (profiles/<profile>/sessions.json) judged and repaired on real worlds: sessions named,
wrapped and optioned as aoe makes them on a private server standing in for the default one, its helper sessions,
bystanders. sessions.json is never written."""

from __future__ import annotations

import json

import psutil
import pytest
from helpers import run_health

from fixers.apply import Options
from fixers.run import fix
from healthchecks.observe import observe
from healthchecks.sources.aoe import reader as aoe
from healthchecks.sources.aoe.world import AoeWorld, aoe_demo


def _fix(world: AoeWorld):
    return fix(observe(world.settings), world.settings, Options(), dry_run=False,
               confirm=lambda plan: (True, "test"), show=lambda lines: None)


def _failing(obs) -> dict[str, set[str]]:
    return {cid: {f.entity for f in r.failing} for cid, r in obs.results.items() if r.failing}


def _session(record: dict) -> str:
    return aoe.session_name(record["title"], record["id"])


@pytest.fixture
def demo(tmp_path):
    world = aoe_demo(tmp_path)
    yield world
    world.teardown()


def test_each_fault_found_and_each_repair_ends_exactly_its_target(demo):
    by_title = {r["title"]: r for r in demo.records}
    before, sessions = demo.sessions_path.read_bytes(), demo.live_sessions()
    obs = observe(demo.settings)
    assert obs.snapshot.registries.source == aoe.NAME
    failing = _failing(obs)
    assert failing.pop("ghost_agents") == {f"agent {by_title['gone']['id']}"}
    assert failing.pop("zombie_sessions") == {f"session {_session(by_title[t])}" for t in ("crashed", "left a shell")}
    assert failing.pop("leaked_sessions") == {f"session {_session(by_title['stopped but live'])}"}
    (leak,) = obs.results["leaked_sessions"].failing  # in aoe's own meaning, not another manager's "finished"
    assert "stopped" in leak.reason and "aoe writes it only after killing the session" in leak.reason
    assert "finished" not in leak.reason
    (orphan,) = failing.pop("orphan_processes")
    assert failing == {}
    orphan_pid = int(orphan.split()[1])
    assert psutil.Process(orphan_pid).environ()["AOE_INSTANCE_ID"] == by_title["survivor"]["id"]
    helper = next(s for s in sessions if s.startswith("aoe_term_"))
    every = [f for r in obs.results.values() for f in [*r.failing, *r.info]]
    assert not [f for f in every if helper in f.entity or helper in f.reason]  # a helper is never an agent
    failed = _session(by_title["failed"])
    assert any(f.entity == f"session {failed}" for f in obs.info)  # aoe's own error verdict: information
    mine = {p.pid for p in demo.standins()}  # this world's: other runs' Claude processes on the machine are not
    foreign = {pid for f in obs.info if f.entity.startswith("pid ") and (pid := int(f.entity.split()[1])) in mine}
    assert len(foreign) == 2  # another profile's Claude, a person's Claude
    _fix(demo)
    assert demo.sessions_path.read_bytes() == before
    ended = {_session(by_title[t]) for t in ("crashed", "left a shell", "stopped but live")}
    assert demo.live_sessions() == sessions - ended  # the person's work, the helper, error's session kept
    assert not psutil.pid_exists(orphan_pid) or psutil.Process(orphan_pid).status() == psutil.STATUS_ZOMBIE
    assert all(psutil.pid_exists(pid) for pid in foreign)
    assert set(_failing(observe(demo.settings))) == {"ghost_agents"}  # reported, never written
    assert demo.sessions_path.read_bytes() == before


def test_only_pane_0_is_the_agent_and_a_persons_split_pane_is_never_ended(tmp_path):
    """A session whose agent pane .0 is dead while a person's Claude runs in a pane split beside it: its agent is
    gone (what aoe's poller reads), yet ending the session would end the person's Claude: information, kept."""
    world = AoeWorld(tmp_path)
    try:
        split = world.instance("split", "running", "split")
        world.start()
        sessions, pids = world.live_sessions(), {p.pid for p in world.standins()}
        obs = observe(world.settings)
        assert "zombie_sessions" not in _failing(obs)
        (seen,) = obs.results["zombie_sessions"].info
        assert seen.entity == f"session {_session(split)}" and "pane .0" in seen.reason
        _fix(world)
        assert world.live_sessions() == sessions and {p.pid for p in world.standins()} == pids
    finally:
        world.teardown()


def test_a_stopped_instances_claude_is_an_orphan_only_once_its_agent_is_gone(tmp_path):
    """AOE_INSTANCE_ID names a record: a Claude carrying it outside every pane is an orphan when its record's agent
    runs no more, and information while that agent still runs in pane .0 (a variable inherited from its pane)."""
    world = AoeWorld(tmp_path)
    try:
        running = world.instance("running", "running")
        world.loose.append(({"AOE_INSTANCE_ID": running["id"]}, ["--session-id", running["agent_session_id"]]))
        world.start()
        obs = observe(world.settings)
        assert "orphan_processes" not in _failing(obs)
        assert any(running["id"] in f.reason for f in obs.results["orphan_processes"].info)
    finally:
        world.teardown()


def test_the_command_line_names_the_manager_and_finds_its_profile(tmp_path):
    world = AoeWorld(tmp_path, profile="work")
    try:
        world.instance("one", "running")
        world.instance("later", "stopped", None)
        world.start()
        (world.app / "profiles" / "alpha").mkdir()  # listed first: config.toml's default_profile wins
        (world.app / aoe.CONFIG).write_text('default_profile = "work"\n\n[theme]\nname = "x"\n')
        s = world.settings
        done = run_health(tmp_path, "--claude-match", s.claude_match, "--grace", str(s.grace), "--tmux-socket",
                          world.socket_name, "--findings-json", str(tmp_path / "f.json"), "--metrics-file",
                          str(tmp_path / "m.prom"), "--source", aoe.NAME, "--aoe-dir", str(world.app))
        assert done.returncode == 0, done.stdout[-2000:]
        doc = json.loads((tmp_path / "f.json").read_text())
        assert doc["settings"]["source"] == aoe.NAME and doc["settings"]["workspace"] == str(world.workspace)
        assert doc["settings"]["session_prefix"] == "aoe_"
        assert f"records: {aoe.NAME}" in done.stdout
        assert f'source="{aoe.NAME}"' in (tmp_path / "m.prom").read_text()
        page = (tmp_path / "reports" / "latest.html").read_text()
        assert f"records: {aoe.NAME}" in page[page.index("<svg"):]  # the fleet picture names it
    finally:
        world.teardown()


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"id": "x"}', "$: expected an array"),
        ('[{"id": "", "title": "a", "status": "running"}]', "$[0].id: expected a non-empty string"),
        ('[{"id": "a", "title": 3, "status": "running"}]', "$[0].title: expected a string"),
        ('[{"id": "a", "title": "a", "status": ["running"]}]', "$[0].status: expected a string"),
        ('[{"id": "a", "title": "a", "status": "idle"}, {"id": "a", "title": "b", "status": "idle"}]',
         "$[1].id: 'a' appears twice"),
    ],
)
def test_hostile_sessions_file_is_one_line_error(tmp_path, text, problem):
    world = AoeWorld(tmp_path)
    try:
        world.sessions_path.write_text(text)
        (line,) = map(str, aoe.load(world.workspace).all_errors)
        assert line.startswith(str(world.sessions_path)) and problem in line and "\n" not in line
    finally:
        world.teardown()
