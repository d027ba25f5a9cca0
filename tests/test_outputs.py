"""Machine-readable outputs, checked figure by figure against the truth of a world we built."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from helpers import REPO, other_program, run_health, settings_args
from jsonschema import Draft202012Validator
from junitparser import Failure, JUnitXml
from prometheus_client.parser import text_string_to_metric_families

from healthchecks.testing.world import World


def faulty(world: World) -> dict[str, object]:
    """A world whose every figure we know: 3 healthy, 2 ghosts, 1 zombie, 1 leaked, 1 orphan, 4 history."""
    healthy = [world.agent(s, "claude") for s in (None, "running", "working")]
    ghosts = [world.agent("working", None), world.agent(None, None)]
    zombie = world.agent("running", "shell")
    leaked = world.agent("completed", "claude")
    orphan = world.agent("completed", "orphan")
    history = [world.agent(s, None) for s in ("completed", "failed", "terminated", "killed")]
    untracked = world.untracked_session()
    world.foreign_claude()
    world.write_registries(global_overrides={"active_agents": 9})
    world.start()
    return {
        "healthy": healthy,
        "ghosts": ghosts,
        "zombie": zombie,
        "leaked": leaked,
        "orphan": orphan,
        "history": history,
        "untracked": untracked,
    }


def parse_metrics(text: str) -> dict[str, float]:
    """Samples by name and labels, read with prometheus_client's own parser (the format's reference reader);
    the workspace and host labels every sample carries are checked here and left out of the keys."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            assert labels.pop("host") == socket.gethostname() and labels.pop("workspace"), sample
            label = "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
            samples[sample.name + label] = sample.value
    return samples


@pytest.mark.skipif(shutil.which("promtool") is None and not os.environ.get("CI"),
                    reason="no promtool (apt-get install prometheus); CI installs it")
def test_metrics_pass_promtool(world, tmp_path):
    faulty(world)
    metrics = tmp_path / "health.prom"
    run_health(tmp_path, *settings_args(world.settings), "--metrics-file", str(metrics))
    lint = subprocess.run(["promtool", "check", "metrics"], input=metrics.read_text(), capture_output=True, text=True,
                          timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def _world_ids(doc: dict) -> list[str]:
    return [f["finding_id"] for f in doc["findings"] if not other_program(f["check"], f["reason"])]


def test_findings_json_and_metrics_match_the_world(world, tmp_path):
    truth = faulty(world)
    orphan_pid = next(p.pid for p in world.standins() if truth["orphan"] in " ".join(p.cmdline()))
    foreign_pid = world.popen[0].pid
    findings, metrics = tmp_path / "out" / "findings.json", tmp_path / "out" / "health.prom"
    proc = run_health(
        tmp_path, *settings_args(world.settings), "--findings-json", str(findings), "--metrics-file", str(metrics)
    )
    assert proc.returncode == 1

    doc = json.loads(findings.read_text())
    entries = len(world.agents)  # 3 + 2 + 1 + 1 + 1 + 4 = 12
    assert doc["summary"] == {
        "registry_agents": entries,
        "active_counter": 9,
        "active_entries": 3 + 2 + 1,
        "claude_attached": 3 + 1 + 1,
        "claude_orphan": 1,
        "claude_foreign": 1,
        "agent_sessions": 3 + 1 + 1 + 1,
        "untracked_sessions": 1,
        "ghosts": 2,
        "claude_total": 7,
    }
    validator = Draft202012Validator(
        json.loads((REPO / "healthchecks" / "schemas" / "findings.schema.json").read_text()),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    assert list(validator.iter_errors(doc)) == []  # the published schema
    assert doc["version"] == 2 and doc["status"] == "faults"
    assert {"kind": "process", "id": str(orphan_pid)} in [f["entity"] for f in doc["findings"]]
    assert len({f["finding_id"] for f in doc["findings"]}) == len(doc["findings"])  # one id a finding
    again = run_health(tmp_path, *settings_args(world.settings), "--findings-json", str(findings))
    # the same ids for the same findings (another test's agent programs, named as information, come and go)
    assert again.returncode == 1 and _world_ids(json.loads(findings.read_text())) == _world_ids(doc)
    failing = {(f["check"], f["label"]) for f in doc["findings"] if f["severity"] == "fail"}
    assert failing == {
        *(("ghost_agents", f"agent {g}") for g in truth["ghosts"]),
        ("zombie_sessions", f"session agent_{truth['zombie']}"),
        ("leaked_sessions", f"session agent_{truth['leaked']}"),
        ("orphan_processes", f"pid {orphan_pid}"),
        ("counters", "registry/GLOBAL_REGISTRY.json active_agents"),
    }
    info = {(f["check"], f["label"]) for f in doc["findings"]
            if f["severity"] == "info" and not other_program(f["check"], f["reason"])}
    assert info == {("leaked_sessions", f"session {truth['untracked']}"), ("orphan_processes", f"pid {foreign_pid}")}
    assert all(f["snapshot_time"] == doc["snapshot_time"] for f in doc["findings"])
    assert {c: v["status"] for c, v in doc["checks"].items()} == {
        "registry_schema": "pass",
        "counters": "fail",
        "registry_agreement": "pass",
        "known_statuses": "pass",
        "timestamps": "pass",
        "ghost_agents": "fail",
        "split_brain": "pass",
        "zombie_sessions": "fail",
        "leaked_sessions": "fail",
        "orphan_processes": "fail",
        "orphaned_agents": "pass",
        "duplicate_agents": "pass",
        "stale_scopes": "pass",
        "leaked_servers": "pass",
        "stale_pid_files": "pass",
        "leaked_worktrees": "pass",
        "accounted_for": "pass",
    }

    m = parse_metrics(metrics.read_text())
    p = "agent_healthchecks_"
    assert m[p + "registry_agents"] == entries
    assert m[p + 'active_agents{source="counter"}'] == 9 and m[p + 'active_agents{source="entries"}'] == 6
    assert [m[p + f'claude_processes{{class="{c}"}}'] for c in ("attached", "orphan", "foreign")] == [5, 1, 1]
    assert m[p + 'agent_sessions{tracked="true"}'] == 5 and m[p + 'agent_sessions{tracked="false"}'] == 1
    assert [
        m[p + n]
        for n in ("ghost_agents", "orphan_processes", "zombie_sessions", "leaked_sessions", "registry_count_mismatches")
    ] == [2, 1, 1, 1, 1]
    assert m[p + 'check_passed{check="ghost_agents"}'] == 0 and m[p + 'check_passed{check="registry_schema"}'] == 1
    assert all(m[p + f'check_judged{{check="{c}"}}'] == 1 for c in doc["checks"])
    assert 0 < m[p + "snapshot_duration_seconds"] < 30
    assert abs(m[p + "last_run_timestamp_seconds"] - json_time(doc["snapshot_time"])) < 0.01
    assert not list(metrics.parent.glob(".*.tmp"))  # written atomically: no temp file left behind


def json_time(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_junit_is_valid_in_its_family_and_read_back_by_junitparser(world, tmp_path):
    """xunit2 (the default) allows properties on the suite only; xunit1 on each test too. No family warning."""
    truth = faulty(world)
    xml = tmp_path / "j.xml"
    proc = run_health(tmp_path, *settings_args(world.settings), "--junitxml", str(xml), "-W", "error::UserWarning")
    assert proc.returncode == 1 and "PytestWarning" not in proc.stdout + proc.stderr
    (suite,) = JUnitXml.fromfile(str(xml))
    assert suite.name == "agent-healthchecks" and suite.tests == 17 and suite.failures == 5
    suite_props = [(p.name, p.value) for p in suite.properties()]
    for ghost in truth["ghosts"]:
        assert ("entity", f"agent {ghost}") in suite_props
    assert all(case._elem.find("properties") is None for case in suite)  # none inside a testcase
    failed = {case.name for case in suite if case.result and isinstance(case.result[0], Failure)}
    assert "test_no_ghost_agents" in failed
    legacy = run_health(tmp_path, *settings_args(world.settings), "--junitxml", str(xml), "-o", "junit_family=xunit1")
    assert legacy.returncode == 1
    (suite,) = JUnitXml.fromfile(str(xml))
    ghost_case = next(case for case in suite if case.name == "test_no_ghost_agents")
    entities = {p.get("value") for p in ghost_case._elem.iter("property") if p.get("name") == "entity"}
    assert entities == {f"agent {g}" for g in truth["ghosts"]}


def test_status_line_for_monitoring(world, tmp_path):
    truth = faulty(world)
    proc = run_health(tmp_path, *settings_args(world.settings), "--status-line")
    assert proc.returncode == 2
    first, *details = proc.stdout.splitlines()
    assert first == (
        "AGENT-HEALTH CRITICAL - 1 counters, 2 ghost_agents, 1 zombie_sessions, 1 leaked_sessions, "
        "1 orphan_processes | registry_schema=0;0;0;0 counters=1;0;0;0 registry_agreement=0;0;0;0 "
        "known_statuses=0;0;0;0 timestamps=0;0;0;0 ghost_agents=2;0;0;0 split_brain=0;0;0;0 zombie_sessions=1;0;0;0 "
        "leaked_sessions=1;0;0;0 orphan_processes=1;0;0;0 orphaned_agents=0;0;0;0 duplicate_agents=0;0;0;0 "
        "stale_scopes=0;0;0;0 leaked_servers=0;0;0;0 stale_pid_files=0;0;0;0 leaked_worktrees=0;0;0;0 "
        "accounted_for=0;0;0;0"
    )
    assert len(details) == 6
    assert {f"ghost_agents: agent {g}" for g in truth["ghosts"]} <= {d.split(": registry")[0] for d in details}
    # With a WARNING threshold of 2 failing findings a check, the same machine is a warning.
    warn = run_health(tmp_path, *settings_args(world.settings), "--status-line", "--status-warning", "2")
    assert warn.returncode == 1 and warn.stdout.startswith("AGENT-HEALTH WARNING - 1 counters, 2 ghost_agents")
    assert "ghost_agents=2;0;2;0" in warn.stdout


def test_status_line_ok_and_unknown(world, tmp_path):
    world.agent(None, "claude")
    world.start()
    ok = run_health(tmp_path, *settings_args(world.settings), "--status-line")
    assert (ok.returncode, ok.stdout.split(" | ")[0]) == (0, "AGENT-HEALTH OK - all 17 checks pass")
    world.global_path.write_text("{")
    unknown = run_health(tmp_path, *settings_args(world.settings), "--status-line")
    assert unknown.returncode == 2 and unknown.stdout.startswith(
        "AGENT-HEALTH CRITICAL - 1 registry_schema; not judged: counters"
    )
    assert "ghost_agents=U" in unknown.stdout  # unknown, never 0
    assert "ghost_agents: not judged (registry unusable:" in unknown.stdout


def _substitute(command: str, world: World, tmp_path: Path) -> list[str]:
    """The example's command with this checkout, this world and temporary output paths in place of /opt, /var."""
    args = shlex.split(command.replace("/opt/agent-healthchecks", str(REPO)))
    args = [str(tmp_path / Path(a).name) if a.startswith("/var/") else a for a in args]
    return [*args, *settings_args(world.settings), "-p", "no:hypothesispytest", "--report-dir", str(tmp_path)]


def test_systemd_service_command_exports_metrics(world, tmp_path):
    world.agent(None, "claude")
    world.start()
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(REPO / "contrib" / "systemd" / "agent-healthchecks.service")
    service = unit["Service"]
    assert service["SuccessExitStatus"] == "1" and service["Type"] == "oneshot"
    proc = subprocess.run(
        _substitute(service["ExecStart"], world, tmp_path), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout
    metrics = parse_metrics((tmp_path / "agent_healthchecks.prom").read_text())
    assert metrics["agent_healthchecks_registry_agents"] == 1
    assert json.loads((tmp_path / "findings.json").read_text())["summary"]["ghosts"] == 0
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(REPO / "contrib" / "systemd" / "agent-healthchecks.timer")
    assert timer["Timer"]["OnUnitActiveSec"] and timer["Install"]["WantedBy"] == "timers.target"


def test_cron_line_command_exports_metrics(world, tmp_path):
    world.agent("working", None)
    world.start()
    line = next(
        x
        for x in (REPO / "contrib" / "cron" / "agent-healthchecks").read_text().splitlines()
        if x and not x.startswith("#")
    )
    fields = line.split(None, 6)
    assert re.fullmatch(r"\*/5", fields[0]) and fields[5] == "dev"
    command = fields[6].split(" && ", 1)[1].split(" > ")[0]
    env, _, rest = command.partition(" ")
    args = _substitute(rest, world, tmp_path)
    proc = subprocess.run(
        args,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, env.split("=")[0]: str(world.workspace)},
    )
    assert proc.returncode == 1  # a ghost: faults found, still exported
    assert parse_metrics((tmp_path / "agent_healthchecks.prom").read_text())["agent_healthchecks_ghost_agents"] == 1


def test_output_paths_relative_to_where_pytest_runs(world, tmp_path):
    """`--metrics-file rel.prom` is written where pytest was started (run_health starts it in the checkout)."""
    world.agent(None, "claude")
    world.start()
    out = tmp_path / "out"
    rel = os.path.relpath(out, REPO)
    assert not Path(rel).is_absolute()
    proc = run_health(tmp_path, *settings_args(world.settings), "--metrics-file", f"{rel}/m.prom",
                      "--findings-json", f"{rel}/f.json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = (out / "m.prom").read_text()
    assert f'workspace="{world.settings.workspace}"' in text
    assert parse_metrics(text)["agent_healthchecks_registry_agents"] == 1
    assert json.loads((out / "f.json").read_text())["status"] == "healthy"


def test_figures_that_cannot_be_judged_are_absent_not_zero(world, tmp_path):
    """A broken registry leaves Claude attribution and session tracking unknown: no gauge may claim 0."""
    world.agent(None, "claude")
    world.agent("completed", "orphan")
    world.start()
    world.global_path.write_text("{")
    metrics, findings = tmp_path / "m.prom", tmp_path / "f.json"
    proc = run_health(
        tmp_path, *settings_args(world.settings), "--metrics-file", str(metrics), "--findings-json", str(findings)
    )
    assert proc.returncode == 1
    m = parse_metrics(metrics.read_text())
    p = "agent_healthchecks_"
    assert m[p + 'claude_processes{class="attached"}'] == 1  # needs tmux only: still known
    for unknown in ('claude_processes{class="orphan"}', 'claude_processes{class="foreign"}',
                    'agent_sessions{tracked="true"}', 'agent_sessions{tracked="false"}', "registry_agents"):
        assert p + unknown not in m
    summary = json.loads(findings.read_text())["summary"]
    assert summary["claude_total"] == 2 and summary["claude_attached"] == 1
    assert summary["claude_orphan"] is None and summary["untracked_sessions"] is None
    assert "Claude processes     2 (1 attached, n/a orphan, n/a foreign)" in proc.stdout


APPENDER = """
import sys
from pathlib import Path
from healthchecks.outputs import history
for i in range(60):
    history.append(Path(sys.argv[1]), {"time": i, "workspace": sys.argv[2], "status": "healthy", "headline": "",
                                       "report": "", "counts": {}})
"""


def test_history_from_runs_at_the_same_time_keeps_every_line_whole(tmp_path):
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, str(tmp_path), name], cwd=REPO) for name in "ab"]
    assert [w.wait(120) for w in writers] == [0, 0]
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line whole
    assert sorted(r["workspace"] for r in records) == ["a"] * 60 + ["b"] * 60


def test_after_a_fix_the_outputs_name_the_snapshot_their_results_were_judged_on(world, tmp_path):
    """Findings JSON and metrics after --fix hold the results of the machine looked at again: their time is that
    snapshot's, not the one taken before the fix."""
    from helpers import fix_in_process

    from healthchecks.observe import observe
    from healthchecks.outputs import findings_json, prometheus
    from healthchecks.run import Run

    world.agent(None, "claude")
    world.agent("working", None)  # a ghost: the fix marks it
    world.start()
    before = observe(world.settings)
    report = fix_in_process(world.settings)
    assert report.ok and report.after_observation is not None
    run = Run(before, fix_report=report)
    findings_json.write(run, str(tmp_path / "f.json"), tmp_path)
    prometheus.write(run, str(tmp_path / "m.prom"), tmp_path)
    after = report.after_observation.snapshot.taken_at
    assert after > before.snapshot.taken_at
    assert abs(json_time(json.loads((tmp_path / "f.json").read_text())["snapshot_time"]) - after) < 0.01
    assert abs(parse_metrics((tmp_path / "m.prom").read_text())["agent_healthchecks_last_run_timestamp_seconds"]
               - after) < 0.01


def _files(root: Path, leave_out: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and leave_out not in p.parents}


def test_installed_mode_writes_its_reports_to_the_cwd_whatever_the_workspace(tmp_path):
    """`pytest --pyargs healthchecks --workspace W` from a project folder: pytest's rootdir becomes the common
    ancestor of the cwd and W (with W under another top-level folder, `/`); the reports still go to ./reports."""
    project, world = tmp_path / "home" / "project", World(tmp_path / "srv" / "world")  # ancestor: tmp_path
    project.mkdir(parents=True)
    try:
        world.agent(None, "claude")
        world.start()
        before = _files(tmp_path, world.root)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "PYTEST_"))}
        # no:cacheprovider: pytest's own .pytest_cache goes to its rootdir whatever this plugin does
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:hypothesispytest", "-p", "no:cacheprovider",
                               "--pyargs", "healthchecks", *settings_args(world.settings)], cwd=project, env=env,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        world.teardown()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"rootdir: {tmp_path}" in proc.stdout  # the arguments provoked the common-ancestor rootdir
    reports = project / "reports"
    new = _files(tmp_path, world.root) - before
    assert {p.name for p in new if p.parent == reports} >= {"latest.html", "history.jsonl", "index.html"}
    assert all(p.parent == reports for p in new), sorted(map(str, new))
