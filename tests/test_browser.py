"""The HTML report, rendered by a real browser: the figures and a ghost's id are on the page a reviewer sees."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html import unescape

import pytest
from helpers import run_health, settings_args

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Skipped only on a developer's machine without Chromium; CI installs it, so there it must run.
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="no Chromium installed (apt-get install chromium)")


def render(path, tmp_path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *extra, path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )


def visible_text(dom: str) -> str:
    """The page's text after the browser ran its scripts: tags dropped, scripts and styles removed."""
    dom = re.sub(r"(?is)<(script|style|template)\b.*?</\1>", " ", dom)
    return re.sub(r"\s+", " ", unescape(re.sub(r"(?s)<[^>]+>", " ", dom)))


def test_report_renders_figures_and_ghost_ids(world, tmp_path):
    world.agent(None, "claude")
    ghost = world.agent("working", None)
    world.agent("completed", None)
    world.start()
    proc = run_health(tmp_path, *settings_args(world.settings))
    assert proc.returncode == 1
    report = tmp_path / "reports" / "latest.html"
    rendered = render(report, tmp_path, "--dump-dom", "--virtual-time-budget=5000")
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    text = visible_text(rendered.stdout)
    assert "Faults found in 1 check(s) 1 fault(s) in 1 of 10 checks; 0 not judged" in text  # the verdict first
    assert re.search(r'<tr class="bad"><td>Ghost agents</td><td>1</td>', rendered.stdout)  # coloured by state
    assert "Registry agents 3" in text
    assert "Active agents 2 (counter) / 2 (entries)" in text
    assert "Claude processes 1 (1 attached, 0 orphan, 0 foreign)" in text
    assert "Ghost agents 1" in text
    assert f"agent {ghost} registry says active, session agent_{ghost} is not live" in text  # findings table
    assert "test_no_ghost_agents" in text  # the results table, which the report's scripts build
    shot = tmp_path / "report.png"
    assert render(report, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000").returncode == 0
    assert shot.stat().st_size > 10_000
