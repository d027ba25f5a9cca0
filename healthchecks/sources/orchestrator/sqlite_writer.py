"""Change the current release's state database the way the orchestrator's own code does.

A backup first, through SQLite's online backup API (a consistent copy while writers go on); then one
`BEGIN IMMEDIATE` transaction (the orchestrator's writers use the same, so they queue behind it instead of
racing it), in which every row is read again and changed only if it is still what the plan was made from.
A dead agent is marked as the orchestrator's own global cleanup marks one at d746b7e
(`mark_agents_as_failed_batch`): `status = 'failed'`, `completed_at` and `last_update` now. A pruned row is
archived whole (JSON lines, as for the JSON registries) before it is deleted, with its hierarchy rows.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from fixers import backups
from fixers.archive import append_archive
from fixers.writers import Edits, Written, failure
from healthchecks.dialect import StatusClass
from healthchecks.records import Problem, Records, RegistryError
from healthchecks.safe_files import check_contained, file_problem
from healthchecks.sqlite_ro import connect, problem

from .dialect import ORCHESTRATOR_SQLITE
from .sqlite_state import RELPATH, schema_problems

_MARK = ORCHESTRATOR_SQLITE.mark
assert _MARK is not None
# Every column a write touches: the preflight checks each exists, so no mark fails half-way through a plan.
WRITTEN = {
    "agents": ("agent_id", "status", *_MARK.now_fields, *_MARK.fields),
    "agent_hierarchy": ("child_agent_id",),
}


@dataclass(frozen=True)
class StateWrite:
    changed: dict[str, str]  # agent id -> "marked" | "pruned"
    backup: Path | None


def writable(workspace: Path) -> Problem | None:
    """Why the state database must not be written, or None: a check made before any action."""
    path = workspace / RELPATH
    if why := file_problem(workspace, path):
        return why
    mode = path.lstat().st_mode
    if not mode & 0o222:  # read-only on purpose: honoured even for root, whom the kernel would let write
        return Problem(str(path), "$", f"is read-only (mode {stat.S_IMODE(mode):04o}); not changed")
    try:
        conn = connect(path, 10.0)
        try:
            lines = write_problems(path, conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return problem(path, exc, 10.0)
    return lines[0] if lines else None


def write_problems(path: Path, conn: sqlite3.Connection) -> list[Problem]:
    """What in the schema forbids the write: what the reader refuses, and every column the write uses."""
    lines = schema_problems(path, conn)
    for table, columns in WRITTEN.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if have or table == "agents":  # agent_hierarchy is optional; agents is not
            lines += [Problem(str(path), f"{table}.{c}", "column is missing; nothing was changed")
                      for c in columns if c not in have]
    return lines


def _backup(conn: sqlite3.Connection, workspace: Path, path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 10**9:09d}"
    target = backups.path_for(workspace, path, stamp)
    check_contained(workspace, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    dest = sqlite3.connect(target)
    try:
        conn.backup(dest)
    finally:
        dest.close()
    os.chmod(target, stat.S_IMODE(os.stat(path).st_mode))
    backups.mark(target)
    return target


def _expect(path: Path, changed: int, meant: int, what: str) -> None:
    """Roll back (by raising) when the database changed more rows than the statement was meant to."""
    if changed != meant:
        raise RegistryError(Problem(str(path), "agents", f"changing {what} changed {changed} row(s), not {meant}; "
                                    "rolled back, nothing was changed"))


def apply_edits(regs: Records, edits: Edits, lock_timeout: float) -> StateWrite:
    """Mark and prune in one transaction; raises RegistryError when the database cannot be written."""
    workspace, marks, prunes, now, archive = regs.workspace, edits.marks, edits.prunes, edits.now, edits.archive
    dialect = regs.dialect
    assert dialect.mark is not None
    path = workspace / RELPATH
    if why := writable(workspace):
        raise RegistryError(why)
    try:
        conn = connect(path, lock_timeout, "rw")
    except sqlite3.Error as exc:
        raise RegistryError(problem(path, exc, lock_timeout)) from None
    try:
        conn.row_factory = sqlite3.Row
        backup = _backup(conn, workspace, path)
        changed: dict[str, str] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            live = sorted(s for s, c in dialect.statuses.items() if s is not None and c is StatusClass.ACTIVE)
            if lines := write_problems(path, conn):  # again, under the write lock: the schema may have changed
                raise RegistryError(lines[0])
            agents_before = conn.execute("SELECT count(*) FROM agents").fetchone()[0]
            active = ",".join("?" * len(live))
            sets = ", ".join(f"{name}=?" for name in ("status", *dialect.mark.now_fields, *dialect.mark.fields))
            values = (dialect.mark.status, *(now for _ in dialect.mark.now_fields), *dialect.mark.fields.values())
            for agent_id in sorted(marks):
                total = conn.total_changes
                cur = conn.execute(
                    f"UPDATE agents SET {sets} WHERE agent_id=? AND (status IS NULL OR status IN ({active}))",
                    (*values, agent_id, *live),
                )
                _expect(path, conn.total_changes - total, cur.rowcount, agent_id)
                if cur.rowcount:
                    changed[agent_id] = "marked"
            known = dialect.known()  # a status nobody knows is left to a person, as in the plan
            places = ",".join("?" * len(known))
            query = f"SELECT * FROM agents WHERE agent_id=? AND (status IS NULL OR status IN ({places}))"
            rows = [dict(row) for agent_id in sorted(prunes) for row in conn.execute(query, (agent_id, *known))]
            if rows:
                rel = str(path.relative_to(workspace))
                append_archive(workspace, archive, [
                    {"archived_at": now, "registry": rel, "agent_id": r["agent_id"], "entry": r} for r in rows
                ])
                hierarchy = conn.execute("SELECT 1 FROM sqlite_master WHERE name='agent_hierarchy'").fetchone()
                for r in rows:
                    conn.execute("DELETE FROM agents WHERE agent_id=?", (r["agent_id"],))
                    if hierarchy:
                        conn.execute("DELETE FROM agent_hierarchy WHERE child_agent_id=?", (r["agent_id"],))
                    changed[r["agent_id"]] = "pruned"
            agents_after = conn.execute("SELECT count(*) FROM agents").fetchone()[0]
            _expect(path, agents_before - agents_after, len(rows), "the pruned rows")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return StateWrite(changed, backup)
    except sqlite3.Error as exc:
        raise RegistryError(problem(path, exc, lock_timeout)) from None
    finally:
        conn.close()


# --- the writer protocol (fixers.writers) ----------------------------------------------------------------------
def pending(workspace: Path) -> bool:
    """SQLite's own journal finishes or undoes an interrupted transaction: nothing is left for the next fix."""
    return False


def recover_workspace(workspace: Path, lock_timeout: float) -> list[str]:
    return []


def check(regs: Records, edits: Edits, lock_timeout: float) -> str | None:
    why = writable(regs.workspace)
    return f"{why}; nothing was changed" if why else None


def write(regs: Records, edits: Edits, lock_timeout: float) -> Written:
    """Every verified change in one transaction; what each row allowed."""
    result = Written(left="row changed since the snapshot; left as it is")
    try:
        state = apply_edits(regs, edits, lock_timeout)
    except (RegistryError, OSError) as exc:
        result.failed.update(dict.fromkeys(edits.ids, failure(exc)))
        return result
    result.done.update({agent_id: f"{how} in {RELPATH.name}" for agent_id, how in state.changed.items()})
    return result
