"""The HTML report, rendered by a real browser: the figures and a ghost's id are on the page a reviewer sees."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html import unescape

import pytest
from helpers import REPO, run_health, settings_args

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
    assert "Faults found in 1 check(s) 1 fault(s) in 1 of 17 checks; 0 not judged" in text  # the verdict first
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


DEMO_NODES = {"server": 1, "healthy": 8, "zombie": 1, "leaked": 1, "untracked": 1, "ghost": 5,
              "attached": 11, "orphan": 1, "foreign": 1}


def test_demo_report_before_and_after_the_fix(tmp_path):
    """The verdict, the fleet picture's coloured nodes by class, and the trend after two runs, as a browser shows
    them; the screenshots are kept under reports/ (outside git) for a person to look at."""
    shots = REPO / "reports" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for step, args, banner in (("before", (), "Faults found in 5 check(s)"),
                               ("after", ("--fix", "--yes"), "Repaired: 17 action(s) done, every check passes now")):
        proc = run_health(tmp_path, "--demo", *args)
        assert proc.returncode == (1 if step == "before" else 0), proc.stdout[-2000:]
        report = tmp_path / "reports" / "latest.html"
        dom = render(report, tmp_path, "--dump-dom", "--virtual-time-budget=5000").stdout
        assert banner in visible_text(dom), re.findall(r'class="hc-verdict[^"]*">[^<]*', dom)
        counts = {c: len(re.findall(rf'class="hc-node" data-class="{c}"', dom)) for c in DEMO_NODES}
        assert counts == DEMO_NODES
        shot = shots / f"demo-{step}.png"
        assert render(report, tmp_path, f"--screenshot={shot}", "--window-size=1280,2600").returncode == 0
    trend = dom[dom.index("faults over the last runs"):]
    assert len(re.findall(r'<circle[^>]*class="dot', trend)) >= 2 * 5  # two runs, five series
    index = (tmp_path / "reports" / "index.html").read_text()
    assert index.count("<tr class=") == 2 and "Repaired" in index and "Faults found" in index
