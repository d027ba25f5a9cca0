"""Waivers: a person acknowledges a finding until a date; it is shown as waived everywhere and never acted on."""

from __future__ import annotations

import json
from datetime import date, timedelta

from helpers import run_health, settings_args


def waiver_file(tmp_path, entity: str, expires: date, check: str = "ghost_agents") -> str:
    """A waiver file the operator keeps outside the workspace; returns the option that names it."""
    path = tmp_path / "waivers.toml"
    path.write_text(
        f'[[waiver]]\ncheck = "{check}"\nentity = "{entity}"\nreason = "kept for the post-mortem"\n'
        f"expires = {expires.isoformat()}\n"
    )
    return f"--waivers={path}"


def test_a_waived_ghost_is_xfail_everywhere_and_never_marked(world, tmp_path):
    world.agent(None, "claude")
    ghost = world.agent("working", None)
    world.start()
    waivers = waiver_file(tmp_path, f"agent {ghost.split('-')[0]}-*", date.today() + timedelta(days=30))
    doc = tmp_path / "f.json"
    proc = run_health(tmp_path, *settings_args(world.settings), waivers, "--findings-json", str(doc), "-rx",
                      "--fix", "--yes")
    assert proc.returncode == 0, proc.stdout
    assert "1 xfailed" in proc.stdout and "kept for the post-mortem" in proc.stdout
    (finding,) = [f for f in json.loads(doc.read_text())["findings"] if f["check"] == "ghost_agents"]
    assert finding["severity"] == "waived" and finding["waiver"].startswith("waived until")
    assert json.loads(world.global_path.read_text())["agents"][ghost]["status"] == "working"  # never acted on
    status = run_health(tmp_path, *settings_args(world.settings), waivers, "--status-line")
    assert status.returncode == 0 and status.stdout.startswith("AGENT-HEALTH OK")


def test_an_expired_waiver_no_longer_applies_and_says_so(world, tmp_path):
    world.agent(None, "claude")
    ghost = world.agent("working", None)
    world.start()
    waivers = waiver_file(tmp_path, f"agent {ghost}", date.today())
    proc = run_health(tmp_path, *settings_args(world.settings), waivers)
    assert proc.returncode == 1
    assert f"agent {ghost}: registry says active" in proc.stdout and "waiver expired on" in proc.stdout


def test_a_waiver_in_pyproject(world, tmp_path):
    world.agent(None, "claude")
    ghost = world.agent("working", None)
    world.start()
    project = tmp_path / "pyproject.toml"
    project.write_text(
        '[tool.agent-healthchecks]\n[[tool.agent-healthchecks.waiver]]\ncheck = "ghost_agents"\n'
        f'entity = "agent {ghost}"\nreason = "known"\nexpires = {(date.today() + timedelta(days=1)).isoformat()}\n'
    )
    proc = run_health(tmp_path, "-c", str(project), *settings_args(world.settings))
    assert proc.returncode == 0 and "1 xfailed" in proc.stdout, proc.stdout


def test_a_broken_waiver_file_is_one_line_before_anything_runs(world, tmp_path):
    world.start()
    broken = tmp_path / "waivers.toml"
    broken.write_text('[[waiver]]\ncheck = "ghost_agents"\nentity = "agent *"\n')
    proc = run_health(tmp_path, *settings_args(world.settings), "--waivers", str(broken))
    assert proc.returncode == 4
    assert f"{broken}: waiver 1: missing reason, expires" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_waived_counter_is_never_rewritten_even_by_a_write_that_fixes_its_file(world, tmp_path):
    """A waiver on one counter: `--fix --yes` marks a ghost in the same file (and recomputes the file's other
    counters) but leaves the waived counter as it was; alone, the waived counter is no action at all."""
    world.agent(None, "claude")
    ghost = world.agent("working", None)
    world.write_registries(global_overrides={"active_agents": 9, "total_agents_spawned": 7})
    world.start()
    waivers = waiver_file(tmp_path, "registry/GLOBAL_REGISTRY.json active_agents", date.today() + timedelta(days=30),
                          check="counters")
    doc = tmp_path / "f.json"
    before = run_health(tmp_path, *settings_args(world.settings), waivers, "--findings-json", str(doc))
    waived = [f for f in json.loads(doc.read_text())["findings"] if f["severity"] == "waived"]
    assert before.returncode == 1  # the ghost and total_agents_spawned fail
    assert [(f["check"], f["entity"]["id"]) for f in waived] == [
        ("counters", "registry/GLOBAL_REGISTRY.json active_agents")]
    proc = run_health(tmp_path, *settings_args(world.settings), waivers, "--fix", "--yes")
    data = json.loads(world.global_path.read_text())
    assert data["agents"][ghost]["status"] != "working", proc.stdout  # the ghost was acted on, in the same file
    assert data["total_agents_spawned"] == 2, proc.stdout  # a counter not waived: recomputed in that write
    assert data["active_agents"] == 9, proc.stdout  # the waived one: never acted on
    assert "active_agents 9 →" not in proc.stdout
    assert proc.returncode == 0, proc.stdout
    again = world.global_path.read_bytes()
    proc = run_health(tmp_path, *settings_args(world.settings), waivers, "--fix", "--yes")
    assert proc.returncode == 0 and "(no actions)" in proc.stdout, proc.stdout
    assert world.global_path.read_bytes() == again
