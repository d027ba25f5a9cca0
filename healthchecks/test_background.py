"""What Claude Code's own background service (`claude --bg`) leaves behind: no leaked worktree."""

import pytest

from healthchecks.checks import LEAKED_WORKTREES
from healthchecks.results import Finding


@pytest.mark.check(LEAKED_WORKTREES)
def test_no_leaked_worktrees(findings: list[Finding]) -> None:
    assert not findings

