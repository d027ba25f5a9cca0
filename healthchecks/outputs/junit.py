"""JUnit XML (`--junitxml`): each test carries the snapshot it was judged on and, per failing finding, its entity."""

from __future__ import annotations

import pytest

from ..results import CheckResult


def record(item: pytest.Item, result: CheckResult, snapshot_id: str) -> None:
    """Properties of one check's test; the check id also tells the controller which checks this run ran."""
    item.user_properties += [("check", result.check), ("snapshot", snapshot_id)]
    for f in result.failing:
        item.user_properties += [("finding", f.line()), ("entity", f.entity)]
