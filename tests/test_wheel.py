"""The package as a user installs it: a built wheel (not `-e`), in a clean venv, run from an empty directory.

A checkout imports every module from its source tree, so a package left out of the wheel is only seen here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import REPO

FAULTS = {"test_no_ghost_agents", "test_no_orphan_claude_processes", "test_counters_match_entries",
          "test_no_zombie_sessions", "test_no_leaked_sessions"}  # the demo's faults, one failing test each


def test_built_wheel_runs_the_demo_from_an_empty_directory(tmp_path: Path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TMUX", "PYTEST_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*argv: str | Path, cwd: Path = tmp_path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, start_new_session=True)

    # A copy without build/ or *.egg-info: what a clean clone builds, never files left over from an earlier build.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "reports"))
    built = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path / "dist", source)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("agent_healthchecks-*.whl")
    venv = tmp_path / "venv"
    installed = run(sys.executable, "-m", "venv", venv)
    assert installed.returncode == 0, installed.stderr[-3000:]
    installed = run(venv / "bin" / "pip", "install", "-q", wheel)
    assert installed.returncode == 0, installed.stderr[-3000:]

    empty = tmp_path / "empty"
    empty.mkdir()
    where = run(venv / "bin" / "python", "-c", "import fixers, healthchecks as h; print(h.__file__, fixers.__file__)",
                cwd=empty)
    files = [Path(f) for f in where.stdout.split()]
    assert len(files) == 2 and all(f.is_relative_to(venv) for f in files), where  # the wheel's, not the checkout's
    demo = run(venv / "bin" / "pytest", "--pyargs", "healthchecks", "--demo", cwd=empty, timeout=120)
    # 1 and every fault by name, as the README says; an import or collection failure is 2..5, never 1
    assert demo.returncode == 1, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert set(re.findall(r"^FAILED \S+::(\w+)", demo.stdout, re.MULTILINE)) == FAULTS
    assert "5 failed, 12 passed" in demo.stdout.splitlines()[-1]  # the demo fails 5 of the 17 checks
    assert list((empty / "reports").glob("healthchecks-*.html"))
