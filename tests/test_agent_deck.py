"""agent-deck's records (state.db, WAL) judged and repaired on real worlds: rows naming a private tmux server in
tmux_socket_name, stand-ins launched with its environment and flags, bystanders. No row is ever written."""

from __future__ import annotations

import json
import sqlite3

import psutil
import pytest

from fixers.apply import Options
from fixers.run import fix
from healthchecks.observe import observe
from healthchecks.sources.agent_deck import reader as agent_deck
from healthchecks.sources.agent_deck.world import DeckWorld, deck_demo

# an `instances` with every column read, endlessly many rows
ENDLESS = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT 'r' || i AS id, 'x' AS title, "
           "'running' AS status, 'agentdeck_x' AS tmux_session, '' AS tmux_socket_name, 0 AS created_at, "
           "0 AS archived_at, NULL AS tool_data FROM n")


def _fix(world: DeckWorld):
    return fix(observe(world.settings), world.settings, Options(), dry_run=False,
               confirm=lambda plan: (True, "test"), show=lambda lines: None)


def _failing(obs) -> dict[str, set[str]]:
    return {cid: {f.entity for f in r.failing} for cid, r in obs.results.items() if r.failing}


def _rows(world: DeckWorld) -> list[tuple]:
    conn = sqlite3.connect(f"file:{world.db_path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return conn.execute("SELECT * FROM instances ORDER BY id").fetchall()
    finally:
        conn.close()


@pytest.fixture
def healthy(tmp_path):
    world = DeckWorld(tmp_path)
    world.row("api server", "running")
    world.row("docs", "idle")
    world.row("by hand", "stopped")  # its session runs: what agent-deck reads as started again by hand
    world.user_session("work", world.project)
    world.persons_claude()
    world.other_profiles_claude()
    yield world.start()
    world.teardown()


def test_healthy_fleet_has_no_failing_finding_and_fix_changes_nothing(healthy):
    rows, sessions = _rows(healthy), healthy.live_sessions()
    pids = {p.pid for p in healthy.standins()}
    obs = observe(healthy.settings)
    assert obs.snapshot.registries.source == agent_deck.NAME
    assert _failing(obs) == {}
    assert any("recorded as stopped" in f.reason for f in obs.info)
    assert any("names no record of this store" in f.reason for f in obs.info)  # another profile's Claude
    _fix(healthy)
    assert _rows(healthy) == rows
    assert healthy.live_sessions() == sessions
    assert {p.pid for p in healthy.standins()} == pids


def test_faults_found_and_each_repair_ends_exactly_its_target(tmp_path):
    world = deck_demo(tmp_path)
    try:
        rows = _rows(world)
        obs = observe(world.settings)
        failing = _failing(obs)
        by_title = {r[1]: r[0] for r in rows}
        assert failing["ghost_agents"] == {f"agent {by_title['gone']}", f"agent {by_title['restarted']}"}
        (zombie,) = failing["zombie_sessions"]
        assert zombie.startswith("session agentdeck_stuck_")
        (orphan,) = failing["orphan_processes"]
        orphan_pid = int(orphan.split()[1])
        # this world's Claudes named as information (another profile's, a person's): another test's agent programs,
        # information too, come and go on their own while this one runs
        ours = {f"pid {p.pid}" for p in world.standins()}
        foreign = {int(f.entity.split()[1]) for f in obs.info if f.entity in ours}
        assert len(foreign) == 2, obs.info
        sessions = world.live_sessions()
        _fix(world)
        assert _rows(world) == rows  # untouched: every row, byte for byte
        assert world.live_sessions() == sessions - {zombie.split()[1]}
        assert not psutil.pid_exists(orphan_pid) or psutil.Process(orphan_pid).status() == psutil.STATUS_ZOMBIE
        assert all(psutil.pid_exists(pid) for pid in foreign)  # another profile's and a person's Claude
        assert set(_failing(observe(world.settings))) == {"ghost_agents"}
    finally:
        world.teardown()


def test_an_inherited_instance_id_is_information_unless_the_rows_own_launch_shows(tmp_path):
    """A person's interactive Claude outside tmux whose shell inherited a row's AGENTDECK_INSTANCE_ID: while that
    row's Claude runs in its session (whatever the person's arguments), or with nothing of the row's launch (no
    --session-id/--resume of its conversation), it is information, never ended."""
    world = DeckWorld(tmp_path)
    running = world.row("api server", "running")
    stopped = world.row("later", "stopped", None)
    world.inherited(running)
    world.inherited(running, ("--resume", json.loads(running["tool_data"])["claude_session_id"]))
    world.inherited(stopped)  # its session gone, but an interactive `claude` with an inherited variable only
    try:
        world.start()
        pids, sessions = {p.pid for p in world.standins()}, world.live_sessions()
        obs = observe(world.settings)
        assert "orphan_processes" not in _failing(obs)
        seen = [f.reason for f in obs.results["orphan_processes"].info]
        assert sum(f"record {running['id']}" in r for r in seen) == 2 and any(stopped["id"] in r for r in seen)
        _fix(world)
        assert {p.pid for p in world.standins()} == pids
        assert world.live_sessions() == sessions
    finally:
        world.teardown()


@pytest.mark.parametrize(
    "sql, problem",
    [
        ("UPDATE metadata SET value = '14'", "metadata.schema_version: 14 is newer than the 13 this tool knows"),
        ("UPDATE metadata SET value = 'x'", "metadata.schema_version: expected an integer, found 'x'"),
        ("ALTER TABLE instances DROP COLUMN tool_data", "instances.tool_data: column is missing"),
        ("UPDATE instances SET tmux_socket_name = '/tmp/elsewhere'", "tmux_socket_name: not a tmux socket name"),
        # a view runs its query at every read (an endless recursive one: the whole read bound, every snapshot)
        (f"DROP TABLE instances; CREATE VIEW instances AS {ENDLESS}", "instances: is a view, not a table; refused"),
        ("DROP TABLE metadata; CREATE VIEW metadata AS SELECT 'schema_version' AS key, '13' AS value",
         "metadata: is a view, not a table; refused"),
        ("CREATE TRIGGER keep AFTER UPDATE ON instances BEGIN DELETE FROM instances; END",
         "instances: has a trigger ('keep'); refused"),
    ],
)
def test_hostile_database_is_one_line_error(tmp_path, sql, problem):
    world = DeckWorld(tmp_path)
    try:
        world.row("a", running=None)
        world.write_registries()
        conn = sqlite3.connect(world.db_path)
        conn.executescript(sql)
        conn.close()
        before = world.db_path.read_bytes()
        (line,) = map(str, agent_deck.load(world.workspace).all_errors)
        assert line.startswith(str(world.db_path)) and problem in line and "\n" not in line
        wal = world.db_path.with_name("state.db-wal")
        assert world.db_path.read_bytes() == before and (not wal.exists() or wal.stat().st_size == 0)  # no write
    finally:
        world.teardown()
