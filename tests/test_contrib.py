"""The multi-host pieces: Prometheus alert rules (checked and unit-tested by promtool) and the Grafana dashboard."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from helpers import REPO, run_health, settings_args

PROM = REPO / "contrib" / "prometheus"
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None and not os.environ.get("CI"),
                                    reason="no promtool (apt-get install prometheus); CI installs it")


@needs_promtool
def test_alert_rules_are_valid_and_fire_as_their_unit_tests_say():
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        proc = subprocess.run(["promtool", *args], cwd=PROM, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alerts_and_dashboard_use_only_metrics_the_checks_write(world, tmp_path):
    world.agent(None, "claude")
    world.agent("working", None)
    world.start()
    metrics = tmp_path / "health.prom"
    run_health(tmp_path, *settings_args(world.settings), "--metrics-file", str(metrics))
    written = set(re.findall(r"^# TYPE (\w+) gauge$", metrics.read_text(), re.M))
    dashboard = json.loads((REPO / "contrib" / "grafana" / "agent-health.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += re.findall(r"expr: (.+)", (PROM / "alerts.yml").read_text())
    used = {name for expr in exprs for name in re.findall(r"agent_healthchecks_\w+", expr)}
    assert used and used <= written, used - written
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
