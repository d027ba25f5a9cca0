"""Claude Code Agent Teams' conventions (healthchecks.dialect says what each field means)."""

from __future__ import annotations

import re

from ...dialect import Dialect, Evidence, Mark, ScopeKind, StatusClass

# --- Claude Code Agent Teams (CLAUDE_CODE_EXPERIMENTAL_AGENT_TEAMS=1, teammateMode tmux; files of 2.1.332) --------
# A member's `isActive` as the reader writes it: absent or true is "active", false "inactive" (idle: its
# process may well run on; a live pane is then information, never a leak).
AGENT_TEAMS = Dialect(
    name="agent-teams",
    era="Claude Code 2.1.178+ (a team per session, <config dir>/teams/<team>/config.json; read at 2.1.332)",
    statuses={"active": StatusClass.ACTIVE, "inactive": StatusClass.STOPPED},
    status_in=frozenset({ScopeKind.TEAM}),
    counters={},
    finished=frozenset(),
    launch=(),
    # `<name>@<team>`: the lead starts every teammate with `--agent-id <name>@<team>`
    id_shape=re.compile(r"[^@\s]+@[^@\s]+"),
    evidence=frozenset({Evidence.ID_AFTER_FLAG}),
    # a ghost member of a team whose lead is dead: `isActive: false` (the lead's own mark of an idle member)
    mark=Mark("inactive", ()),
    manager="Claude Code Agent Teams",
    session_prefix="",  # it names no sessions: its members live in panes of the lead's server
    id_flag="--agent-id",
    private_server=re.compile(r"claude-swarm-(\d+)"),
    nouns=("member", "team"),
    members_repeat_authority=False,
)
