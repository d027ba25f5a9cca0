"""The registries can be read, and say the same thing about their agents."""

import pytest

from healthchecks.checks import COUNTERS, KNOWN_STATUSES, REGISTRY_AGREEMENT, REGISTRY_SCHEMA, TIMESTAMPS
from healthchecks.results import Finding


@pytest.mark.check(REGISTRY_SCHEMA)
def test_registry_files_match_schema(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check(COUNTERS)
def test_counters_match_entries(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check(REGISTRY_AGREEMENT)
def test_task_registries_agree_with_global(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check(KNOWN_STATUSES)
def test_agent_statuses_are_known(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check(TIMESTAMPS)
def test_registry_times_are_not_in_the_future(findings: list[Finding]) -> None:
    assert not findings
