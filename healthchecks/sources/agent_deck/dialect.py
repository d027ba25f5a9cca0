"""agent-deck's conventions (healthchecks.dialect says what each field means)."""

from __future__ import annotations

import re

from ...dialect import Dialect, Evidence, ScopeKind, StatusClass

# --- agent-deck (asheshgoplani/agent-deck; read at v1.14.0, 47bb210) --------------------------------------------
AGENT_DECK = Dialect(
    name="agent-deck",
    era="v1.14.0 (47bb210, schema_version 13): <data root>/profiles/<profile>/state.db",
    statuses={**dict.fromkeys(("running", "waiting", "idle", "starting"), StatusClass.ACTIVE),
              # error: it found the session dead itself (last-known, like stopped: not expected to run)
              "stopped": StatusClass.STOPPED, "error": StatusClass.STOPPED},
    status_in=frozenset({ScopeKind.STATE}),
    counters={},
    finished=frozenset(),
    launch=(),
    id_shape=re.compile(r"(?!)"),
    evidence=frozenset({Evidence.ENV_RECORD_ID, Evidence.CONVERSATION_IN_ARGS}),
    mark=None,  # its status is last-known and it rewrites rows itself: never written
    manager="agent-deck",
    session_prefix="agentdeck_",
    id_env="AGENTDECK_INSTANCE_ID",
)
