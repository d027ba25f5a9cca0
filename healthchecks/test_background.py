"""What Claude Code's own background service (`claude --bg`) leaves behind: no leaked worktree; its daemon and
sessions files are information only (never failing)."""

import pytest

from healthchecks.checks import BACKGROUND_SERVICE, LEAKED_WORKTREES
from healthchecks.results import Finding


@pytest.mark.check(LEAKED_WORKTREES)
def test_no_leaked_worktrees(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check(BACKGROUND_SERVICE)
def test_background_service_information(findings: list[Finding]) -> None:
    assert not findings
