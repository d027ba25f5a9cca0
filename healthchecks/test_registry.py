"""The registries can be read, and say the same thing about their agents."""

import pytest

from healthchecks.results import Finding


@pytest.mark.check("registry_schema")
def test_registry_files_match_schema(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check("counters")
def test_counters_match_entries(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check("registry_agreement")
def test_task_registries_agree_with_global(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check("known_statuses")
def test_agent_statuses_are_known(findings: list[Finding]) -> None:
    assert not findings


@pytest.mark.check("timestamps")
def test_registry_times_are_not_in_the_future(findings: list[Finding]) -> None:
    assert not findings
