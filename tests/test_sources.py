"""Both places the orchestrator keeps its agents: the JSON registries (E0–E4) and the current release's SQLite state."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from helpers import Writer, alive, failing, first_line, fix_in_process, judge, run_health, settings_args

from healthchecks.observe import observe
from healthchecks.sources import SOURCES
from healthchecks.sources.orchestrator.dialect import ORCHESTRATOR_FIRST, ORCHESTRATOR_JSON
from healthchecks.testing.world import World


@pytest.fixture(params=["json", "sqlite"])
def era_world(request, tmp_path):
    w = World(tmp_path / "world", era=request.param)
    yield w
    w.teardown()


def test_every_check_finds_the_same_in_either_era(era_world):
    """One world, built once as JSON registries and once as the current release's state database."""
    w = era_world
    for status in (None, "running"):
        w.agent(status, "claude")
    for status in ("completed", "terminated", "failed"):
        w.agent(status, None)
    faults = {
        "ghost": w.agent("working", None),
        "zombie": w.agent("running", "shell"),
        "leaked": w.agent("completed", "claude"),
        "orphan": w.agent("completed", "orphan"),
    }
    w.start()
    results = judge(w.settings)
    assert failing(results) == {
        ("ghost_agents", f"agent {faults['ghost']}"),
        ("zombie_sessions", f"session agent_{faults['zombie']}"),
        ("leaked_sessions", f"session agent_{faults['leaked']}"),
        ("orphan_processes", f"pid {w.orphan_pids[faults['orphan']]}"),
    }
    assert observe(w.settings).snapshot.registries.source == w.era
    report = fix_in_process(w.settings)
    assert report.ok, [o.line() for o in report.outcomes]
    assert failing(judge(w.settings)) == set()


@pytest.fixture
def state_world(tmp_path):
    """The current release's world: one live agent and one ghost, in state.sqlite3. Yields (world, ghost id)."""
    with World(tmp_path / "w", era="sqlite") as w:
        w.agent(None, "claude")
        ghost = w.agent("working", None)
        w.start()
        yield w, ghost


def _state_rows(world: World) -> dict[str, tuple]:
    conn = sqlite3.connect(world.state_path)
    try:
        return {r[0]: r[1:] for r in conn.execute("SELECT agent_id, status, completed_at FROM agents")}
    finally:
        conn.close()


def test_sqlite_fix_marks_a_dead_agent_the_orchestrators_way_after_a_backup(state_world):
    w, ghost = state_world
    json_before = {p: p.read_bytes() for p in w.workspace.rglob("*.json")}
    assert fix_in_process(w.settings).ok
    status, completed = _state_rows(w)[ghost]
    assert status == "failed" and completed  # mark_agents_as_failed_batch at d746b7e
    (backup,) = (w.workspace / "registry" / "backups").glob("*state.sqlite3.*")
    conn = sqlite3.connect(backup)
    assert conn.execute("SELECT status FROM agents WHERE agent_id=?", (ghost,)).fetchone() == ("working",)
    conn.close()
    assert {p: p.read_bytes() for p in w.workspace.rglob("*.json")} == json_before  # mirrors untouched


def test_sqlite_prune_archives_rows_then_deletes_them(tmp_path):
    with World(tmp_path / "w", era="sqlite") as w:
        live = w.agent(None, "claude")
        gone = [w.agent("completed", None), w.agent("working", None)]
        w.start()
        assert fix_in_process(w.settings, prune=True).ok
        assert set(_state_rows(w)) == {live}
        (archive,) = (w.workspace / "registry" / "archive").glob("pruned-*.jsonl")
        archived = [json.loads(line) for line in archive.read_text().splitlines()]
        assert {a["agent_id"] for a in archived} == set(gone)
        assert all(a["entry"]["agent_id"] == a["agent_id"] and "task_id" in a["entry"] for a in archived)
        conn = sqlite3.connect(w.state_path)
        assert [r[0] for r in conn.execute("SELECT child_agent_id FROM agent_hierarchy")] == [live]
        conn.close()


def test_stale_json_mirrors_of_the_current_release_are_not_drift(tmp_path):
    """The current release keeps no counters; its JSON files hold none of its agents and old counters."""
    with World(tmp_path / "w", era="sqlite") as w:
        w.agent(None, "claude")
        w.agent("completed", None)
        w.start()
        results = judge(w.settings)
        assert failing(results) == set()
        assert results["counters"].status == "pass"
        as_json = judge(dataclasses.replace(w.settings, source="json"))  # forced: the mirrors as the source
        assert ("counters", "registry/GLOBAL_REGISTRY.json total_agents_spawned") in failing(as_json)


WRITER = r"""
import sqlite3, sys, time
from pathlib import Path
db, log, stop = sys.argv[1], sys.argv[2], Path(sys.argv[3])
conn = sqlite3.connect(db, timeout=10, isolation_level=None)
conn.execute("PRAGMA busy_timeout=10000")
task = conn.execute("SELECT task_id FROM tasks").fetchone()[0]
n = 0
while not stop.exists():
    agent = f"writer-{n:06d}-{n:06x}"
    conn.execute("BEGIN IMMEDIATE")                 # the orchestrator's writers
    conn.execute("INSERT INTO agents(agent_id, task_id, tmux_session, status, started_at) VALUES (?,?,?,?,?)",
                 (agent, task, "agent_" + agent, "working", "2025-10-29T23:00:00.000000"))
    conn.execute("UPDATE agents SET last_update=? WHERE agent_id=?", (str(n), agent))
    conn.execute("COMMIT")
    with open(log, "a") as out:
        out.write(agent + "\n")
    n += 1
    time.sleep(0.002)
"""


def test_orchestrator_writing_while_the_suite_reads_and_fixes_loses_nothing(tmp_path):
    with World(tmp_path / "w", era="sqlite") as w:
        w.agent(None, "claude")
        w.start()
        with Writer(WRITER, w.state_path, tmp_path) as writer:
            for _ in range(30):
                report = fix_in_process(w.settings)
                lines = [o.line() for o in report.outcomes] + [r.line() for r in report.remaining]
                assert not any("locked" in line for line in lines), lines
                assert all(o.status != "failed" for o in report.outcomes), lines
        written = writer.written()
        rows = _state_rows(w)
        assert len(written) > 30 and set(written) <= set(rows)  # 0 lost
        assert sum(1 for a in written if rows[a][0] == "failed") > 0  # the fixes wrote between its writes
        conn = sqlite3.connect(w.state_path)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        conn.close()


def _broken(w: World, how: str) -> subprocess.Popen | None:
    path = w.state_path
    if how == "not SQLite":
        path.write_bytes(b"this is not a database, just some bytes " * 50)
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
    elif how == "wrong schema":
        conn = sqlite3.connect(path)
        conn.execute("ALTER TABLE agents DROP COLUMN tmux_session")
        conn.commit()
        conn.close()
    elif how == "locked":
        code = ("import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
                "c.execute('PRAGMA journal_mode=DELETE'); c.execute('BEGIN EXCLUSIVE'); "
                "print('locked', flush=True); time.sleep(60)")
        holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
        assert first_line(holder).strip() == "locked"
        return holder
    return None


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("not SQLite", "is not an SQLite database"),
        ("wrong schema", "agents.tmux_session: column is missing"),
        ("locked", "locked by another process for more than 0.5s"),
    ],
)
def test_a_broken_state_database_is_one_clear_line_and_no_write(state_world, tmp_path, how, expected):
    w, _ = state_world
    holder = _broken(w, how)
    try:
        before = w.state_path.read_bytes()
        proc = run_health(tmp_path, *settings_args(w.settings), "--lock-timeout", "0.5", "--fix", "--yes")
        assert "Traceback" not in proc.stdout + proc.stderr
        (line,) = [f for f in proc.stdout.splitlines() if f.startswith(f"{w.state_path}: ")]
        assert expected in line, proc.stdout
        assert w.state_path.read_bytes() == before
        assert not (w.workspace / "registry" / "backups").exists()
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(10)


def test_a_read_only_state_database_is_read_but_never_written(state_world):
    w, ghost = state_world
    os.chmod(w.state_path, 0o444)
    assert failing(judge(w.settings)) == {("ghost_agents", f"agent {ghost}")}
    report = fix_in_process(w.settings)
    assert not report.applied and "is read-only (mode 0444); not changed" in report.message
    assert _state_rows(w)[ghost][0] == "working"


def test_completed_count_counts_every_finished_agent(world):
    """The orchestrator's own meaning (E2 update_agent_progress): completed, terminated, error and failed."""
    world.agent(None, "claude")
    for status in ("completed", "terminated", "error", "failed"):
        world.agent(status, None)
    world.start()
    task = json.loads(world.task_path(next(iter(world.tasks))).read_text())
    assert task["completed_count"] == 4
    assert failing(judge(world.settings)) == set()


def cursor_agent(tmp_path) -> subprocess.Popen:
    """E3's `cursor-agent`: a stand-in of its documented shape (real_programs.cursor_agent_standin: its launcher
    script under ~/.local/share/cursor-agent/versions/<v>/, running the node bundled beside it), in its own group."""
    from healthchecks.testing.real_programs import cursor_agent_standin

    home = Path(tempfile.mkdtemp(dir=tmp_path))
    return subprocess.Popen([str(cursor_agent_standin(home)), "-p", "hi"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)


def named_cursor_agent(tmp_path) -> subprocess.Popen:
    """A process only named `cursor-agent` (a script of that name in a temp folder, not cursor-agent's install)."""
    script = tmp_path / "cursor-agent"
    script.write_text("#!/bin/sh\nwhile :; do sleep 1; done\n")
    script.chmod(0o755)
    return subprocess.Popen([str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_cursor_backend_entries_are_judged_by_their_process(world, tmp_path):
    """E3's cursor backend: `backend: "cursor"`, `cursor_pid`, no tmux_session."""
    world.agent(None, "claude")
    world.write_registries()
    running = cursor_agent(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(10)
    try:
        data = json.loads(world.global_path.read_text())
        task = next(iter(world.tasks))
        started = datetime.now().isoformat(timespec="microseconds")  # the live one's process started before it
        for name, pid in (("cursor-live-000001-aaaaaa", running.pid), ("cursor-dead-000002-bbbbbb", gone.pid)):
            data["agents"][name] = {"task_id": task, "backend": "cursor", "cursor_pid": pid, "status": "working",
                                    "started_at": started}
        data["total_agents_spawned"] += 2
        data["active_agents"] += 2
        world.global_path.write_text(json.dumps(data, indent=2))
        world.start()
        results = judge(world.settings)
        assert results["registry_schema"].status == "pass"
        assert failing(results) == {("ghost_agents", "agent cursor-dead-000002-bbbbbb")}
        assert "cursor process" in results["ghost_agents"].failing[0].reason
        report = fix_in_process(world.settings)
        assert report.ok and alive(running.pid)
        entries = json.loads(world.global_path.read_text())["agents"]
        assert entries["cursor-dead-000002-bbbbbb"]["status"] == "terminated"
        assert entries["cursor-live-000001-aaaaaa"]["status"] == "working"
    finally:
        os.killpg(running.pid, 9)  # its launcher and bundled node
        running.wait(10)


def test_demo_of_the_current_release_names_its_source(tmp_path):
    proc = run_health(tmp_path, "--demo", "--demo-source", "sqlite", "--findings-json", str(tmp_path / "f.json"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "records: sqlite (state.sqlite3)" in proc.stdout
    assert json.loads((tmp_path / "f.json").read_text())["settings"]["source"] == "sqlite"



def test_the_first_era_is_judged_by_its_own_meaning(tmp_path):
    """526a899..d388d16: global entries never carry a status (the task registry is the only record of an agent's
    state) and `completed_count` counts `completed` agents only. A finished and a killed agent are no ghosts, its
    right counters are no drift, and --fix marks a real ghost in its task registry, never in a global entry."""
    with World(tmp_path / "w", first_era=True) as w:
        w.agent("running", "claude")
        w.agent("completed", None)
        w.agent("terminated", None)  # kill_real_agent: terminated, completed_count left alone
        ghost = w.agent("running", None)
        w.start()
        seen = observe(w.settings)
        assert seen.snapshot.registries.dialect is ORCHESTRATOR_FIRST
        assert failing(seen.results) == {("ghost_agents", f"agent {ghost}")}
        task = w.task_path(w.agents[0].task_id)
        before = json.loads(task.read_text())
        report = fix_in_process(w.settings)
        assert report.ok, [o.line() for o in report.outcomes]
        assert all("status" not in entry for entry in json.loads(w.global_path.read_text())["agents"].values())
        after = json.loads(task.read_text())
        marked = next(e for e in after["agents"] if e["id"] == ghost)
        assert (marked["status"], marked["termination_reason"]) == ("terminated", "session_not_found")
        assert after["completed_count"] == before["completed_count"] == 1
        assert after["active_count"] == before["active_count"] - 1 == 1
        assert failing(judge(w.settings)) == set()


def test_later_json_eras_count_every_finished_agent(tmp_path):
    """From 8e57beb on (task registries record `workspace_base`), `completed_count` counts every finished agent:
    the first era's value is drift there."""
    with World(tmp_path / "w") as w:
        w.agent("completed", None)
        w.agent("terminated", None)
        w.start()
        task_id = w.agents[0].task_id
        w.write_registries(task_overrides={task_id: {"completed_count": 1}})
        seen = observe(w.settings)
        assert seen.snapshot.registries.dialect is ORCHESTRATOR_JSON
        assert failing(seen.results) == {("counters", f"{task_id}/AGENT_REGISTRY.json completed_count")}


def test_every_list_of_sources_is_the_table():
    """--source, the settings, the findings schema and the demo eras all come from healthchecks.sources.SOURCES (and
    the bench's rounds: see the next test)."""
    from importlib import resources

    from healthchecks import options, sources
    from healthchecks.settings import Settings

    schema = json.loads(resources.files("healthchecks.schemas").joinpath("findings.schema.json").read_text())
    assert schema["properties"]["settings"]["properties"]["source"]["enum"] == sorted(sources.NAMES)
    source = next(o for o in options.OPTIONS if o.name == "--source")
    assert all(source.parse(name) == name for name in sources.CHOICES)
    assert {Settings(source=name).source for name in sources.CHOICES} == set(sources.CHOICES)
    assert set(sources.DEMOS) <= set(sources.NAMES)


@pytest.mark.parametrize("name", [s.name for s in SOURCES if s.bench])
def test_the_bench_world_a_line_names_is_a_healthy_fleet_of_its_store(name, tmp_path):
    """bench/run.py measures each line's bench world (healthchecks.testing.bench): built by the module its line
    names, its store holds the agents it says, its raw read reads that store, and the checks find nothing failing
    (its round's line says "expected 0")."""
    from healthchecks import sources
    from healthchecks.testing import bench

    source = sources.BY_NAME[name]
    built = bench.build(source, tmp_path / "world", 10)
    try:
        s = built.world.settings
        records = sources.load(s.workspace, s.source, s.lock_timeout)
        assert records.ok and records.source == name, records
        assert len({a.id for scope in records.scopes for a in scope.agents}) == built.agents
        # a mixed fleet; a store whose records are its server's own sessions (Records.servers) has one per record
        assert 0 < built.sessions < built.agents or (records.servers and built.sessions == built.agents)
        built.raw_read()
        assert failing(observe(s).results) == set()
    finally:
        built.world.teardown()


def test_a_same_size_rewrite_just_after_the_read_is_seen(tmp_path):
    """A registry rewritten in place right after it was read, same size and its modification time put back (a
    write within one tick of the file clock looks like that), is still seen to have changed: a file written
    within safe_files.RACY_NS of being looked at is compared by its bytes, not its stat."""
    from healthchecks.snapshot import _changed
    from healthchecks.sources.orchestrator import json_registry

    w = World(tmp_path / "world")
    w.agent(None, "claude")
    w.write_registries()
    records = json_registry.load(w.workspace)
    before = w.global_path.stat()
    text = w.global_path.read_text()
    with open(w.global_path, "r+") as fh:  # in place, as E4's writers do
        fh.write(text.replace('"running"', '"RUNNING"') if '"running"' in text else text.replace("{", "{ ", 1)[:-1])
    os.utime(w.global_path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert w.global_path.stat().st_size == before.st_size
    assert _changed(records.fingerprint, json_registry.fingerprint(w.workspace, records.fingerprint)) == {
        str(w.global_path)}


def test_a_file_still_for_a_while_is_stamped_by_its_stat_alone():
    """The racy rule itself: a file unchanged for longer than RACY_NS is named by its identity, size and times
    (any later write changes its ctime), without reading it; a fresher one by the digest of its bytes, and so is
    one whose stamp was a digest when it was read (it may have gone still since, with other bytes)."""
    import time

    from healthchecks.safe_files import RACY_NS, stamp

    def unread() -> bytes:
        raise AssertionError("read")

    now = time.time_ns()
    old = now - 2 * RACY_NS
    fields = [0o100644, 7, 3, 1, 0, 0, 10, 0, 0, 0, old / 1e9, old / 1e9, old / 1e9, old, old, old]
    assert stamp(os.stat_result(fields), unread) == f"stat:3:7:10:{old}:{old}"
    digest = "sha256:84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882"
    assert stamp(os.stat_result(fields), lambda: b"0123456789", exact=True) == digest  # digested when read before
    fields[-3:] = [now, now, now]
    assert stamp(os.stat_result(fields), lambda: b"0123456789") == digest


def test_a_file_fresh_when_read_and_still_when_compared_has_not_changed(tmp_path):
    """A registry written just before the read is stamped by its digest; by the time the live reads are done it may
    have been still for longer than RACY_NS. Compared by its digest again, it has not changed: no second read of
    the whole store (a 75 MB registry was read twice, holding both in memory)."""
    import time

    from healthchecks.safe_files import RACY_NS
    from healthchecks.snapshot import _changed
    from healthchecks.sources.orchestrator import json_registry

    w = World(tmp_path / "world")
    w.agent(None, "claude")
    w.write_registries()
    records = json_registry.load(w.workspace)
    assert dict(records.fingerprint)[str(w.global_path)].startswith("sha256:")
    time.sleep(RACY_NS / 1e9 + 0.2)
    assert _changed(records.fingerprint, json_registry.fingerprint(w.workspace, records.fingerprint)) == set()


def _held(path: Path) -> bool:
    """Whether someone holds a flock on ``path``: a writer's exclusive flock cannot be had."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_each_read_of_the_records_is_made_with_the_files_held_and_the_next_holds_what_changed(tmp_path):
    """holding.reads, the one mechanism of the snapshot's attempts and of the fix's read: its body runs with the
    files held; a file said changed is held by the next read; it stops when nothing changed, or at its bound."""
    from healthchecks import holding

    w = World(tmp_path / "world")
    task = w.task()
    w.agent(None, "claude", task_id=task)
    w.write_registries()
    task_path = w.task_path(task)
    seen = []
    for read in holding.reads(w.workspace, "json", 1.0, 4):
        seen.append((read.number, _held(w.global_path), _held(task_path)))
        read.changed = {task_path} if read.number == 1 else set()
    assert seen == [(1, True, False), (2, True, True)]
    assert not _held(w.global_path) and not _held(task_path)  # let go after each read
    numbers = []
    for read in holding.reads(w.workspace, "json", 1.0, 3):
        numbers.append(read.number)
        read.changed = {task_path}  # changed however held: a writer that takes no lock
    assert numbers == [1, 2, 3]
    assert holding.load(w.workspace, "json", 1.0).scopes  # one read, nothing broken


@pytest.mark.parametrize("repeat", ["none", "in the authority", "across members"])
def test_the_record_index_holds_every_record_of_an_id_global_first_in_registry_order(repeat):
    """The index judging looks ids up in (two dicts built in C) answers exactly what one pass over the scopes in
    order gives, also where an id repeats, which no store read so far writes (then it makes every list at once)."""
    from pathlib import Path

    from healthchecks.analysis import RecordIndex
    from healthchecks.dialect import ScopeKind
    from healthchecks.records import AgentRecord, Scope

    def rec(agent_id: str, kind: ScopeKind, status: str) -> AgentRecord:
        return AgentRecord(agent_id, "t", status, f"agent_{agent_id}", kind)

    authority = [rec(a, ScopeKind.GLOBAL, "running") for a in ("a", "b", "c")]
    first = [rec("b", ScopeKind.TASK, "completed"), rec("m", ScopeKind.TASK, "running")]
    second = [rec("a", ScopeKind.TASK, "running"), rec("n", ScopeKind.TASK, "running")]
    if repeat == "in the authority":
        authority.append(rec("b", ScopeKind.GLOBAL, "failed"))
    elif repeat == "across members":
        second.append(rec("m", ScopeKind.TASK, "failed"))
    members = (Scope(Path("TASK-1"), ScopeKind.TASK, agents=tuple(first)),
               Scope(Path("TASK-2"), ScopeKind.TASK, agents=tuple(second)))
    expected: dict[str, list[AgentRecord]] = {}
    for record in (*authority, *first, *second):
        expected.setdefault(record.id, []).append(record)
    index = RecordIndex(tuple(authority), members)
    assert dict(index) == expected and list(index) == list(expected) and len(index) == len(expected)
    assert index.firsts() == [records[0] for records in expected.values()]
    assert "zz" not in index and index.get("zz") is None


@pytest.mark.parametrize("era", ["first", "json"])
def test_counters_of_many_scopes_at_once_are_each_scopes_own(era):
    """The counters check counts every scope of a kind at once (Dialect.expected_each): each scope's own numbers,
    counted here one record at a time by the dialect's meaning, and what Dialect.expected gives each scope alone (what
    a fix recounts), for each counter of each kind, an empty scope too."""
    from healthchecks.dialect import Count, ScopeKind, StatusClass
    from healthchecks.records import AgentRecord
    from healthchecks.sources.orchestrator.dialect import ORCHESTRATOR_FIRST, ORCHESTRATOR_JSON

    dialect = ORCHESTRATOR_FIRST if era == "first" else ORCHESTRATOR_JSON
    statuses = ["running", "completed", "failed", "terminated", "weird", None]
    for kind in (ScopeKind.GLOBAL, ScopeKind.TASK):
        scopes = [[AgentRecord(f"a{n}-{i}", "t", status, "s", kind, status_class=dialect.status_class(status))
                   for i, status in enumerate(statuses[n % 6:] * (n % 3))] for n in range(7)]
        tasks = [n % 4 for n in range(7)]
        each = dialect.expected_each(kind, scopes, tasks)
        by_hand = [{name: {Count.ENTRIES: len(agents), Count.TASKS: n,
                           Count.ACTIVE: sum(1 for r in agents if r.status_class is StatusClass.ACTIVE),
                           Count.FINISHED: sum(1 for r in agents if r.status in dialect.finished)}[count]
                    for name, count in dialect.counters[kind].items()} for agents, n in zip(scopes, tasks, strict=True)]
        assert each and [{name: values[i] for name, values in each.items()} for i in range(7)] == by_hand
        assert [dialect.expected(kind, agents, n) for agents, n in zip(scopes, tasks, strict=True)] == by_hand


def test_a_path_naming_a_parent_folder_is_refused_not_walked_out_of_the_workspace(tmp_path):
    """openat walks `..` as any other name, O_NOFOLLOW or not: a path the tool makes from a name it read (a record's
    folder, a file a listing gave) must never climb out of the workspace, so a `..` in it is refused, one line."""
    from healthchecks.records import RegistryError
    from healthchecks.safe_files import read_bytes

    (workspace := tmp_path / "ws" / "registry").mkdir(parents=True)
    (tmp_path / "secret.json").write_text("{}")
    with pytest.raises(RegistryError, match=r"parent folder \('\.\.'\); refusing it"):
        read_bytes(workspace / ".." / ".." / "secret.json", tmp_path / "ws", 4096)
