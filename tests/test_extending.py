"""The README's examples of extending the suite, run as written: a check with its fixer, an output format."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import REPO, alive, run_health, settings_args

from healthchecks.observe import observe
from healthchecks.run import Run


def readme_blocks() -> dict[str, str]:
    """Each ```python block of the README whose first line is `# <file name>`, by that name."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n# ([\w./]+)[^\n]*\n(.*?)```", text, re.S)
    return {Path(name).name: code for name, code in blocks}


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_check_of_your_own_is_judged_reported_and_fixed(world, tmp_path, workers):
    blocks = readme_blocks()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "conftest.py").write_text(blocks["conftest.py"])
    (mine / "test_long_running.py").write_text(blocks["test_long_running.py"])
    world.agent(None, "claude", started_ago=600)
    old = world.agent("running", "claude", started_ago=7200)
    world.start()
    doc = tmp_path / "findings.json"
    args = (*settings_args(world.settings), "--findings-json", str(doc), *workers)
    found = run_health(tmp_path, str(mine / "test_long_running.py"), *args)
    assert found.returncode == 1, found.stdout + found.stderr
    assert f"session agent_{old}: running for more than 3600s" in found.stdout
    assert '"long_running"' in doc.read_text()
    claude = world.claude_in_sessions([a for a in world.agents if a.id == old])[old]
    fixed = run_health(tmp_path, str(mine / "test_long_running.py"), *args, "--fix", "--yes")
    assert f"agent_{old}" not in world.live_sessions(), fixed.stdout + fixed.stderr
    assert not alive(claude)
    assert "long_running" not in {line.split(":")[0].strip() for line in fixed.stdout.splitlines() if "FAILED" in line}


def test_a_check_defined_too_late_is_told_how_to_register(world, tmp_path):
    """A check added after the machine was read (in a test module) gets one clear line, not a KeyError."""
    world.agent(None, "claude")
    world.start()
    late = tmp_path / "test_late.py"
    late.write_text(
        "import pytest\n"
        "@pytest.mark.check('not_registered')\n"
        "def test_late(findings):\n"
        "    assert not findings\n"
    )
    proc = run_health(tmp_path, str(late), *settings_args(world.settings), "-n", "2")
    assert "no check 'not_registered' was judged: add it in a `pytest_healthchecks_register` hook" in proc.stdout
    assert "KeyError" not in proc.stdout


def test_an_output_of_your_own(world, tmp_path):
    code = readme_blocks()["findings_tsv.py"]
    namespace: dict = {"__name__": "healthchecks.outputs.findings_tsv", "__package__": "healthchecks.outputs"}
    exec(compile(code, "findings_tsv.py", "exec"), namespace)
    ghost = world.agent("working", None)
    world.agent(None, "claude")
    world.start()
    run = Run(observe(world.settings))
    assert namespace["write"](run, "out.tsv", tmp_path) is None
    assert (tmp_path / "out.tsv").read_text() == (
        f"ghost_agents\tagent {ghost}\tregistry says active, session agent_{ghost} is not live\n"
    )
    assert namespace["OUTPUT"].option.name == "--findings-tsv"
