"""Read tmux servers with one `list-panes -a` call each, and tell "no server" from "unreachable".

libtmux returns an empty session list when tmux cannot be reached, which makes every agent look
like a ghost; this module calls the tmux binary itself, with a timeout, and keeps the difference.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from enum import Enum
from functools import cache

TIMEOUT = 5.0
FIELDS = (
    "session_name",
    "session_created",
    "pane_id",
    "pane_pid",
    "pid",
    "socket_path",
    "session_id",
    "pane_dead",
    "session_attached",
    "window_id",  # a window shown by several sessions (a session group, link-window) lists its panes under each
    "session_group",
    "pane_index",  # its place in its window (a manager's agent may be one pane of it: Dialect.agent_pane)
    "pane_current_path",  # last: a tab inside a path stays in it
)
FORMAT = "\t".join(f"#{{{f}}}" for f in FIELDS)
# What tmux 3.x prints when it reached the socket's place and found no server behind it.
NO_SERVER_MARKERS = ("no server running on", "(No such file or directory)")
# What a running server with no session left answers (possible with `exit-empty off`): zero panes, not a fault.
EMPTY_SERVER_MARKERS = ("no current target", "no sessions")



class State(Enum):
    """What answered at a server's socket."""

    RUNNING = "running"
    NO_SERVER = "no-server"  # tmux reached the socket's place and found no server behind it
    UNREACHABLE = "unreachable"

    def __str__(self) -> str:
        return self.value


class Unreachable(Enum):
    """Why a server could not be read, as far as that tells what runs behind its socket."""

    SILENT = "silent"  # no answer in time: a busy tmux cannot be told from a silent impostor
    OTHER_VERSION = "other version"  # an answer in tmux's protocol, from a server of another tmux version
    FAILED = "failed"  # no tmux to run, a refusal, a hang-up or output no tmux prints: nothing says it is tmux


@dataclass(frozen=True)
class Pane:
    session: str
    session_created: float
    pane_id: str
    pid: int
    session_id: str = ""  # $N: unique for the server's lifetime, unlike a name
    # With remain-on-exit a pane outlives its process and keeps its pane_pid, which the kernel may
    # give to any other process: a dead pane has no processes.
    dead: bool = False
    attached: int = 0  # clients attached to the pane's session: a person may be looking at it
    window_id: str = ""  # @N: the same window (and pane) may be listed under several sessions
    group: str = ""  # the session group this row's session belongs to ("" for none)
    path: str = ""  # its current directory, as tmux sees it (information only)
    index: int = 0  # its index in its window (pane_index)


@dataclass(frozen=True)
class Client:
    """A terminal attached to a session: a person, whose window a kill-session would close."""

    tty: str
    session: str


# What a tmux client says of a server of another tmux version: an answer in tmux's protocol all the same.
VERSION_MISMATCH = "protocol version mismatch"


@dataclass(frozen=True)
class TmuxServer:
    """One tmux server as seen at one moment."""

    label: str  # the --tmux-socket value, or "default"
    state: State
    reason: str = ""
    socket_path: str = ""
    server_pid: int | None = None
    panes: tuple[Pane, ...] = ()
    aliases: tuple[str, ...] = ()  # other --tmux-socket values that reached this same server
    clients: tuple[Client, ...] = ()  # read only when a session has a client attached
    why: Unreachable | None = None  # when unreachable: what that says of the process behind the socket

    @property
    def reachable(self) -> bool:
        return self.state is not State.UNREACHABLE

    @property
    def silent(self) -> bool:
        """Unreachable because it did not answer in time (a busy server, or not tmux at all)."""
        return self.why is Unreachable.SILENT

    @property
    def may_be_tmux(self) -> bool:
        """It answered as tmux, or did not answer in time (a busy tmux cannot be told from a silent impostor):
        either way what runs below it may be in a live pane. A socket that refuses or hangs up is not tmux."""
        return self.state is State.RUNNING or self.why in (Unreachable.SILENT, Unreachable.OTHER_VERSION)

    @property
    def identity(self) -> tuple[str, int | None]:
        """One server however it was named: its socket's real path and its pid."""
        return os.path.realpath(self.socket_path), self.server_pid


def server_args(socket: str | None) -> tuple[str, ...]:
    """A value with a slash is a socket path (-S), anything else a socket name (-L)."""
    if not socket or socket == "default":
        return ()
    return ("-S", socket) if "/" in socket else ("-L", socket)


def default_socket_path(socket: str | None) -> str:
    """Where tmux puts a named socket; used to recognise panes of a server that has gone."""
    if socket and "/" in socket:
        return os.path.abspath(socket)
    tmpdir = os.environ.get("TMUX_TMPDIR") or "/tmp"
    return os.path.join(tmpdir, f"tmux-{os.getuid()}", socket or "default")


def argv(socket: str | None, *command: str) -> list[str]:
    """The command line of one tmux command against one server; FileNotFoundError without a tmux binary."""
    binary = shutil.which("tmux")
    if binary is None:
        raise FileNotFoundError("tmux binary not found on PATH")
    return [binary, *server_args(socket), *command]


def binary_id() -> tuple[int, int] | None:
    """The tmux binary this run invokes, as the kernel identifies the file (st_dev, st_ino); None without one."""
    found = shutil.which("tmux")
    try:
        st = os.stat(found) if found else None
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st else None


def run(socket: str | None, *command: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run one reading tmux command against one server; raises OSError or TimeoutExpired when unreachable."""
    return subprocess.run(
        argv(socket, *command),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _parse(line: str) -> tuple[Pane, int, str]:
    session, created, pane_id, pane_pid, server_pid, socket_path, session_id, dead, attached, window, group, index, \
        path = line.split("\t", len(FIELDS) - 1)
    pane = Pane(session, float(created), pane_id, int(pane_pid), session_id, dead == "1", int(attached or 0), window,
                group, path, int(index or 0))
    return pane, int(server_pid), socket_path


# How tmux (session_check_name: strvis with VIS_CSTYLE | VIS_OCTAL | VIS_TAB | VIS_NL) writes an ASCII character
# that is not printable, and the backslash that would make its escapes ambiguous.
_VIS = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\b": "\\b", "\a": "\\a", "\v": "\\v", "\f": "\\f", "\\": "\\\\"}
_STORED = str.maketrans({".": "_", ":": "_", **_VIS, **{chr(c): f"\\{c:03o}" for c in (*range(1, 32), 127)
                                                      if chr(c) not in _VIS}})

_SPECIAL = re.compile(r"[\x00-\x1f\x7f\\.:#]")
_SPECIAL_BYTES = bytes((*range(32), 127, *b"\\.:#"))  # the same characters, to delete from UTF-8 (all are ASCII)


def stored_name(name: str) -> str | None:
    """A session name as tmux 3.x stores it from `new-session -s <name>`, or None when that cannot be known here.

    tmux turns `.` and `:` into `_` (they are target separators) and writes control characters, DEL and the
    backslash as C-style or octal escapes; this is exact for ASCII (tests/test_shared_machines.py checks it
    against the tmux in use). A `#` starts a format that tmux expands (`#H` is the host name): None. Other
    characters are kept as they are here, which is what tmux does with valid UTF-8 in a UTF-8 locale only
    (an ASCII name's stored form is certain whatever the locale; healthchecks.analysis.Agent).
    """
    if (special := _SPECIAL.search(name)) is None:  # the common case: nothing to rewrite, decided in C
        return name
    if "#" in name or "\0" in name:
        return None
    return name[: special.start()] + name[special.start() :].translate(_STORED)


def stored_names(names: list[str]) -> list[str | None]:
    """stored_name of each, with the common case (nothing to rewrite in any of them) decided at once in C:
    a snapshot asks this of every record's session name."""
    joined = "/".join(names).encode("utf-8", "surrogatepass")  # `/` is no character stored_name rewrites
    if len(joined.translate(None, _SPECIAL_BYTES)) == len(joined):  # none deleted: a byte table, 8x the regex's pace
        return list(names)
    return [stored_name(name) for name in names]


def dedupe(servers: tuple[TmuxServer, ...]) -> tuple[TmuxServer, ...]:
    """One entry per server, however many --tmux-socket values (a name, its path, a symlink) reach it.

    Judged twice, each of a server's panes would belong to one label only and every session would
    look empty on the other: a whole healthy fleet of zombies.
    """
    kept: dict[tuple[str, int | None], TmuxServer] = {}
    for server in servers:
        key = server.identity if server.state is State.RUNNING else (os.path.realpath(server.socket_path), None)
        if key in kept:
            first = kept[key]
            kept[key] = TmuxServer(**{**first.__dict__, "aliases": (*first.aliases, server.label)})
        else:
            kept[key] = server
    return tuple(kept.values())


def listening_sockets(pids: set[int]) -> dict[int, str]:
    """pid -> the path of the unix socket it listens on (a tmux server's socket), for the given pids.

    Found through the process's own descriptors and /proc/net/unix, so a server started with another
    -L name or another TMUX_TMPDIR is found where it really listens.
    """
    if not pids:
        return {}
    try:
        with open("/proc/net/unix", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()[1:]
    except OSError:
        return {}
    by_inode = {}
    for line in lines:
        parts = line.split(None, 7)
        if len(parts) == 8 and parts[3] == "00010000":  # __SO_ACCEPTCON: a listening socket
            by_inode[parts[6]] = parts[7]
    found = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and (path := by_inode.get(target[8:-1])):
                found[pid] = path
                break
    return found


def read_server(socket: str | None, timeout: float = TIMEOUT, label: str | None = None) -> TmuxServer:
    label = label or socket or "default"
    path = default_socket_path(socket)
    try:
        proc = run(socket, "list-panes", "-a", "-F", FORMAT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return TmuxServer(label, State.UNREACHABLE, f"tmux did not answer within {timeout:g}s", path,
                          why=Unreachable.SILENT)
    except OSError as exc:
        return TmuxServer(label, State.UNREACHABLE, f"cannot run tmux: {exc.strerror or exc}", path,
                          why=Unreachable.FAILED)
    stderr = proc.stderr.strip()
    if proc.returncode != 0:
        if any(marker in stderr for marker in NO_SERVER_MARKERS):
            return TmuxServer(label, State.NO_SERVER, stderr, path)
        if stderr in EMPTY_SERVER_MARKERS:
            return TmuxServer(label, State.RUNNING, socket_path=path)
        why = Unreachable.OTHER_VERSION if VERSION_MISMATCH in stderr else Unreachable.FAILED
        return TmuxServer(label, State.UNREACHABLE, stderr or f"tmux exited with {proc.returncode}", path, why=why)
    try:
        parsed = [_parse(line) for line in proc.stdout.splitlines() if line]
    except ValueError:
        return TmuxServer(label, State.UNREACHABLE, "tmux printed output this tool cannot parse", path,
                          why=Unreachable.FAILED)
    if not parsed:
        return TmuxServer(label, State.RUNNING, socket_path=path)
    _, server_pid, socket_path = parsed[0]
    panes = tuple(p for p, _, _ in parsed)
    clients = _clients(socket, timeout) if any(p.attached for p in panes) else ()
    return TmuxServer(label, State.RUNNING, "", socket_path, server_pid, panes, clients=clients)


def answering_pid(socket: str | None, timeout: float) -> int | None:
    """The pid of the server answering on this socket now, by its own word (None: no answer): what a command sent
    there reaches, asked only where no pane line names it (a server with no session left)."""
    try:
        proc = run(socket, "display-message", "-p", "#{pid}", timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    pid = proc.stdout.strip()
    return int(pid) if proc.returncode == 0 and pid.isdigit() else None


def _clients(socket: str | None, timeout: float) -> tuple[Client, ...]:
    try:
        proc = run(socket, "list-clients", "-F", "#{client_tty}\t#{session_name}", timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return tuple(Client(*line.split("\t", 1)) for line in proc.stdout.splitlines() if "\t" in line)


@cache
def version() -> str:
    """`tmux -V` of the binary this run uses, for the report; empty when it cannot be run (asked once)."""
    try:
        proc = run(None, "-V", timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip()
