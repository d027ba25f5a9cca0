"""`pytest healthchecks` end to end, run as an operator runs it, against real worlds."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from helpers import absent_socket, junit_outcomes, run_health, settings_args

from healthchecks.testing.world import World

REGISTRY_TESTS = {
    "test_counters_match_entries",
    "test_task_registries_agree_with_global",
    "test_agent_statuses_are_known",
    "test_registry_times_are_not_in_the_future",
    "test_no_ghost_agents",
    "test_no_agent_runs_twice",
    "test_no_zombie_sessions",
    "test_no_leaked_sessions",
    "test_no_orphan_claude_processes",
    "test_no_agents_outliving_their_owner",
    "test_no_agent_process_runs_twice",
    "test_no_stale_teams",
    "test_no_stale_pid_files",
    "test_no_leaked_worktrees",
    "test_every_agent_process_is_accounted_for",
}
TMUX_TESTS = {
    "test_no_ghost_agents",
    "test_no_agent_runs_twice",
    "test_no_zombie_sessions",
    "test_no_leaked_sessions",
    "test_no_orphan_claude_processes",
    "test_no_agents_outliving_their_owner",
    "test_no_agent_process_runs_twice",
    "test_no_stale_teams",
    "test_no_leaked_private_tmux_servers",
    "test_every_agent_process_is_accounted_for",
}


def faulty(world: World) -> dict[str, str]:
    world.agent(None, "claude")
    world.agent("completed", None)
    faults = {
        "ghost": world.agent("working", None),
        "zombie": world.agent("running", "shell"),
        "leaked": world.agent("completed", "claude"),
        "orphan": world.agent("completed", "orphan"),
    }
    world.foreign_claude()
    world.start()
    return faults


def test_demo_shows_faults_by_id_and_writes_report(tmp_path):
    proc = run_health(tmp_path, "--demo")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Traceback" not in out
    for pattern in (
        r"agent ghost_worker-\d{6}-[0-9a-f]{6}: registry says active",
        r"session agent_stalled_shell-\d{6}-[0-9a-f]{6}: no Claude process",
        r"session agent_finished_but_running-\d{6}-[0-9a-f]{6}: registry says finished",
        r"pid \d+: claude-[0-9a-f]{8}: outside every tmux pane; this workspace's agent: "
        r"its arguments name agent orphaned_",
    ):
        assert re.search(pattern, out), pattern
    assert re.search(r"Registry agents\s+97\n", out)
    assert re.search(r"Active agents\s+15 \(counter\) / 14 \(entries\)", out)
    assert re.search(r"Claude processes\s+13 \(11 attached, 1 orphan, 1 foreign\)", out)
    assert re.search(r"Agent tmux sessions\s+11 \(10 tracked, 1 untracked\)", out)
    assert re.search(r"Ghost agents\s+5\n", out)
    assert out.count("Registry agents") == 1  # the table is shown once
    assert "5 failed, 12 passed" in out
    reports = sorted((tmp_path / "reports").glob("healthchecks-*.html"))
    assert len(reports) == 1 and (tmp_path / "reports" / "latest.html").read_bytes() == reports[0].read_bytes()
    html = reports[0].read_text()
    assert "Ghost agents" in html and "ghost_worker-" in html
    # the demo ended everything it started
    demo_dirs = re.findall(r"workspace: (\S+)/ws/\.agent-workspace", out)
    assert demo_dirs and not Path(demo_dirs[0]).exists()
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if demo_dirs[0] in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []


def test_xdist_gives_serial_outcomes_from_one_snapshot(world, tmp_path):
    faulty(world)
    args = settings_args(world.settings)
    serial = run_health(tmp_path, *args, "--junitxml", str(tmp_path / "serial.xml"))
    parallel = run_health(tmp_path, *args, "-n", "2", "--junitxml", str(tmp_path / "parallel.xml"))
    assert serial.returncode == parallel.returncode == 1
    assert "2 workers" in parallel.stdout
    assert junit_outcomes(tmp_path / "serial.xml") == junit_outcomes(tmp_path / "parallel.xml")
    import xml.etree.ElementTree as ET

    ids = {p.get("value") for p in ET.parse(tmp_path / "parallel.xml").iter("property") if p.get("name") == "snapshot"}
    assert len(ids) == 1  # every worker judged the controller's one snapshot


def test_healthy_world_exits_zero(world, tmp_path):
    world.agent(None, "claude")
    world.agent("completed", None)
    world.start()
    proc = run_health(tmp_path, *settings_args(world.settings))
    assert proc.returncode == 0, proc.stdout
    assert "17 passed" in proc.stdout


def test_tmux_missing_makes_tmux_checks_error(world, tmp_path):
    faulty(world)
    bindir = tmp_path / "bin-without-tmux"
    bindir.mkdir()
    os.symlink(sys.executable, bindir / "python3")
    proc = run_health(
        tmp_path, *settings_args(world.settings), "--junitxml", str(tmp_path / "j.xml"), env={"PATH": str(bindir)}
    )
    outcomes = junit_outcomes(tmp_path / "j.xml")
    assert {name for name, (outcome, _) in outcomes.items() if outcome == "error"} == TMUX_TESTS
    assert "tmux unreachable, cannot judge: tmux server" in proc.stdout
    assert "Traceback" not in proc.stdout


def _write_global(path: Path, case: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    contents = {
        "truncated": '{"agents": {"worker-010203-abcdef": {"task_id": "TASK-1", "tmux_sess',
        "empty": "",
        "top-level list": "[]",
        "agents as a list": json.dumps({"tasks": {}, "agents": [{"task_id": "TASK-1"}]}),
    }
    if case != "missing file":
        path.write_text(contents[case])


@pytest.mark.parametrize(
    "case, expected",
    [
        ("truncated", r"line 1 column \d+: truncated \(Unterminated string starting at\)"),
        ("empty", r"\$: file is empty"),
        ("top-level list", r"\$: expected object, got array"),
        ("agents as a list", r"\$\.agents: expected object, got array"),
        ("missing file", r"\$: file is missing"),
    ],
)
def test_bad_registry_gives_one_clear_line(tmp_path, case, expected):
    workspace = tmp_path / "ws"
    path = workspace / "registry" / "GLOBAL_REGISTRY.json"
    workspace.mkdir()
    _write_global(path, case)
    before = path.read_bytes() if path.exists() else None
    proc = run_health(
        tmp_path, "--workspace", str(workspace), "--tmux-socket", absent_socket(), "--junitxml", str(tmp_path / "j.xml")
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    outcomes = junit_outcomes(tmp_path / "j.xml")
    assert {n for n, (o, _) in outcomes.items() if o == "skipped"} == REGISTRY_TESTS
    assert outcomes["test_registry_files_match_schema"][0] == "failure"
    lines = outcomes["test_registry_files_match_schema"][1]
    assert len(lines) == 1 and re.fullmatch(rf"{re.escape(str(path))}: {expected}", lines[0]), lines
    assert lines[0] in proc.stdout
    assert (path.read_bytes() if path.exists() else None) == before


@pytest.mark.parametrize(
    "args",
    [("--claude-match", "(unclosed"), ("--grace", "-1"), ("--keep-reports", "-3"), ("--keep-reports", "many"),
     ("--keep-backups", "0"), ("--backup-days", "0")],
)
def test_invalid_option_is_a_usage_error(tmp_path, args):
    proc = run_health(tmp_path, *args)
    assert proc.returncode == 4
    assert "agent-healthchecks: invalid" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_old_reports_are_pruned_and_nothing_else(world, tmp_path):
    world.agent(None, "claude")
    world.start()
    reports = tmp_path / "reports"
    reports.mkdir()
    old = [reports / f"healthchecks-20250101-00000{i}-42.html" for i in range(5)]
    others = [reports / "notes.html", reports / "healthchecks-mine.html"]
    for age, path in enumerate([*old, *others]):
        path.write_text("old")
        os.utime(path, (1_700_000_000 + age, 1_700_000_000 + age))
    proc = run_health(tmp_path, *settings_args(world.settings), "--keep-reports", "3")
    assert proc.returncode == 0, proc.stdout
    kept = {p.name for p in reports.iterdir()}
    extra = {"latest.html", "history.jsonl", "index.html"}  # the lineage lives in the state directory
    (new,) = kept - {p.name for p in [*old, *others]} - extra  # this run's own report
    assert kept == {old[3].name, old[4].name, new, *extra, "notes.html", "healthchecks-mine.html"}


def test_help_documents_every_option(tmp_path):
    proc = run_health(tmp_path, "--help")
    for option in (
        "--workspace",
        "--tmux-socket",
        "--session-prefix",
        "--claude-match",
        "--claude-exe",
        "--grace",
        "--demo",
        "--report-dir",
        "--tmux-timeout",
        "AGENT_WORKSPACE",
    ):
        assert option in proc.stdout


def test_workspace_from_environment(world, tmp_path):
    world.agent(None, "claude")
    world.start()
    args = [a for a in settings_args(world.settings)]
    i = args.index("--workspace")
    del args[i : i + 2]
    proc = run_health(tmp_path, *args, env={"AGENT_WORKSPACE": str(world.workspace)})
    assert proc.returncode == 0, proc.stdout
    assert f"workspace: {world.workspace}" in proc.stdout


def test_every_test_of_the_project_is_bounded_and_the_health_checks_are_not(request, world, tmp_path):
    """tests/conftest.py bounds each of this suite's tests (pytest-timeout); an operator's run has no such bound."""
    assert request.node.get_closest_marker("timeout").args == (300,)
    world.agent(None, "claude")
    world.start()
    proc = run_health(tmp_path, *settings_args(world.settings))
    assert proc.returncode == 0, proc.stdout
    assert "plugins:" in proc.stdout and "timeout:" not in proc.stdout  # pytest-timeout's header line when bounded


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_tmux_socket_path_form(world, tmp_path):
    world.agent(None, "claude")
    world.start()
    args = settings_args(world.settings)
    i = args.index("--tmux-socket")
    args[i + 1] = f"/tmp/tmux-{os.getuid()}/{world.socket_name}"
    proc = run_health(tmp_path, *args)
    assert proc.returncode == 0, proc.stdout


OWN_CHECK = '''
def test_my_own_check(hc_snapshot, hc_judged):
    assert len(hc_snapshot.registries.authority.agents) == 2
    assert hc_judged.snapshot_id == f"{hc_snapshot.taken_at:.6f}"
    assert hc_judged.results["ghost_agents"].status == "pass"
'''


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_fixtures_for_checks_of_your_own(world, tmp_path, workers):
    """A test of the operator's own sees the run's one snapshot and judged results, also in an xdist worker."""
    world.agent(None, "claude")
    world.agent("completed", None)
    world.start()
    mine = tmp_path / "test_mine.py"
    mine.write_text(OWN_CHECK)
    proc = run_health(tmp_path, str(mine), *settings_args(world.settings), *workers)
    assert proc.returncode == 0, proc.stdout
    assert "18 passed" in proc.stdout


NO_SNAPSHOT = '''
from pathlib import Path


def test_asks_for_the_snapshot_late(request, hc_judged):
    assert not Path(request.config.workerinput["healthchecks_snapshot"]).exists()  # no test named it
    request.getfixturevalue("hc_snapshot")
'''


def test_xdist_hands_the_snapshot_over_only_to_tests_that_name_it(world, tmp_path):
    """Pickling the snapshot for workers that never read it held every test back (135 ms at 1,000 sessions): it is
    written only when a collected test names `hc_snapshot`; one asking for it later is told how to get it."""
    world.agent(None, "claude")
    world.start()
    mine = tmp_path / "test_late.py"
    mine.write_text(NO_SNAPSHOT)
    proc = run_health(tmp_path, str(mine), *settings_args(world.settings), "-n", "2")
    assert proc.returncode == 1, proc.stdout
    assert "1 failed, 17 passed" in proc.stdout
    assert "under pytest-xdist a test gets the snapshot by naming the `hc_snapshot` fixture" in proc.stdout


def test_demo_honours_tmux_tmpdir_and_leaves_no_server(tmp_path):
    """A newcomer's TMUX_TMPDIR: the demo's server lives there, is checked there, and is gone afterwards."""
    tmpdir = tmp_path / "tmux-tmpdir"
    tmpdir.mkdir()
    proc = run_health(tmp_path, "--demo", env={"TMUX_TMPDIR": str(tmpdir)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"Agent tmux sessions\s+11 \(10 tracked, 1 untracked\)", proc.stdout)
    sockets = list(tmpdir.glob("tmux-*/*"))
    assert all(subprocess.run(["tmux", "-S", str(s), "list-sessions"], capture_output=True, timeout=30).returncode != 0
               for s in sockets)


def test_a_project_root_given_as_workspace_names_its_agent_workspace(world, tmp_path):
    world.agent(None, "claude")
    world.start()
    proc = run_health(tmp_path, "--workspace", str(world.client_dir), "--tmux-socket", world.socket_name)
    assert f"has no registry/ but {world.workspace} does: is that the workspace?" in proc.stdout


def test_hints_name_a_command_that_works_where_it_was_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "PYTEST_"))}
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "test_nothing.py", "--fix", "-p", "no:cacheprovider"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4 and "`pytest --pyargs healthchecks --fix`" in proc.stderr, proc.stderr


@pytest.mark.parametrize("flag", ["--yes", "--dry-run", "--prune", "--kill-attached", "--allow-server-down"])
def test_fix_flags_without_fix_are_usage_errors(tmp_path, flag):
    proc = run_health(tmp_path, "--demo", flag)
    assert proc.returncode == 4 and f"{flag} only applies with --fix" in proc.stderr
