"""Agents the registry calls active are alive in tmux."""

import pytest

from healthchecks.results import Finding


@pytest.mark.check("ghost_agents")
def test_no_ghost_agents(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check("split_brain")
def test_no_agent_runs_twice(findings: list[Finding]) -> None:
    assert not findings
