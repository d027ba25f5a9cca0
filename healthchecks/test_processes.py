"""Every Claude process of this workspace runs inside a live agent pane."""

import pytest


@pytest.mark.check("orphan_processes")
def test_no_orphan_claude_processes(findings):
    assert not findings
