"""Agents the registry calls active are alive in tmux."""

import pytest

from healthchecks.checks import GHOST_AGENTS, SPLIT_BRAIN
from healthchecks.results import Finding


@pytest.mark.check(GHOST_AGENTS)
def test_no_ghost_agents(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check(SPLIT_BRAIN)
def test_no_agent_runs_twice(findings: list[Finding]) -> None:
    assert not findings
