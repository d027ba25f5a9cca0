"""Lineage: which processes a run saw inside each agent's live panes, remembered for the runs after it.

A process that was inside agent X's pane is X's, whatever happened since: `setsid`, a killed pane, a dead `tee`,
a rewritten argv. Its identity (pid + start ticks) cannot be taken over by another process, so a later run that
finds it outside every pane knows exactly whose it is: the strongest evidence there is.

The file (`<report-dir>/sightings.jsonl`, beside the history) holds one JSON object a line: ``pid``, ``ticks``,
``agent``, ``workspace`` (real path) and ``time`` (when it was last seen in the pane). It is the tool's own file:
read under a shared flock, at most MAX_BYTES, in the snapshot (observe stays read-only); written after the run under
an exclusive flock, in place, keeping only identities still alive and at most MAX_ENTRIES. Any line that is not
exactly that shape is skipped: a garbled or hostile file can only mean "no lineage", never another judgement.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import processes

FILE = "sightings.jsonl"
MAX_BYTES = 8 << 20  # read at most this much: about 60,000 lines
MAX_ENTRIES = 50_000  # kept at most (the newest sightings win)
MAX_ID = 200  # characters of an agent id; a longer one is not an orchestrator's
LOCK_WAIT = 2.0  # seconds to wait for the file's flock: a process holding it for ever must not hang the run


@dataclass(frozen=True)
class Sighting:
    """A process seen inside an agent's live pane: its identity, whose pane, when."""

    pid: int
    ticks: int
    agent: str
    workspace: str
    time: float

    @property
    def identity(self) -> tuple[int, int]:
        return (self.pid, self.ticks)

    def line(self) -> str:
        return json.dumps({"pid": self.pid, "ticks": self.ticks, "agent": self.agent, "workspace": self.workspace,
                           "time": self.time}) + "\n"


def _lock(fd: int, kind: int) -> None:
    """Take the flock within LOCK_WAIT, else raise (a reader then has no lineage, a writer says so)."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"its flock was held for over {LOCK_WAIT:g}s") from None
            time.sleep(0.02)


def _parse(line: bytes) -> Sighting | None:
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    pid, ticks, agent, workspace, when = (data.get(k) for k in ("pid", "ticks", "agent", "workspace", "time"))
    ints = all(type(v) is int and 0 < v < 1 << 63 for v in (pid, ticks))
    strings = isinstance(agent, str) and 0 < len(agent) <= MAX_ID and isinstance(workspace, str)
    number = type(when) in (int, float) and 0 <= when < 1e11
    return Sighting(pid, ticks, agent, workspace, float(when)) if ints and strings and number else None


def _parse_all(raw: bytes) -> list[Sighting]:
    return [s for line in raw.splitlines() if (s := _parse(line)) is not None]


def read(path: Path | None, workspace: str) -> dict[tuple[int, int], Sighting]:
    """This workspace's sightings by identity; empty when there is no file or nothing readable in it."""
    if path is None:
        return {}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return {}
    try:
        _lock(fd, fcntl.LOCK_SH)  # a writer rewrites in place: wait for it to finish, never read half
        with os.fdopen(os.dup(fd), "rb") as fh:
            raw = fh.read(MAX_BYTES)
    except OSError:
        return {}
    finally:
        os.close(fd)
    if len(raw) == MAX_BYTES:  # cut short: the last line may be torn
        raw = raw[: raw.rfind(b"\n") + 1]
    return {s.identity: s for s in _parse_all(raw) if s.workspace == workspace}


def seen(analysis) -> list[Sighting]:
    """Every process inside the live panes of this workspace's agents, each with the one agent whose session it is.

    A session that more than one agent names is nobody's for certain: not recorded.
    """
    a = analysis
    by_pid = a.snapshot.by_pid
    found = []
    for pid, (_, session) in a.pane_of.items():
        agents = a.agents_by_session.get(session, [])
        proc = by_pid.get(pid)
        if len(agents) == 1 and proc is not None and not proc.defunct:
            found.append(Sighting(pid, proc.start_ticks, agents[0].id, a.workspace, a.now))
    return found


def record(path: Path, found: Iterable[Sighting]) -> None:
    """Add this run's sightings; keep those whose process still lives (same pid, same start), newest first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        _lock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "r+b") as fh:
            old = _parse_all(fh.read(MAX_BYTES))
            merged: dict[tuple[int, int, str], Sighting] = {}
            for s in [*old, *found]:  # later (newer) wins
                merged.pop((s.pid, s.ticks, s.workspace), None)
                merged[(s.pid, s.ticks, s.workspace)] = s
            alive = [s for s in merged.values() if processes.start_ticks(s.pid) == s.ticks][-MAX_ENTRIES:]
            fh.seek(0)
            fh.write("".join(s.line() for s in alive).encode())
            fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        os.close(fd)  # releases the lock
