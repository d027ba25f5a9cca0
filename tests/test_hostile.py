"""Hostile text and hostile files: what the monitored agents (or other users) write must not steer the monitor.

Each test is one item of issue 18, tried as an attacker would, on real files, real SQLite databases, real
processes, real tmux worlds and a real pseudo-terminal.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

import helpers
import pytest
from helpers import failing, fix_in_process, judge, registry_bytes, run_health, settings_args

from fixers import archive
from healthchecks import sqlite_ro
from healthchecks.observe import observe
from healthchecks.outputs.status_line import status_line
from healthchecks.settings import Settings
from healthchecks.sources.orchestrator import json_writer as registry_write
from healthchecks.sources.orchestrator.json_registry import journal_path
from healthchecks.testing.world import World
from healthchecks.text import for_people, for_status_line

ERASE = "\r\x1b[1A\x1b[2K"  # back to the line start, one line up, erase it
FAKE = ERASE + "  mark agent harmless-1 terminated" + ERASE


def test_for_people_escapes_what_a_terminal_would_act_on():
    text = "a\x1b[2Kb\rc\nd\x9be\u202ef\u2066g\ud83dh\u2028i\x7f"
    assert for_people(text) == r"a\x1b[2Kb\x0dc\x0ad\x9be\u202ef\u2066g\ud83dh\u2028i\x7f"
    assert for_people("worker-120000-abcdef ✳ 日本 😀") == "worker-120000-abcdef ✳ 日本 😀"  # shown as itself
    assert for_status_line("a | b=0;0;0\nc") == r"a \x7c b=0;0;0\x0ac"


def on_terminal(world: World, tmp_path: Path, *args: str, early: bytes = b"", answer: bytes = b"no\n"):
    """`pytest healthchecks` on a pseudo-terminal: ``early`` typed at once (before any plan exists), ``answer`` once
    the question is on the screen."""
    return helpers.on_terminal(world.settings, tmp_path / "reports", *args, when="Type yes to proceed", keys=answer,
                               early=early)


def test_1_escape_sequences_in_ids_cannot_hide_a_planned_kill(world, tmp_path):
    world.agent(None, "claude")
    world.agent("working", None, agent_type="ghost" + FAKE)
    leaked = world.agent("completed", "claude")
    world.start()
    before = registry_bytes(world.workspace)
    code, out = on_terminal(world, tmp_path, "--fix", "-rA")
    assert code == 1, out
    assert ERASE not in out and "\x1b[1A" not in out and "\x1b[2K" not in out  # no raw sequence reached the tty
    assert r"ghost\x0d\x1b[1A\x1b[2K  mark agent harmless-1 terminated" in out  # shown, visibly escaped
    assert f"agent_{leaked}" in out and "not confirmed (answered 'no')" in out
    assert registry_bytes(world.workspace) == before and f"agent_{leaked}" in world.live_sessions()


def test_2_typeahead_does_not_confirm_a_plan_nobody_saw(world, tmp_path):
    world.agent(None, "claude")
    ghost = world.agent("working", None)
    world.start()
    before = registry_bytes(world.workspace)
    code, out = on_terminal(world, tmp_path, "--fix", early=b"yes\n", answer=b"no\n")
    assert code == 1, out
    assert "not confirmed (answered 'no'): nothing was changed" in out
    assert registry_bytes(world.workspace) == before
    assert json.loads(world.global_path.read_text())["agents"][ghost].get("status") == "working"


NAMER = (
    "import ctypes, sys, time\n"
    "ctypes.CDLL(None).prctl(15, ctypes.c_char_p(sys.argv[1].encode()), 0, 0, 0)\n"
    "print('named', flush=True)\n"
    "time.sleep(120)\n"
)


def _named_process(name: str, user: int | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(["/usr/bin/python3", "-c", NAMER, name], user=user, stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True, cwd="/")
    assert helpers.first_line(proc) == b"named\n"
    return proc


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a process as another user")
def test_3_another_users_process_is_never_claude_and_its_name_is_escaped(world, tmp_path):
    world.agent(None, "claude")
    world.start()
    hostile = _named_process("claude\n" + "\x1b[1A\x1b[2K", user=65534)
    plain = _named_process("claude", user=65534)  # another user's process named plainly `claude`
    mine = _named_process("claude\n" + "\x1b[1A")  # this user's, but no Claude names itself with a line break
    try:
        settings = Settings(workspace=world.workspace, tmux_sockets=world.settings.tmux_sockets, grace=world.grace)
        seen = observe(settings)
        claude = {p.pid for p in seen.snapshot.processes if p.is_claude}
        assert not {hostile.pid, plain.pid, mine.pid} & claude
        assert not [f for r in seen.results.values() for f in r.findings
                    if f.entity in (f"pid {hostile.pid}", f"pid {plain.pid}", f"pid {mine.pid}")]
        proc = run_health(tmp_path, "--workspace", str(world.workspace), "--tmux-socket", world.socket_name, "-rA")
        assert "\x1b[1A" not in proc.stdout
    finally:
        for p in (hostile, plain, mine):
            p.kill()
            p.wait(10)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own a workspace as another user")
def test_4_root_resolves_no_journal_in_another_users_workspace(world):
    world.agent(None, "claude")
    world.agent("working", None)
    world.start()
    journal = journal_path(world.global_path)
    journal.write_bytes(b'{"file": "GLOBAL_REGISTRY.json", "old": "x", "new": "y", "size": 1}\nZ')  # damaged
    for path in [world.workspace, *world.workspace.rglob("*")]:
        os.chown(path, 65534, 65534)
    before = registry_bytes(world.workspace)
    report = fix_in_process(world.settings)
    assert not report.applied and "belongs to" in report.message
    assert not (world.workspace / "registry" / "backups").exists()  # no root-owned folder the owner cannot use
    assert journal.exists() and registry_bytes(world.workspace) == before


def _waivers(path: Path, checks, entity: str = "*", expires: str = "9999-12-31") -> Path:
    path.write_text("".join(f'[[waiver]]\ncheck = "{c}"\nentity = "{entity}"\nreason = "all fine"\n'
                            f"expires = {expires}\n" for c in checks))
    return path


def test_5_waivers_written_into_the_workspace_are_not_read(world, tmp_path):
    world.agent(None, "claude")
    world.agent("working", None)
    world.start()
    checks = ["ghost_agents", "orphan_processes", "zombie_sessions", "counters", "leaked_sessions"]
    _waivers(world.workspace / "healthchecks-waivers.toml", checks)
    metrics = tmp_path / "m.prom"
    proc = run_health(tmp_path, *settings_args(world.settings), "--metrics-file", str(metrics))
    assert proc.returncode == 1 and "all fine" not in proc.stdout, proc.stdout
    (ghosts,) = [line for line in metrics.read_text().splitlines() if line.startswith("agent_healthchecks_ghost_")]
    assert ghosts.endswith(" 1")


@pytest.mark.parametrize(
    "place, entity, check, expected",
    [
        ("outside", "*", "ghost_agents", "is only wildcards"),
        ("outside", "* ", "ghost_agents", "is only wildcards"),
        ("outside", "agent x", "ghost_agentz", "no check 'ghost_agentz'"),
        ("inside", "agent x", "ghost_agents", "lies inside the workspace"),
    ],
)
def test_5_a_waiver_that_waives_everything_or_nothing_or_from_the_workspace_is_a_usage_error(
    world, tmp_path, place, entity, check, expected
):
    world.start()
    where = world.workspace / "w.toml" if place == "inside" else tmp_path / "w.toml"
    _waivers(where, [check], entity)
    proc = run_health(tmp_path, *settings_args(world.settings), "--waivers", str(where))
    assert proc.returncode == 4 and expected in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_5_waived_findings_stay_visible_to_monitoring(world, tmp_path):
    world.agent(None, "claude")
    ghost = world.agent("working", None)
    world.start()
    waivers = _waivers(tmp_path / "w.toml", ["ghost_agents"], f"agent {ghost}",
                       (date.today() + timedelta(days=3)).isoformat())
    metrics = tmp_path / "m.prom"
    proc = run_health(tmp_path, *settings_args(world.settings), "--waivers", str(waivers), "--status-line",
                      "--metrics-file", str(metrics))
    assert proc.returncode == 0, proc.stdout
    assert f"ghost_agents: waived: agent {ghost}: " in proc.stdout
    assert any(line.startswith('agent_healthchecks_waived{check="ghost_agents"') and line.endswith(" 1")
               for line in metrics.read_text().splitlines())


def test_6_an_id_cannot_forge_perfdata_or_lines_of_the_status_line(world):
    world.agent(None, "claude")
    world.agent("working", None, agent_type="w| ghost_agents=0;0;0;0\nAGENT-HEALTH OK - all fine")
    world.start()
    output, code = status_line(judge(world.settings))
    lines = output.splitlines()
    assert code == 2 and lines[0].count("|") == 1 and "ghost_agents=1;" in lines[0]
    assert not any(line.startswith("AGENT-HEALTH OK") for line in lines)
    assert any(r"w\x7c ghost_agents=0;0;0;0\x0aAGENT-HEALTH OK" in line for line in lines[1:])


def test_7_a_planted_journal_is_never_written_over_the_state_database(tmp_path):
    world = World(tmp_path / "world", era="sqlite")
    try:
        world.agent(None, "claude")
        world.agent("working", None)
        world.start()
        old = b"planted bytes"
        header = json.dumps({"file": "state.sqlite3", "old": registry_write._digest(old),
                             "new": registry_write._digest(b"x"), "size": len(old)}).encode()
        planted = world.workspace / "registry" / ".state.sqlite3.hc-journal"
        planted.write_bytes(header + b"\n" + old)
        (world.workspace / "registry" / "..hc-journal").write_bytes(b"stray")
        before = world.state_path.read_bytes()
        report = fix_in_process(world.settings)
        assert report.ok, (report.message, [o.line() for o in report.outcomes])
        assert world.state_path.read_bytes() != old and planted.exists()
        with sqlite3.connect(world.state_path) as conn:
            assert conn.execute("SELECT count(*) FROM agents").fetchone()[0] == 2
        assert before  # the database was there, and still holds its agents
    finally:
        world.teardown()


def test_7_a_journal_for_another_file_is_not_applied(world):
    """A self-consistent journal beside the global registry whose header names another file."""
    world.agent(None, "claude")
    world.agent("working", None)
    world.start()
    old = b"{}"
    header = json.dumps({"file": "OTHER.json", "old": registry_write._digest(old), "new": "0" * 64, "size": 2})
    journal_path(world.global_path).write_bytes(header.encode() + b"\n" + old)
    world.global_path.write_text(world.global_path.read_text()[:-20])  # torn: recovery would put `{}` back
    fix_in_process(world.settings)
    assert world.global_path.read_text() != "{}"


def test_8_other_peoples_temp_files_are_kept(world):
    prefix = getattr(archive, "TEMP_PREFIX", ".hc-tmp-")
    marker = getattr(archive, "TEMP_MARKER", "marker")
    world.agent(None, "claude")
    ghost = world.agent("working", None)
    world.start()
    task_dir = world.workspace / next(iter(world.tasks))
    notes = task_dir / ".notes.md.tmp-20251029"
    notes.write_text("an agent's notes")
    stale = world.workspace / "registry" / f"{prefix}999999999-abcd"  # this tool's, its run long gone
    stale.mkdir()
    (stale / marker).touch()
    (stale / "GLOBAL_REGISTRY.json").write_text("half")
    unmarked = world.workspace / "registry" / f"{prefix}999999998-abcd"  # the prefix, but no marker
    unmarked.mkdir()
    (unmarked / "x").write_text("someone's")
    report = fix_in_process(world.settings)
    assert report.ok and json.loads(world.global_path.read_text())["agents"][ghost]["status"] == "terminated"
    assert notes.read_text() == "an agent's notes" and (unmarked / "x").exists()
    assert not stale.exists()
    assert not [p for p in world.workspace.rglob(f"{prefix}*") if p not in (unmarked,)]


def _sqlite_world(tmp_path: Path, root: str = "world") -> World:
    world = World(tmp_path / root, era="sqlite")
    world.agent(None, "claude")
    world.agent("working", None)
    for _ in range(6):
        world.agent("completed", None)
    return world


def test_9_a_trigger_on_agents_is_refused_and_nothing_is_written(tmp_path):
    world = _sqlite_world(tmp_path)
    try:
        world.start()
        with sqlite3.connect(world.state_path) as conn:
            conn.execute("CREATE TRIGGER wipe AFTER UPDATE OF status ON agents BEGIN "
                         "DELETE FROM agents WHERE agent_id != NEW.agent_id AND status = 'completed'; END")
        results = judge(world.settings)
        (line,) = [f.line() for f in results["registry_schema"].findings]
        assert "agents: has a trigger ('wipe'); refused" in line
        report = fix_in_process(world.settings)
        assert not report.outcomes
        with sqlite3.connect(world.state_path) as conn:
            assert conn.execute("SELECT count(*) FROM agents").fetchone()[0] == 8
    finally:
        world.teardown()


def test_9_a_trigger_added_after_the_checks_rolls_the_write_back(tmp_path):
    world = _sqlite_world(tmp_path)
    try:
        world.start()
        seen = observe(world.settings)
        with sqlite3.connect(world.state_path) as conn:
            conn.execute("CREATE TRIGGER wipe AFTER UPDATE OF status ON agents BEGIN "
                         "DELETE FROM agents WHERE agent_id != NEW.agent_id AND status = 'completed'; END")
        from fixers.apply import Options
        from fixers.run import fix

        report = fix(seen, world.settings, Options(), dry_run=False, confirm=lambda plan: (True, "test"),
                     show=lambda lines: None)
        assert not report.ok and "has a trigger" in (report.message + " ".join(o.line() for o in report.outcomes))
        with sqlite3.connect(world.state_path) as conn:
            assert conn.execute("SELECT count(*) FROM agents").fetchone()[0] == 8
            assert conn.execute("SELECT count(*) FROM agents WHERE status='failed'").fetchone()[0] == 0
    finally:
        world.teardown()


def test_9_an_agents_view_over_an_endless_query_is_refused_at_once(tmp_path):
    world = _sqlite_world(tmp_path)
    try:
        world.start()
        with sqlite3.connect(world.state_path) as conn:
            conn.executescript(
                "ALTER TABLE agents RENAME TO agents_real;"
                "CREATE VIEW agents AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                "SELECT a.* FROM agents_real a, n;"
            )
        started = time.monotonic()
        results = judge(world.settings)
        assert time.monotonic() - started < 20
        (line,) = [f.line() for f in results["registry_schema"].findings]
        assert "agents: is a view, not a table; refused" in line
    finally:
        world.teardown()


def test_9_every_read_is_bounded_in_time(tmp_path, monkeypatch):
    path = tmp_path / "x.sqlite3"
    sqlite3.connect(path).close()
    monkeypatch.setattr(sqlite_ro, "READ_SECONDS", 0.5)
    conn = sqlite_ro.connect(path, 0.1)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError) as exc:
        conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n")
    assert time.monotonic() - started < 10
    assert str(sqlite_ro.problem(path, exc.value, 0.1)).endswith("reading took more than 0.6s; given up")


def test_9_a_column_the_write_uses_is_checked_before_any_action(tmp_path):
    world = _sqlite_world(tmp_path)
    try:
        world.start()
        with sqlite3.connect(world.state_path) as conn:
            conn.execute("ALTER TABLE agents DROP COLUMN last_update")
        report = fix_in_process(world.settings)
        assert not report.applied and "agents.last_update: column is missing" in report.message
        assert not (world.workspace / "registry" / "backups").exists()
    finally:
        world.teardown()


@pytest.mark.parametrize("folder", ["C# projects", "what?"])
def test_10_a_workspace_under_a_folder_with_uri_characters_is_written(tmp_path, folder):
    world = _sqlite_world(tmp_path, folder)
    try:
        world.start()
        before = set(tmp_path.rglob("*"))
        report = fix_in_process(world.settings)
        assert report.ok, (report.message, [o.line() for o in report.outcomes])
        with sqlite3.connect(world.state_path) as conn:
            assert conn.execute("SELECT count(*) FROM agents WHERE status='failed'").fetchone()[0] == 1
        created = {p for p in set(tmp_path.rglob("*")) - before if not p.is_relative_to(world.workspace)}
        assert not created  # no database made outside the workspace
    finally:
        world.teardown()


def test_11_report_files_that_are_symlinks_are_not_followed(world, tmp_path):
    world.agent(None, "claude")
    world.start()
    reports = tmp_path / "reports"
    reports.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("history.jsonl", "latest.html"):
        (elsewhere / name).write_text("someone else's file\n")
        (reports / name).symlink_to(elsewhere / name)
    proc = run_health(tmp_path, *settings_args(world.settings))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all((elsewhere / n).read_text() == "someone else's file\n" for n in ("history.jsonl", "latest.html"))
    assert "refusing to write through it" in proc.stderr and "a symlink is not followed" in proc.stderr


def test_12_a_client_cwd_with_nul_is_not_a_path(world, tmp_path):
    world.agent(None, "claude")
    world.agent("working", None)
    world.foreign_claude()  # a Claude outside every pane and the workspace: its cwd is compared with the client dirs
    world.start()
    task = next(iter(world.tasks))
    data = json.loads(world.task_path(task).read_text())
    data["client_cwd"] = "/tmp/x\0y"
    world.task_path(task).write_text(json.dumps(data))
    doc = tmp_path / "f.json"
    proc = run_health(tmp_path, *settings_args(world.settings), "--findings-json", str(doc))
    assert proc.returncode == 1 and "INTERNALERROR" not in proc.stdout and "Traceback" not in proc.stdout
    assert json.loads(doc.read_text())["summary"]


def test_12_a_client_cwd_with_nul_in_the_state_database(tmp_path):
    world = _sqlite_world(tmp_path)
    world.agent("completed", "orphan")
    try:
        world.start()
        with sqlite3.connect(world.state_path) as conn:
            conn.execute("UPDATE tasks SET client_cwd = ?", ("/tmp/x\0y",))
        results = judge(world.settings)
        assert ("ghost_agents", f"agent {world.agents[1].id}") in failing(results)
    finally:
        world.teardown()


@pytest.mark.parametrize("content", ['[1]\n{"workspace": "WS"}\n', '{"workspace": "WS", "time": "x", "counts": []}\n',
                                     '{"report": "latest.html", "time": 1}\n', "fifo"])
def test_13_a_history_file_that_is_no_history_is_left_alone(world, tmp_path, content):
    world.agent(None, "claude")
    world.start()
    reports = tmp_path / "reports"
    reports.mkdir()
    if content == "fifo":
        os.mkfifo(reports / "history.jsonl")
    else:
        (reports / "history.jsonl").write_text(content.replace("WS", str(world.workspace)))
    proc = run_health(tmp_path, *settings_args(world.settings), "--status-line", timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("AGENT-HEALTH OK"), proc.stdout + proc.stderr
    assert (reports / "latest.html").is_file()


def test_14_a_lone_surrogate_in_an_id_reaches_every_output(world, tmp_path):
    world.agent(None, "claude")
    # Its session's name is plain ASCII: a name holding the surrogate could be stored otherwise by tmux, so its
    # agent would only be information (issue 17, item 4), and this is about the id reaching every output.
    world.agent("working", None, agent_type="worker\ud83d", tmux_session="agent_gone-123456-abcdef")
    world.start()
    doc, metrics = tmp_path / "f.json", tmp_path / "m.prom"
    proc = run_health(tmp_path, *settings_args(world.settings), "--findings-json", str(doc),
                      "--metrics-file", str(metrics), "--status-line")
    assert proc.returncode == 2 and r"worker\ud83d" in proc.stdout, proc.stdout + proc.stderr
    assert any(f["entity"]["id"].startswith("worker\ud83d") for f in json.loads(doc.read_text())["findings"])
    assert "agent_healthchecks_ghost_agents{" in metrics.read_text()
    html = (tmp_path / "reports" / "latest.html").read_text()
    assert r"worker\ud83d" in html


def test_15_a_workspace_path_with_a_non_utf8_byte_gets_its_metrics(world, tmp_path):
    world.agent(None, "claude")
    world.start()
    link = Path(os.fsdecode(bytes(tmp_path) + b"/bad\xff"))  # the same workspace, reached by a name not UTF-8
    link.symlink_to(world.workspace.parent)
    metrics = tmp_path / "m.prom"
    args = settings_args(dataclasses.replace(world.settings, workspace=link / ".agent-workspace"))
    proc = run_health(tmp_path, *args, "--metrics-file", str(metrics))
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert 'workspace="' + str(tmp_path) + r'/bad\\udcff/.agent-workspace"' in metrics.read_text()


def test_16_a_huge_waiver_file_is_refused_unread(world, tmp_path):
    world.start()
    huge = tmp_path / "w.toml"
    with open(huge, "wb") as fh:
        fh.truncate(1_500_000_000)  # sparse: no disk used, 1.5 GB to whoever reads it whole
    proc = run_health(tmp_path, *settings_args(world.settings), "--waivers", str(huge))
    assert proc.returncode == 4 and "over the 1048576 bytes a waiver file may have" in proc.stderr, proc.stderr
    assert "MemoryError" not in proc.stderr


@pytest.mark.parametrize("args", [["--grace", "inf"], ["--grace", "nan"], ["--lock-timeout", "nan"],
                                  ["--tmux-timeout", "inf"]])
def test_17_infinite_or_undefined_seconds_are_usage_errors(tmp_path, args):
    proc = run_health(tmp_path, "--workspace", str(tmp_path), *args)
    assert proc.returncode == 4 and f"invalid {args[0]}" in proc.stderr and "finite" in proc.stderr, proc.stderr


def test_18_a_prune_killed_after_its_archive_append_archives_nothing_twice(world, monkeypatch):
    world.agent(None, "claude")
    gone = [world.agent("completed", None), world.agent("working", None)]
    world.start()

    def die(point: str) -> None:
        if point == "backup-written":
            raise KeyboardInterrupt  # killed after the archive append, before the registry changed

    monkeypatch.setattr(registry_write, "fault", die)
    with pytest.raises(KeyboardInterrupt):
        fix_in_process(world.settings, prune=True)
    monkeypatch.setattr(registry_write, "fault", registry_write._no_fault)
    assert fix_in_process(world.settings, prune=True).ok
    archived = [json.loads(line) for p in sorted((world.workspace / "registry" / "archive").glob("*.jsonl"))
                for line in p.read_text().splitlines()]
    keys = [(r["registry"], r["agent_id"]) for r in archived]
    assert len(keys) == len(set(keys)) and {k[1] for k in keys} == set(gone)
