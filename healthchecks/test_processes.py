"""Every Claude process of this workspace runs inside a live agent pane."""

import pytest

from healthchecks.checks import ORPHAN_PROCESSES, STALE_PID_FILES
from healthchecks.results import Finding


@pytest.mark.check(ORPHAN_PROCESSES)
def test_no_orphan_claude_processes(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check(STALE_PID_FILES)
def test_no_stale_pid_files(findings: list[Finding]) -> None:
    assert not findings
