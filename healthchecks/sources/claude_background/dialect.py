"""Claude Code background agents' conventions (healthchecks.dialect says what each field means)."""

from __future__ import annotations

import re

from ...dialect import Dialect, Mark, ScopeKind, StatusClass

# --- Claude Code's own background service (`claude --bg`, a per-user daemon; files of 2.1.332) -------------------
# jobs/<short>/state.json `state`: working/running while its agent should run; stopped by `claude stop`; failed.
CLAUDE_BACKGROUND = Dialect(
    name="claude-background",
    era="Claude Code 2.1.x `claude --bg` (<config dir>/jobs/<short>/state.json, daemon/roster.json; read at 2.1.332)",
    statuses={"working": StatusClass.ACTIVE, "running": StatusClass.ACTIVE, "idle": StatusClass.ACTIVE,
              "stopped": StatusClass.STOPPED, "failed": StatusClass.TERMINAL, "done": StatusClass.TERMINAL},
    status_in=frozenset({ScopeKind.STATE}),
    counters={},
    finished=frozenset(),
    launch=(),
    id_shape=re.compile(r"[0-9a-f]{8}"),  # the job's short id: the first 8 hex of its session id
    evidence=frozenset(),  # its agents are Claude Code's own, proven by its files: never any manager's orphans
    # a ghost job is ended by Claude Code's own `claude stop <short>` (the writer runs it), which writes `stopped`
    mark=Mark("stopped", ()),
    manager="Claude Code (background agents)",
    session_prefix="",  # none of its processes runs in tmux
    nouns=("job", "jobs"),
    members_repeat_authority=False,
    tracked_cleanup="Claude Code removes sessions/<pid>.json itself; a stale one is harmless",
)
