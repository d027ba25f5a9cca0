"""Agent tmux sessions run Claude while, and only while, the registry says their agent is active."""

import pytest

from healthchecks.checks import LEAKED_SESSIONS, ZOMBIE_SESSIONS
from healthchecks.results import Finding


@pytest.mark.check(ZOMBIE_SESSIONS)
def test_no_zombie_sessions(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check(LEAKED_SESSIONS)
def test_no_leaked_sessions(findings: list[Finding]) -> None:
    assert not findings
