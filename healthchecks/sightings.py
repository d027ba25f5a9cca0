"""Lineage: which processes (and sessions) a run saw as each agent's, remembered for the runs after it.

A process that was inside agent X's pane is X's, whatever happened since: `setsid`, a killed pane, a dead `tee`,
a rewritten argv. Its identity (pid + start ticks) cannot be taken over by another process, so a later run that
finds it outside every pane knows exactly whose it is. A tmux session is remembered the same way: (server pid,
server start ticks, session id `$N`, which a server never reuses) -> the one agent it was seen as; every process
started in a pane of it carries that server pid and `$N` in its `TMUX` variable.

Where: the per-user state directory (STATE_ENV or --state-dir, else `$XDG_STATE_HOME/agent-healthchecks`, else
`~/.local/state/agent-healthchecks`), never a report folder, which may sit inside a project or be published. It is
made 0700 and used only when it is a real directory (not a symlink) owned by this user that no one else can write;
otherwise there is no lineage (the write says why in one line). Every line is `<HMAC-SHA256 hex> <JSON>`, the MAC
taken over the JSON's exact bytes with this user's key (`key`, 32 random bytes, 0600, beside the file; made once
with O_CREAT|O_EXCL|O_NOFOLLOW, its owner and mode checked at every read): a line this tool did not write, or one
changed since, is skipped before it is even parsed. A JSON that is not exactly a sighting is skipped too.

The file (`sightings.jsonl`) is read under a shared flock, at most MAX_BYTES, in the snapshot (observe stays
read-only: it never makes the directory or the key); written after the run under an exclusive flock, in place,
keeping only identities still alive, at most MAX_ENTRIES lines and MAX_BYTES (what a read takes whole).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import processes

if TYPE_CHECKING:
    from .analysis import Analysis

STATE_ENV = "AGENT_HEALTHCHECKS_STATE"  # the state directory, instead of the XDG default
FILE = "sightings.jsonl"
KEY = "key"
KEY_BYTES = 32
MAX_BYTES = 8 << 20  # read (and written) at most this much: about 40,000 lines
MAX_ENTRIES = 50_000  # kept at most (the newest sightings win)
MAX_ID = 200  # characters of an agent id; a longer one is not an orchestrator's
LOCK_WAIT = 2.0  # seconds to wait for the file's flock: a process holding it for ever must not hang the run
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Refused(OSError):
    """The state directory or its key is not this user's alone: no lineage is read from it or written to it."""


def default_dir() -> Path:
    """The XDG state directory (a relative XDG_STATE_HOME is invalid by the spec: ignored)."""
    xdg = os.environ.get("XDG_STATE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state") / "agent-healthchecks"


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

    @property
    def alive(self) -> bool:
        return processes.start_ticks(self.pid) == self.ticks


@dataclass(frozen=True)
class SessionSighting:
    """A tmux session seen as exactly one agent's: its server (pid + start ticks) and id `$N`, whose, when."""

    server: int
    server_ticks: int
    session: str
    agent: str
    workspace: str
    time: float

    @property
    def identity(self) -> tuple[int, int, str]:
        return (self.server, self.server_ticks, self.session)

    @property
    def alive(self) -> bool:
        return processes.start_ticks(self.server) == self.server_ticks


Seen = Sighting | SessionSighting


@dataclass(frozen=True)
class Memory:
    """What earlier runs saw, for one workspace: processes and sessions by identity."""

    processes: dict[tuple[int, int], Sighting] = field(default_factory=dict)
    sessions: dict[tuple[int, int, str], SessionSighting] = field(default_factory=dict)


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # made once: a run with 1,000 sessions writes 4,000 lines


def line(key: bytes, seen: Seen) -> bytes:
    """One authenticated line: the MAC of the JSON's exact bytes, a space, the JSON. Its fields are scalars, so
    they are taken as they are (asdict's deep copy took a third of the write)."""
    body = _COMPACT.encode({name: getattr(seen, name) for name in seen.__dataclass_fields__}).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest().encode() + b" " + body + b"\n"


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


def _own(fd: int, what: str, kind: int, others: int) -> None:
    """Refuse what is not of ``kind``, not this user's, or open to others by the ``others`` mode bits."""
    st = os.fstat(fd)
    if stat.S_IFMT(st.st_mode) != kind:
        raise Refused(f"{what} is not a {'directory' if kind == stat.S_IFDIR else 'regular file'}")
    if st.st_uid != os.geteuid():
        raise Refused(f"{what} belongs to uid {st.st_uid}, not to this user")
    if st.st_mode & others:
        raise Refused(f"{what} has mode {stat.S_IMODE(st.st_mode):04o}: other users can change it")


def _open_dir(path: Path, create: bool) -> int | None:
    """The state directory, checked; None when it does not exist and is not to be made."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    try:
        fd = os.open(path, _DIR)
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError as exc:  # ELOOP: a symlink; ENOTDIR: a file
        raise Refused(f"{path} is not a real directory ({exc.strerror})") from None
    try:
        _own(fd, str(path), stat.S_IFDIR, 0o022)
    except Refused:
        os.close(fd)
        raise
    return fd


def _make_key(folder: int) -> None:
    """A new random key, published whole: written under a fresh name, then linked as KEY (a concurrent first run's
    link wins, and both use that one)."""
    temp = f".key-{os.getpid()}-{secrets.token_hex(8)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(KEY_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temp, KEY, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.unlink(temp, dir_fd=folder)


def _key(folder: int, create: bool) -> bytes | None:
    """This user's key, checked (0600, its owner's); None when there is none yet and none is to be made."""
    try:
        fd = os.open(KEY, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except FileNotFoundError:
        if not create:
            return None
        _make_key(folder)
        return _key(folder, False)
    except OSError as exc:
        raise Refused(f"its key cannot be opened ({exc.strerror})") from None
    try:
        _own(fd, "its key", stat.S_IFREG, 0o077)
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_BYTES:
        raise Refused(f"its key is not {KEY_BYTES} bytes")
    return key


def _ints(*values: object) -> bool:
    return all(type(v) is int and 0 < v < 1 << 63 for v in values)


@functools.lru_cache(maxsize=MAX_ENTRIES)  # a file holds at most this many lines
def _parse(key: bytes, raw: bytes) -> Seen | None:
    """The sighting a line holds, if this tool wrote it with this key and it is exactly one. Remembered by its bytes
    (a sighting is immutable): the write at a run's end finds the lines its snapshot read already verified (4,000
    at 1,000 sessions, most of the report-writing phase)."""
    mac, _, body = raw.partition(b" ")
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).hexdigest().encode()):
        return None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    agent, workspace, when = data.get("agent"), data.get("workspace"), data.get("time")
    if not (isinstance(agent, str) and 0 < len(agent) <= MAX_ID and isinstance(workspace, str)
            and isinstance(when, (int, float)) and not isinstance(when, bool) and 0 <= when < 1e11):
        return None
    if data.keys() == {"pid", "ticks", "agent", "workspace", "time"} and _ints(data["pid"], data["ticks"]):
        return Sighting(data["pid"], data["ticks"], agent, workspace, float(when))
    session = data.get("session")
    if (data.keys() == {"server", "server_ticks", "session", "agent", "workspace", "time"}
            and _ints(data["server"], data["server_ticks"]) and isinstance(session, str) and len(session) <= 32):
        return SessionSighting(data["server"], data["server_ticks"], session, agent, workspace, float(when))
    return None


def _parse_all(key: bytes, raw: bytes) -> list[Seen]:
    return [s for line in raw.splitlines() if (s := _parse(key, line)) is not None]


def _read_locked(folder: int) -> bytes:
    """The file's first MAX_BYTES, read under a shared flock (a writer rewrites in place: never read half)."""
    fd = os.open(FILE, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    try:
        _own(fd, FILE, stat.S_IFREG, 0o022)
        _lock(fd, fcntl.LOCK_SH)
        with os.fdopen(os.dup(fd), "rb") as fh:
            raw = fh.read(MAX_BYTES)
    finally:
        os.close(fd)
    return raw[: raw.rfind(b"\n") + 1] if len(raw) == MAX_BYTES else raw  # cut short: the last line may be torn


def read(path: Path | None, workspace: str) -> Memory:
    """This workspace's sightings by identity; empty when there is no state, or it is refused, or nothing in it is
    this tool's (observe stays read-only: nothing is made here)."""
    try:
        folder = _open_dir(path.parent, create=False) if path is not None else None
    except OSError:
        return Memory()
    if folder is None:
        return Memory()
    try:
        key = _key(folder, create=False)
        raw = _read_locked(folder) if key is not None else b""
    except OSError:
        return Memory()
    finally:
        os.close(folder)
    found = [s for s in _parse_all(key, raw) if s.workspace == workspace] if key is not None else []
    return Memory({s.identity: s for s in found if isinstance(s, Sighting)},
                  {s.identity: s for s in found if isinstance(s, SessionSighting)})


def seen(analysis: Analysis) -> list[Seen]:
    """Every process inside the live panes of this workspace's agents, each with the one agent whose session it is,
    and every such session itself. A session that more than one agent names is nobody's for certain: not recorded."""
    return [*_processes_seen(analysis), *_sessions_seen(analysis)]


def _processes_seen(a: Analysis) -> list[Sighting]:
    by_pid = a.snapshot.by_pid
    found = []
    for pid, (server, session) in a.tmux.pane_of.items():
        agents = a.tmux.agents_on(server, session)
        proc = by_pid.get(pid)
        if len(agents) == 1 and proc is not None and not proc.defunct:
            found.append(Sighting(pid, proc.start_ticks, agents[0].id, a.workspace, a.now))
    return found


def _sessions_seen(a: Analysis) -> list[SessionSighting]:
    """Each live session of a checked server that is exactly one agent's, by its server's identity and its id."""
    servers = {s.label: s.server_pid for s in a.snapshot.servers if s.server_pid}
    found = []
    for lives in a.tmux.sessions.values():
        for live in lives:
            agents = a.tmux.agents_in(live)
            if len(agents) != 1 or (server := servers.get(live.server)) is None or not live.id:
                continue
            proc = a.snapshot.by_pid.get(server)
            if ticks := proc.start_ticks if proc is not None else processes.start_ticks(server):
                found.append(SessionSighting(server, ticks, live.id, agents[0].id, a.workspace, a.now))
    return found


def _newest(key: bytes, kept: list[Seen]) -> bytes:
    """The lines of the newest sightings, at most MAX_ENTRIES of them and MAX_BYTES in all: what a read takes whole."""
    lines: list[bytes] = []
    size = 0
    for s in reversed(kept[-MAX_ENTRIES:]):
        size += len(text := line(key, s))
        if size > MAX_BYTES:
            break
        lines.append(text)
    return b"".join(reversed(lines))


def record(path: Path, found: Iterable[Seen]) -> None:
    """Add this run's sightings; keep those whose process (or session's server) still lives, newest first.
    Makes the state directory and the key when there are none; raises (OSError, Refused) when they are not
    this user's alone."""
    folder = _open_dir(path.parent, create=True)
    assert folder is not None
    try:
        key = _key(folder, create=True)
        assert key is not None
        fd = os.open(FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600, dir_fd=folder)
    finally:
        os.close(folder)
    try:
        _own(fd, FILE, stat.S_IFREG, 0o022)
        _lock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "r+b") as fh:
            merged: dict[tuple[int | str, ...], Seen] = {}
            for s in [*_parse_all(key, fh.read(MAX_BYTES)), *found]:  # later (newer) wins
                place = (*s.identity, s.workspace)
                merged.pop(place, None)
                merged[place] = s
            content = _newest(key, [s for s in merged.values() if s.alive])
            fh.seek(0)
            fh.write(content)
            fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        os.close(fd)  # releases the lock
