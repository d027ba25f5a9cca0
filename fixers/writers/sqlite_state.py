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

from healthchecks.dialect import StatusClass
from healthchecks.records import Records, RegistryError
from healthchecks.safe_files import check_contained, file_problem
from healthchecks.sources.sqlite_state import RELPATH, problem

from .. import backups
from . import Edits, Written
from .json_registry import append_archive, backup_path


@dataclass(frozen=True)
class StateWrite:
    changed: dict[str, str]  # agent id -> "marked" | "pruned"
    backup: Path | None


def writable(workspace: Path) -> str | None:
    """Why the state database must not be written (one line), or None: a check made before any action."""
    path = workspace / RELPATH
    if why := file_problem(workspace, path):
        return why
    mode = path.lstat().st_mode
    if not mode & 0o222:  # read-only on purpose: honoured even for root, whom the kernel would let write
        return f"{path}: $: is read-only (mode {stat.S_IMODE(mode):04o}); not changed"
    return None


def _backup(conn: sqlite3.Connection, workspace: Path, path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 10**9:09d}"
    target = backup_path(workspace, path, stamp)
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


def apply_edits(regs: Records, edits: Edits, lock_timeout: float) -> StateWrite:
    """Mark and prune in one transaction; raises RegistryError (one line) when the database cannot be written."""
    workspace, marks, prunes, now, archive = regs.workspace, edits.marks, edits.prunes, edits.now, edits.archive
    dialect = regs.dialect
    assert dialect.mark is not None
    path = workspace / RELPATH
    if why := writable(workspace):
        raise RegistryError(why)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=lock_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise RegistryError(problem(path, exc, lock_timeout)) from None
    try:
        conn.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
        conn.row_factory = sqlite3.Row
        backup = _backup(conn, workspace, path)
        changed: dict[str, str] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            live = sorted(s for s, c in dialect.statuses.items() if s is not None and c is StatusClass.ACTIVE)
            active = ",".join("?" * len(live))
            sets = ", ".join(f"{name}=?" for name in ("status", *dialect.mark.now_fields, *dialect.mark.fields))
            values = (dialect.mark.status, *(now for _ in dialect.mark.now_fields), *dialect.mark.fields.values())
            for agent_id in sorted(marks):
                cur = conn.execute(
                    f"UPDATE agents SET {sets} WHERE agent_id=? AND (status IS NULL OR status IN ({active}))",
                    (*values, agent_id, *live),
                )
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
        result.failed.update(dict.fromkeys(edits.ids, str(exc).splitlines()[0]))
        return result
    result.done.update({agent_id: f"{how} in {RELPATH.name}" for agent_id, how in state.changed.items()})
    return result
