"""Read the current release's state (`<workspace>/registry/state.sqlite3`, WAL) without disturbing its writers.

One read-only connection (`mode=ro`), a busy timeout, and one read transaction: every row comes from the same
moment, and in WAL mode a reader never blocks the orchestrator's writers (nor they it). The schema is checked
for the tables and columns the checks need (unknown columns are fine): the SQLite counterpart of the JSON Schema.
Every problem names the file, the table or column, and what is wrong (healthchecks.records.Problem).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ... import safe_files
from ...dialect import ScopeKind
from ...records import AgentRecord, CursorRecord, Fingerprint, Problem, Records, Scope, is_path
from ...safe_files import file_problem
from ...sqlite_ro import connect, database_fingerprint, problem, refused_objects
from .dialect import CURSOR_BACKEND, ORCHESTRATOR_SQLITE

if TYPE_CHECKING:  # imported on first use: pytest loads the sources table (options) in every run
    import sqlite3

NAME = "sqlite"  # its line in healthchecks.sources.SOURCES
RELPATH = Path("registry") / "state.sqlite3"
REQUIRED = {
    "agents": ("agent_id", "task_id", "tmux_session", "status", "started_at", "completed_at"),
    "tasks": ("task_id", "client_cwd"),
}


# Tables read or written: each must be a table (a view can run any query, an endless one included) without
# triggers (a trigger turns one mark into any change at all).
PLAIN_TABLES = ("agents", "tasks", "agent_hierarchy")


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def schema_problems(path: Path, conn: sqlite3.Connection) -> list[Problem]:
    lines = refused_objects(path, conn, PLAIN_TABLES, "the orchestrator's")
    if lines:
        return lines
    for table, needed in REQUIRED.items():
        have = _columns(conn, table)
        if not have:
            lines.append(Problem(str(path), table, "table is missing"))
            continue
        lines += [Problem(str(path), f"{table}.{col}", "column is missing") for col in needed if col not in have]
    return lines


def flocked(workspace: Path, records: Records | None) -> set[Path]:
    """SQLite's writers lock with fcntl, never flock: nothing to hold."""
    return set()


def fingerprint(workspace: Path, before: Fingerprint = ()) -> Fingerprint:
    """The database's own fingerprint (``before`` is the file stores' business)."""
    return database_fingerprint(workspace / RELPATH)


def present(workspace: Path) -> bool:
    """The current release's store is there (or something stands in its place, whose problem is then reported)."""
    return safe_files.present(workspace / RELPATH)


def _broken(workspace: Path, path: Path, lines: tuple[Problem, ...], before: Fingerprint) -> Records:
    return Records(workspace, Scope(path, ScopeKind.STATE, errors=lines), (), ORCHESTRATOR_SQLITE, NAME,
                   fingerprint=before)


def load(workspace: Path, timeout: float) -> Records:
    path = workspace / RELPATH
    before = fingerprint(workspace)
    if why := file_problem(workspace, path):
        return _broken(workspace, path, (why,), before)
    import sqlite3

    try:
        conn = connect(path, timeout)
        try:
            conn.execute("BEGIN")  # one read transaction: agents and tasks from the same moment
            if lines := schema_problems(path, conn):
                return _broken(workspace, path, tuple(lines), before)
            cursor = "cursor_pid" if "cursor_pid" in _columns(conn, "agents") else "NULL"
            rows = conn.execute(
                f"SELECT agent_id, task_id, status, tmux_session, started_at, completed_at, {cursor} FROM agents"
            ).fetchall()
            tasks = conn.execute("SELECT task_id, client_cwd FROM tasks").fetchall()
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return _broken(workspace, path, (problem(path, exc, timeout),), before)
    agents = tuple(
        AgentRecord(str(aid), task, status, session or "", ScopeKind.STATE, (started, completed),
                    ORCHESTRATOR_SQLITE.status_class(status), CursorRecord(pid) if cursor else None,
                    CURSOR_BACKEND if cursor else ())
        for aid, task, status, session, started, completed, pid in rows
        for cursor in (isinstance(pid, int) and pid > 0,)
    )
    clients = tuple(sorted({c for _, c in tasks if is_path(c)}))
    mtime = os.stat(path).st_mtime
    state = Scope(path, ScopeKind.STATE, str(before), mtime, (), {}, agents, tuple(t for t, _ in tasks), clients)
    return Records(workspace, state, (), ORCHESTRATOR_SQLITE, NAME, fingerprint=before)
