"""Agent tmux sessions run Claude while, and only while, the registry says their agent is active."""

import pytest

from healthchecks.checks import LEAKED_SESSIONS, ZOMBIE_SESSIONS


@pytest.mark.check(ZOMBIE_SESSIONS)
def test_no_zombie_sessions(findings):
    assert not findings


@pytest.mark.check(LEAKED_SESSIONS)
def test_no_leaked_sessions(findings):
    assert not findings
