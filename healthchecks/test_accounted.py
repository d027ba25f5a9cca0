"""Every agent program's process on the machine has one owner: a manager's record, a person, or it is named as
nobody's; two managers claiming one process is a conflict, never acted on."""

import pytest

from healthchecks.checks import ACCOUNTED_FOR
from healthchecks.results import Finding


@pytest.mark.check(ACCOUNTED_FOR)
def test_every_agent_process_is_accounted_for(findings: list[Finding]) -> None:
    assert not findings
