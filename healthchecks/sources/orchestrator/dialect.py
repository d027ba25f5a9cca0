"""ClaudeOrchestratorMCP's conventions, era by era (healthchecks.dialect says what each field means)."""

from __future__ import annotations

import re

from ...dialect import Count, Dialect, Evidence, Mark, ScopeKind, Status, StatusClass

# --- ClaudeOrchestratorMCP (Albaraazain/ClaudeOrchestratorMCP) ---------------------------------------------
MANAGER = "ClaudeOrchestratorMCP"
PREFIX = "agent_"  # its tmux sessions' names begin so
CURSOR_BACKEND = ("cursor",)  # E3's `backend: "cursor"` entries run cursor-agent (an AgentRecord's program)
ACTIVE = ("running", "working", "blocked", "reviewing")
TERMINAL = ("completed", "failed", "error", "terminated", "killed", "phase_completed")
# No status is written at deploy: a missing status means "just deployed, running".
_ORCHESTRATOR_STATUSES: dict[Status, StatusClass] = {
    None: StatusClass.ACTIVE,
    **dict.fromkeys(ACTIVE, StatusClass.ACTIVE),
    **dict.fromkeys(TERMINAL, StatusClass.TERMINAL),
}
# The orchestrator launches Claude with these flags in every era (E0..E5); a person rarely types all four.
_LAUNCH = ("--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions")
# An orchestrator agent id: <agent_type>-<HHMMSS>[NNN]-<6 hex>. Shorter or other keys are never evidence.
_ID_TAIL = r"-\d{6}(?:\d{3})?-[0-9a-f]{6}"
_ID_SHAPE = re.compile(r".+" + _ID_TAIL)
# The same id as a token in a command line (the prompt names it: "Your agent id is <id>."): what an id may hold
# before its tail, and nothing an id holds on either side.
ORCHESTRATOR_ID_TOKEN = re.compile(rf"(?<![\w.:-])([\w.:]+{_ID_TAIL})(?![\w-])")
_EVIDENCE = frozenset(Evidence) - {Evidence.CWD_IN_RECORD_DIR, Evidence.ENV_RECORD_ID, Evidence.CONVERSATION_IN_ARGS,
                                   Evidence.LINEAGE}
_JSON_COUNTERS = {
    ScopeKind.GLOBAL: {"total_agents_spawned": Count.ENTRIES, "active_agents": Count.ACTIVE,
                       "total_tasks": Count.TASKS},
    ScopeKind.TASK: {"total_spawned": Count.ENTRIES, "active_count": Count.ACTIVE, "completed_count": Count.FINISHED},
}
# Its own cleanup of a dead agent (kill_real_agent's fields, the health daemon's reason).
_TERMINATED = Mark("terminated", ("terminated_at",), {"termination_reason": "session_not_found"})

ORCHESTRATOR_FIRST = Dialect(
    name="orchestrator E0-E1",
    era="526a899..d388d16 (2025-09/10): global entries never get a status; completed_count counts `completed` only",
    statuses=_ORCHESTRATOR_STATUSES,
    status_in=frozenset({ScopeKind.TASK}),
    counters=_JSON_COUNTERS,
    finished=frozenset({"completed"}),  # get_real_task_status counts it; kill_real_agent leaves it alone
    launch=_LAUNCH,
    id_shape=_ID_SHAPE,
    evidence=_EVIDENCE,
    mark=_TERMINATED,
    manager=MANAGER,
    session_prefix=PREFIX,
)
ORCHESTRATOR_JSON = Dialect(
    name="orchestrator E2-E4",
    era="8e57beb..800ac3c (2025-10 .. 2026-01): JSON registries, statuses in both, every finished agent counted",
    statuses=_ORCHESTRATOR_STATUSES,
    status_in=frozenset({ScopeKind.GLOBAL, ScopeKind.TASK}),
    counters=_JSON_COUNTERS,
    # E2 update_agent_progress: a move to any of these adds 1 to completed_count
    finished=frozenset({"completed", "terminated", "error", "failed"}),
    launch=_LAUNCH,
    id_shape=_ID_SHAPE,
    evidence=_EVIDENCE,
    mark=_TERMINATED,
    manager=MANAGER,
    session_prefix=PREFIX,
)
ORCHESTRATOR_SQLITE = Dialect(
    name="orchestrator E5",
    era="841c510..d746b7e (2026-01 .. 2026-04): registry/state.sqlite3; no counters are stored",
    statuses=_ORCHESTRATOR_STATUSES,
    status_in=frozenset({ScopeKind.STATE}),
    counters={},
    finished=frozenset(),
    launch=_LAUNCH,
    id_shape=_ID_SHAPE,
    evidence=_EVIDENCE,
    # what its cleanup of dead tmux sessions writes (mark_agents_as_failed_batch at d746b7e)
    mark=Mark("failed", ("completed_at", "last_update")),
    manager=MANAGER,
    session_prefix=PREFIX,
)
