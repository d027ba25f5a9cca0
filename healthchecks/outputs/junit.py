"""JUnit XML (`--junitxml`): valid in the junit family it declares, named `agent-healthchecks`.

The default family (xunit2) allows properties on the suite only: there, the snapshot the run judged and one
`finding` (check: entity: reason) and `entity` per failing finding. The legacy family (xunit1) allows them on each
test as well, where they are also written. Each failing test's message lists its findings either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ..results import CheckResult
from ..run import Run

if TYPE_CHECKING:
    from _pytest.junitxml import LogXML

SUITE_NAME = "agent-healthchecks"


def _xml(config: pytest.Config) -> LogXML | None:
    from _pytest.junitxml import xml_key  # the junitxml plugin's report object, when --junitxml is given

    return config.stash.get(xml_key, None)


def record(item: pytest.Item, result: CheckResult, snapshot_id: str) -> None:
    """Give one check's test its per-test properties, where the family allows them."""
    xml = _xml(item.config)
    if xml is not None and xml.family == "xunit1":
        item.user_properties.append(("snapshot", snapshot_id))
        for f in result.failing:
            item.user_properties += [("finding", f.line()), ("entity", f.entity)]


def finish(config: pytest.Config, run: Run) -> None:
    """The suite's name (unless the user set junit_suite_name) and its properties, at the session's end (before
    junitxml writes the file): from the state the run leaves, after the fix when one was applied, like the tests."""
    xml = _xml(config)
    if xml is None:
        return
    if xml.suite_name == "pytest":
        xml.suite_name = SUITE_NAME
    xml.add_global_property("snapshot", run.snapshot_id)
    for result in run.final[0].values():
        for f in result.failing:
            xml.add_global_property("finding", f"{f.check}: {f.line()}")
            xml.add_global_property("entity", f.entity)
