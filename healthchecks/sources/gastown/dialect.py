"""Gas Town's conventions (healthchecks.dialect says what each field means)."""

from __future__ import annotations

import re

from ...dialect import Dialect, Evidence, ScopeKind, StatusClass

# --- Gas Town (steveyegge/gastown, read at a8bd79bf) --------------------------------------------------------------
# Its per-agent record is the tmux session's environment (set with `new-session -e`). The reader names a live
# session's record "live" (an agent that should run), or "crew" when GT_ROLE is `<rig>/crew/<name>`: a person's
# session, which may run nothing (its own zombie check skips crew, doctor/zombie_check.go:68-72). The beads
# ledger's agent_state values (beads/status.go:14-24) are here for its agent beads (gastown/ledger.py):
# working, running, spawning are active (IsActive); stuck and awaiting-gate protect from cleanup.
GAS_TOWN = Dialect(
    name="gastown",
    era="a8bd79bf (2026-04): per-town tmux server, GT_* session env, <town>/.runtime/pids/<session>.pid",
    statuses={"live": StatusClass.ACTIVE, "crew": StatusClass.PAUSED,
              **dict.fromkeys(("working", "running", "spawning"), StatusClass.ACTIVE),
              **dict.fromkeys(("idle", "stuck", "escalated", "awaiting-gate"), StatusClass.PAUSED),
              **dict.fromkeys(("done", "nuked"), StatusClass.TERMINAL)},
    status_in=frozenset({ScopeKind.STATE}),
    counters={},
    finished=frozenset(),
    launch=(),
    id_shape=re.compile(r"(?!)"),  # session names are free text: never evidence in arguments
    evidence=frozenset({Evidence.ENV_ROOT_AND_ID}),
    mark=None,  # its records are its live sessions and its own files: never written
    manager="Gas Town",
    session_prefix="hq-",  # and each rig's beads prefix + "-": the reader's dialect is made per town
    id_env="GT_SESSION",
    root_env="GT_ROOT",
    crew_status="crew",
    # `gt down --all` ends with KillTrackedPIDs, which drops a pid file whose pid is dead or reused (pidtrack.go)
    tracked_cleanup="`gt down --all` removes it as it shuts the town down (else remove it by hand)",
    nouns=("agent", "town"),
)
