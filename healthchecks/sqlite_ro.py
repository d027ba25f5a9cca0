"""SQLite stores read without disturbing their writers, and refused when reading them could run anything.

Every manager keeping its records in SQLite is read the same way: one connection to an existing file (never one
created), a busy timeout, every statement bounded in time, and views or triggers where its tables belong refused.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from .records import Fingerprint, Problem

if TYPE_CHECKING:  # imported on first use: pytest loads the sources table (its options) in every run
    import sqlite3

READ_SECONDS = 30.0  # longer than any real state takes to read (10,000 agents: milliseconds)

def connect(path: Path, timeout: float, mode: str = "ro") -> sqlite3.Connection:
    """A connection to an existing database (never one created): the path quoted in the URI, so a `#` or `?` in
    a folder's name stays part of the path; every statement bounded in time by a progress handler."""
    uri = f"file:{quote(str(path))}?mode={mode}"
    import sqlite3

    conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    deadline = time.monotonic() + timeout + READ_SECONDS
    conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
    return conn


def problem(path: Path, exc: sqlite3.Error, timeout: float) -> Problem:
    """What SQLite said, as the database's problem."""
    text = str(exc)
    if "file is not a database" in text or "file is encrypted" in text:
        what = "is not an SQLite database"
    elif text == "interrupted":
        what = f"reading took more than {timeout + READ_SECONDS:g}s; given up"
    elif "locked" in text or "busy" in text:
        what = f"locked by another process for more than {timeout:g}s"
    elif "malformed" in text:
        what = f"the database is damaged ({text})"
    else:
        what = f"cannot be read ({text})"
    return Problem(str(path), "$", what)


def refused_objects(path: Path, conn: sqlite3.Connection, tables: tuple[str, ...], whose: str) -> list[Problem]:
    """What makes a state unsafe to read or change, whatever its columns: a view or a trigger where one of
    ``tables`` is (a manager's schema, ``whose``, that has none: any other store reading SQLite shares this)."""
    lines = []
    marks = ",".join("?" * len(tables))
    for kind, name, table in conn.execute(
        f"SELECT type, name, tbl_name FROM sqlite_master WHERE (type = 'view' AND name IN ({marks})) "
        f"OR (type = 'trigger' AND tbl_name IN ({marks})) ORDER BY type, name", (*tables, *tables)
    ):
        what = "is a view, not a table" if kind == "view" else f"has a trigger ({name!r:.80})"
        lines.append(Problem(str(path), table, f"{what}; refused: {whose} schema has none, and one would run "
                             "whatever it holds when this tool reads or writes"))
    return lines


def database_fingerprint(database: Path) -> Fingerprint:
    """A database in WAL mode and its write-ahead log, by size and modification time: a write changes one of them."""
    result: list[tuple[str, str | None]] = []
    for suffix in ("", "-wal"):
        path = database.with_name(database.name + suffix)
        try:
            st = path.lstat()
            result.append((str(path), f"{st.st_size}:{st.st_mtime_ns}"))
        except OSError:
            result.append((str(path), None))
    return tuple(result)
