"""Agent tmux sessions run Claude while, and only while, the registry says their agent is active."""

import pytest

from healthchecks.results import Finding


@pytest.mark.check("zombie_sessions")
def test_no_zombie_sessions(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check("leaked_sessions")
def test_no_leaked_sessions(findings: list[Finding]) -> None:
    assert not findings
