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
