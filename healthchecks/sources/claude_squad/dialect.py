"""claude-squad's conventions (healthchecks.dialect says what each field means)."""

from __future__ import annotations

import re

from ...dialect import Dialect, Evidence, ScopeKind, StatusClass

# --- claude-squad (smtg-ai/claude-squad, format stable since e852651; read at 434ca25) -------------------------
# status is an integer: Running 0, Ready 1, Loading 2, Paused 3. Paused keeps its session (since v1.0.10).
CLAUDE_SQUAD = Dialect(
    name="claude-squad",
    era="e852651..434ca25 (2025-04 ..): ~/.claude-squad/state.json, written without a lock",
    statuses={0: StatusClass.ACTIVE, 1: StatusClass.ACTIVE, 2: StatusClass.ACTIVE, 3: StatusClass.PAUSED},
    status_in=frozenset({ScopeKind.STATE}),
    counters={},
    finished=frozenset(),
    launch=(),
    id_shape=re.compile(r"(?!)"),  # titles are free text: never evidence in arguments
    # no id in argv or env: its worktree is the only sign, also once Kill removed it (with its record and session)
    evidence=frozenset({Evidence.CWD_IN_RECORD_DIR, Evidence.CWD_IN_REMOVED_WORKTREE}),
    mark=None,  # no lock to share with its writers: never written
    manager="claude-squad",
    session_prefix="claudesquad_",
    removed_worktrees=re.compile(r"worktrees/[^/]+_[0-9a-f]{8,}"),  # `<branch>_<hex nanos>` (session/git/worktree.go)
)
