"""Judging's column-wise fast paths give what their item-by-item forms give (bench/RESULTS.md, judging 2026-12-07
21:40): the tmux view's sessions and windows made from the panes' columns, and the times a record writes."""

from __future__ import annotations

from itertools import compress, repeat
from typing import Any

import pytest

from healthchecks.analysis.sessions import TmuxView, _grouped_sessions, _server_windows, _shown_by_panes
from healthchecks.checks import _written
from healthchecks.tmux import Pane, State, TmuxServer


def _pane(session: str, n: int, window: int | None = None) -> Pane:
    return Pane(session, 1000.0 + n, f"%{n}", 100 + n, f"${n}", window_id=f"@{n if window is None else window}")


def _servers() -> list[tuple[TmuxServer, ...]]:
    one_pane = TmuxServer("a", State.RUNNING, panes=tuple(_pane(f"agent_{n}", n) for n in range(5)))
    # a session of three panes in one window, and a window a second session (its group) shows too
    shapes = TmuxServer("b", State.RUNNING, panes=(
        _pane("x", 10, 10), _pane("x", 11, 10), _pane("y", 12, 12), _pane("x", 13, 10), _pane("z", 14, 12)))
    same_names = TmuxServer("c", State.RUNNING, panes=(_pane("agent_1", 20), _pane("x", 21)))
    again = TmuxServer("a", State.RUNNING, panes=(_pane("agent_1", 30),))  # a label two servers share
    return [(one_pane,), (shapes,), (one_pane, shapes, same_names), (same_names, one_pane), (one_pane, again), ()]


@pytest.mark.parametrize("servers", _servers())
def test_sessions_and_windows_as_pane_by_pane(servers: tuple[TmuxServer, ...]) -> None:
    assert TmuxView._sessions_of(servers) == dict(_grouped_sessions(servers))
    assert list(TmuxView._sessions_of(servers)) == list(_grouped_sessions(servers))
    if len({s.label for s in servers}) == len(servers):
        windows = {key: names for s in servers for key, names in _server_windows(s)}
        assert list(windows.items()) == list(_shown_by_panes([(s.label, p) for s in servers for p in s.panes]).items())


@pytest.mark.parametrize("times", [
    [None, "2026-12-07T20:39:08.000000", None, None], [None, "a", None, ""], ["x", None, 0, "y"], [None] * 4, [],
    ["", ""], ["a", 1.5, None], [False, "a"], [None, [], "z"], [0.0, None], ["a", "b"],
])
def test_written_times_are_the_strings_among_them(times: list[Any]) -> None:
    assert _written(times) == list(compress(times, map(isinstance, times, repeat(str))))
