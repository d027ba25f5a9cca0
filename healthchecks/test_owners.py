"""Records owned by a process (a Claude Code Agent Teams team and its lead): nothing of theirs outlives the owner,
nothing runs twice, and no private tmux server of a dead owner is left behind."""

import pytest

from healthchecks.checks import DUPLICATE_AGENTS, LEAKED_SERVERS, ORPHANED_AGENTS, STALE_SCOPES
from healthchecks.results import Finding


@pytest.mark.check(ORPHANED_AGENTS)
def test_no_agents_outliving_their_owner(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check(DUPLICATE_AGENTS)
def test_no_agent_process_runs_twice(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check(STALE_SCOPES)
def test_no_stale_teams(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check(LEAKED_SERVERS)
def test_no_leaked_private_tmux_servers(findings: list[Finding]) -> None:
    assert not findings
