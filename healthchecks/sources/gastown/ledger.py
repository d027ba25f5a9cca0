"""Gas Town's beads ledger, read only through the `bd` CLI (steveyegge/beads) when it is on PATH and answers within
the run's bound; never written. `bd` is not installable on this project's machines (its npm package downloads a
release binary at install): this follows its source and Gas Town's use of it, and the tests run a stand-in `bd`
shaped as its source says (healthchecks/sources/gastown/world.py).

What is read is what Gas Town reads (beads ListAgentBeads, gastown@a8bd79bf internal/beads/beads_agent.go:636-641):
`bd list --label=gt:agent --include-infra --json --flat --no-pager`, here with `--readonly` (a global flag: no write)
and `--limit 0` (bd lists 50 by default, beads@fbcee6c6 cmd/bd/list.go:1236), in the town (its own beads: the mayor,
the deacon, dogs) and in each rig's folder (its agents). Its output is a JSON array of issues; an agent's state is
the `agent_state:` line of its description, else a legacy `agent_state` field (ResolveAgentState, beads/status.go),
and its session follows from its id (ParseAgentBeadID, beads/agent_ids.go:372; session names, session/names.go).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from ...records import Problem, RegistryError
from ...strict_json import parse

BD_ARGS = ("--readonly", "list", "--label=gt:agent", "--include-infra", "--json", "--flat", "--no-pager", "--limit",
           "0")
MAX_BYTES = 32 << 20  # a ledger's agents: a few hundred bytes each
MAX_TEXT = 200  # characters of an id or a state kept (a longer one is no Gas Town's)
TOWN_ROLES = frozenset({"mayor", "deacon"})  # hq-<role>
RIG_ROLES = frozenset({"witness", "refinery"})  # <prefix>-<role>
NAMED_ROLES = frozenset({"crew", "polecat"})  # <prefix>-crew-<name>, <prefix>-<name>


class AgentBead(NamedTuple):
    """An agent bead's session and `agent_state` (beads/status.go), for the ghost check."""

    session: str
    state: str


class Ledger(NamedTuple):
    """The ledger's agent beads, or None with why it was not read (said once, as information)."""

    beads: tuple[AgentBead, ...] | None
    unread: str = ""


def read(town: Path, rigs: Sequence[str], prefixes: Iterable[str], timeout: float) -> Ledger:
    """Every agent bead of the town and its rigs' folders, within ``timeout`` for the lot; None when `bd` is not on
    PATH, does not answer in time, fails, or prints what its source never prints."""
    bd = shutil.which("bd")
    if bd is None:
        return Ledger(None, "no `bd` on PATH: agent beads recorded working/running with no session (ghosts) are not "
                            "looked for; every other check stands")
    known = {"hq", *prefixes}
    deadline = time.monotonic() + timeout
    found: dict[str, AgentBead] = {}
    for folder in (town, *(town / rig for rig in rigs)):
        if folder is not town and not _folder(folder):
            continue
        try:
            issues = _list(bd, folder, deadline - time.monotonic())
        except RegistryError as exc:
            return Ledger(None, f"`bd` in {folder}: {exc.problem.what}; every other check stands")
        for bead in _agents(issues, known):
            found.setdefault(bead.session, bead)
    return Ledger(tuple(found[s] for s in sorted(found)))


def _folder(path: Path) -> bool:
    """A rig's folder that stands there itself (a symlink would run `bd` in another place)."""
    try:
        return os.path.isdir(path) and not os.path.islink(path)
    except OSError:
        return False


def _list(bd: str, folder: Path, left: float) -> list[object]:
    """One `bd list` in ``folder``, bounded in time and in bytes; RegistryError saying what went wrong."""
    if left <= 0:
        raise RegistryError(Problem(str(folder), "bd", "no time left in the bound"))
    try:
        done = subprocess.run([bd, *BD_ARGS], cwd=folder, capture_output=True, timeout=left, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RegistryError(Problem(str(folder), "bd", f"did not answer within {left:.1f}s")) from None
    except OSError as exc:
        raise RegistryError(Problem(str(folder), "bd", f"cannot run: {exc.strerror or exc}")) from None
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()[:1] or [f"exit {done.returncode}"]
        raise RegistryError(Problem(str(folder), "bd", f"failed: {why[0][:200]}"))
    if len(done.stdout) > MAX_BYTES:
        raise RegistryError(Problem(str(folder), "bd", f"printed more than {MAX_BYTES} bytes"))
    issues = parse(folder / "bd list --json", done.stdout or b"[]")
    if not isinstance(issues, list):
        raise RegistryError(Problem(str(folder), "bd list --json", "expected an array of issues"))
    return issues


def _agents(issues: list[object], known: set[str]) -> list[AgentBead]:
    """The agent beads among ``issues`` whose id names a session of this town (its prefixes), with their state."""
    found = []
    for issue in issues:
        if not isinstance(issue, dict) or not isinstance(bead_id := issue.get("id"), str) or len(bead_id) > MAX_TEXT:
            continue
        state = state_of(issue)
        session = session_of(bead_id)
        if state and session is not None and session.partition("-")[0] in known:
            found.append(AgentBead(session, state))
    return found


def state_of(issue: dict[str, object]) -> str:
    """The description's `agent_state:` line, else the legacy structured field (ResolveAgentState); '' for none."""
    description = issue.get("description")
    for line in description.splitlines() if isinstance(description, str) else ():
        key, colon, value = line.strip().partition(":")
        if colon and key.strip().lower() == "agent_state" and value.strip() not in ("", "null"):
            return value.strip()[:MAX_TEXT]
    legacy = issue.get("agent_state")
    return legacy[:MAX_TEXT] if isinstance(legacy, str) else ""


def session_of(bead_id: str) -> str | None:
    """The tmux session of an agent bead, from its id as ParseAgentBeadID reads it: hq-<mayor|deacon>,
    hq-dog-<name>, <prefix>-<witness|refinery>, <prefix>-crew-<name>, <prefix>-<polecat name>; None otherwise."""
    prefix, _, rest = bead_id.partition("-")
    if not 2 <= len(prefix) <= 3 or not rest:
        return None
    role, name = _role(rest.split("-"))
    if role in TOWN_ROLES and not name:
        return f"hq-{role}"
    if role == "dog" and name:
        return f"hq-dog-{name}"
    if role in RIG_ROLES and not name:
        return f"{prefix}-{role}"
    if role in NAMED_ROLES and name:
        return f"{prefix}-crew-{name}" if role == "crew" else f"{prefix}-{name}"
    return None


def _role(parts: list[str]) -> tuple[str, str]:
    """(role, name) of an id's parts after its prefix: `[<rig>-]<role>[-<name>]`, the rig possibly hyphenated,
    a worker named like a role read as that worker (agent_ids.go:372-440)."""
    if len(parts) == 1:
        return parts[0], ""
    if parts[0] == "dog" or parts[0] in NAMED_ROLES:
        return parts[0], "-".join(parts[1:])
    for i in range(len(parts) - 1, 0, -1):
        part, before = parts[i], parts[i - 1] if i >= 2 else ""
        if part in NAMED_ROLES and i < len(parts) - 1:
            return part, "-".join(parts[i + 1:])
        if part in RIG_ROLES or part in NAMED_ROLES:
            if before in NAMED_ROLES:  # a worker named like a role: that worker's
                return before, "-".join(parts[i:])
            return part, ""
    return (parts[1], "") if len(parts) == 2 else ("", "")
