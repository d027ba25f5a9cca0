"""Read agent-deck's records (`<data root>/profiles/<profile>/state.db`, SQLite in WAL mode; read at v1.14.0).

One read-only connection (`mode=ro`, never `immutable=1`, which would ignore the write-ahead log), a busy timeout,
one read transaction, a gate on views and triggers (as for the orchestrator's state), on `metadata.schema_version`
and on the columns used, and bounded reads. A row's
`tmux_session` and `tmux_socket_name` are authoritative; its status is last-known (agent-deck rewrites rows itself),
so nothing here is ever written (the source has no writer). Every problem names the file, the table, column or
row, and what is wrong.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ... import safe_files
from ...dialect import ScopeKind, StatusClass
from ...records import AgentRecord, ConversationRecord, Fingerprint, Problem, Records, Scope
from ...safe_files import file_problem
from ...sqlite_ro import connect, database_fingerprint, problem, refused_objects
from .dialect import AGENT_DECK

if TYPE_CHECKING:  # imported on first use: pytest loads the sources table (options) in every run
    import sqlite3

NAME = "agent-deck"  # its line in healthchecks.sources.SOURCES
DB = "state.db"
KNOWN_SCHEMA = 13  # v1.14.0; a newer schema may mean other things by the same columns: refused, not guessed
COLUMNS = ("id", "title", "status", "tmux_session", "tmux_socket_name", "created_at", "archived_at", "tool_data")
TOOL = "tool"  # the program it launched (`claude`, `gemini`, `codex`, ...): read where the schema has it
READ = ("metadata", "instances")  # tables read: a view would run any query (an endless one), a trigger anything
MAX_ROWS = 100_000
MAX_TOOL_DATA = 64 * 1024
SOCKET_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")  # a `tmux -L` name: never a path
OPTIONS = (
    ("--agent-deck-db", "agent-deck's state.db (default: the profile's, under ${XDG_DATA_HOME:-~/.local/share}/"
                        "agent-deck/profiles/<profile>/, else the legacy ~/.agent-deck/profiles/<profile>/)", ""),
    ("--agent-deck-profile", "agent-deck profile whose state.db is read (default default)", "default"),
)


def locate(values: Mapping[str, str]) -> Path:
    """The profile's directory: the run's workspace (the database is `state.db` inside it)."""
    if db := values.get("--agent-deck-db"):
        if Path(db).name != DB:
            raise ValueError(f"--agent-deck-db {db!r} must name a {DB} file (its directory is the profile's)")
        return Path(db).expanduser().absolute().parent
    profile = Path("profiles") / (values.get("--agent-deck-profile") or "default")
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "agent-deck" / profile
    legacy = Path.home() / ".agent-deck" / profile
    return legacy if not (data / DB).exists() and (legacy / DB).exists() else data


def present(workspace: Path) -> bool:
    return safe_files.present(workspace / DB)


def flocked(workspace: Path, records: Records | None) -> set[Path]:
    """agent-deck's SQLite writers lock with fcntl, never flock: nothing to hold."""
    return set()


def fingerprint(workspace: Path, before: Fingerprint = ()) -> Fingerprint:
    """The database's own fingerprint (``before`` is the file stores' business)."""
    return database_fingerprint(workspace / DB)


def _broken(workspace: Path, path: Path, problem: Problem, before: Fingerprint) -> Records:
    return Records(workspace, Scope(path, ScopeKind.STATE, errors=(problem,)), (), AGENT_DECK, NAME,
                   fingerprint=before)


def _gate(path: Path, conn: sqlite3.Connection) -> Problem | None:
    """Why this database is not one this reader knows, or None."""
    if refused := refused_objects(path, conn, READ, "agent-deck's"):
        return refused[0]
    if not {r[1] for r in conn.execute("PRAGMA table_info(metadata)")}:
        return Problem(str(path), "metadata", "table is missing")
    row = conn.execute("SELECT value FROM metadata WHERE key = 'schema_version'").fetchone()
    version = str(row[0]) if row else ""
    if not version.isdigit():
        return Problem(str(path), "metadata.schema_version", f"expected an integer, found {version[:40]!r}")
    if int(version) > KNOWN_SCHEMA:
        return Problem(str(path), "metadata.schema_version",
                       f"{int(version)} is newer than the {KNOWN_SCHEMA} this tool knows")
    have = {r[1] for r in conn.execute("PRAGMA table_info(instances)")}
    if not have:
        return Problem(str(path), "instances", "table is missing")
    missing = [c for c in COLUMNS if c not in have]
    return Problem(str(path), f"instances.{missing[0]}", "column is missing") if missing else None


def _conversation(tool_data: Any) -> str | None:
    if not isinstance(tool_data, str) or len(tool_data) > MAX_TOOL_DATA:
        return None
    try:
        found = json.loads(tool_data).get("claude_session_id")
    except (ValueError, AttributeError, RecursionError):
        return None
    return found if isinstance(found, str) and found else None


def _when(created: Any) -> str | None:
    try:
        return datetime.fromtimestamp(int(created), timezone.utc).isoformat() if created else None
    except (ValueError, OverflowError, OSError, TypeError):
        return None


def _record(path: Path, row: tuple[Any, ...]) -> AgentRecord | Problem:
    rid, _title, status, session, socket, created, archived, tool_data, tool = row
    if not isinstance(rid, str) or not rid:
        return Problem(str(path), f"instances[{rid!r}].id", "expected a non-empty text")
    if socket and not (isinstance(socket, str) and SOCKET_NAME.fullmatch(socket)):
        return Problem(str(path), f"instances[{rid}].tmux_socket_name", "not a tmux socket name")
    status_class = AGENT_DECK.status_class(status)
    if isinstance(archived, int) and archived > 0:
        status_class = StatusClass.STOPPED  # archived: not expected to run
    return AgentRecord(rid, None, status if isinstance(status, str) else None, session if isinstance(session, str)
                       else "", ScopeKind.STATE, (_when(created),), status_class,
                       ConversationRecord(socket or None, _conversation(tool_data)),
                       (tool,) if isinstance(tool, str) and tool else ())


def load(workspace: Path, timeout: float = 5.0) -> Records:
    path = workspace / DB
    before = fingerprint(workspace)
    if why := file_problem(workspace, path):
        return _broken(workspace, path, why, before)
    import sqlite3

    try:
        conn = connect(path, timeout)
        try:
            conn.execute("BEGIN")  # one read transaction: every row from the same moment
            if why := _gate(path, conn):
                return _broken(workspace, path, why, before)
            tool = TOOL if TOOL in {r[1] for r in conn.execute("PRAGMA table_info(instances)")} else "NULL"
            rows = conn.execute(f"SELECT {', '.join(COLUMNS)}, {tool} FROM instances LIMIT ?",
                                (MAX_ROWS + 1,)).fetchall()
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return _broken(workspace, path, problem(path, exc, timeout), before)
    if len(rows) > MAX_ROWS:
        return _broken(workspace, path, Problem(str(path), "instances", f"more than {MAX_ROWS} rows"), before)
    agents = []
    for row in rows:
        made = _record(path, row)
        if isinstance(made, Problem):
            return _broken(workspace, path, made, before)
        agents.append(made)
    state = Scope(path, ScopeKind.STATE, str(before), os.stat(path).st_mtime, (), {}, tuple(agents))
    return Records(workspace, state, (), AGENT_DECK, NAME, fingerprint=before)
