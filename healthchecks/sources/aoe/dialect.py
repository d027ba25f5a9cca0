"""agent-of-empires' conventions (healthchecks.dialect says what each field means)."""

from __future__ import annotations

import re

from ...dialect import Dialect, Evidence, ScopeKind, StatusClass

# --- agent-of-empires (`aoe`, njbrake/agent-of-empires; read at 2c3f897b) ---------------------------------------
# `stopped` is written only after aoe killed the session (`aoe session stop`): a live session is leaked. Its poller
# turns a missing session or a dead agent pane into `error` and never overwrites stopped/deleting/creating.
AOE = Dialect(
    name="agent-of-empires",
    era="2c3f897b (2026-05): <app dir>/profiles/<profile>/sessions.json, a JSON array renamed into place",
    statuses={
        # expected to run: no session is a ghost (aoe's poller would mark it error); `unknown` is an idle
        # custom command whose state its screen did not tell
        **dict.fromkeys(("running", "waiting", "idle", "starting", "unknown"), StatusClass.ACTIVE),
        "stopped": StatusClass.TERMINAL,  # aoe killed its session first: a live one is leaked
        "error": StatusClass.STOPPED,  # aoe's own verdict on a dead agent: information
        # aoe is creating or deleting it right now: neither a session nor its absence means anything yet
        **dict.fromkeys(("creating", "deleting"), StatusClass.PAUSED),
    },
    status_in=frozenset({ScopeKind.STATE}),
    counters={},
    finished=frozenset(),
    launch=(),
    id_shape=re.compile(r"(?!)"),  # ids are never looked for in arguments: only in AOE_INSTANCE_ID
    evidence=frozenset({Evidence.ENV_RECORD_ID, Evidence.CONVERSATION_IN_ARGS}),
    mark=None,  # its own poller marks errors, and it writes under a lock whose name changed: never written
    manager="agent-of-empires",
    session_prefix="aoe_",
    helper_prefixes=("aoe_term_", "aoe_cterm_", "aoe_tool_"),  # its paired shells and tool sessions
    agent_pane=0,  # pane .0 of the first window is the agent (aoe pins pane-base-index 0)
    id_env="AOE_INSTANCE_ID",  # set for hook-capable agents only (claude, codex, gemini, ...)
    ended={"stopped": "stopped (aoe writes it only after killing the session)"},
)
