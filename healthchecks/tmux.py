"""Read tmux servers with one `list-panes -a` call each, and tell "no server" from "unreachable".

libtmux returns an empty session list when tmux cannot be reached, which makes every agent look
like a ghost; this module calls the tmux binary itself, with a timeout, and keeps the difference.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from typing import Literal

TIMEOUT = 5.0
FIELDS = ("session_name", "session_created", "pane_id", "pane_pid", "pid", "socket_path", "session_id")
FORMAT = "\t".join(f"#{{{f}}}" for f in FIELDS)
# What tmux 3.x prints when it reached the socket's place and found no server behind it.
NO_SERVER_MARKERS = ("no server running on", "(No such file or directory)")
# What a running server with no session left answers (possible with `exit-empty off`): zero panes, not a fault.
EMPTY_SERVER_MARKERS = ("no current target", "no sessions")

State = Literal["running", "no-server", "unreachable"]


@dataclass(frozen=True)
class Pane:
    session: str
    session_created: float
    pane_id: str
    pid: int
    session_id: str = ""  # $N: unique for the server's lifetime, unlike a name


@dataclass(frozen=True)
class TmuxServer:
    """One tmux server as seen at one moment."""

    label: str  # the --tmux-socket value, or "default"
    state: State
    reason: str = ""
    socket_path: str = ""
    server_pid: int | None = None
    panes: tuple[Pane, ...] = ()

    @property
    def reachable(self) -> bool:
        return self.state != "unreachable"


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


def run(socket: str | None, *command: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run one tmux command against one server; raises OSError or TimeoutExpired when unreachable."""
    binary = shutil.which("tmux")
    if binary is None:
        raise FileNotFoundError("tmux binary not found on PATH")
    return subprocess.run(
        [binary, *server_args(socket), *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _parse(line: str) -> tuple[Pane, int, str]:
    session, created, pane_id, pane_pid, server_pid, socket_path, session_id = line.split("\t")
    return Pane(session, float(created), pane_id, int(pane_pid), session_id), int(server_pid), socket_path


def read_server(socket: str | None, timeout: float = TIMEOUT) -> TmuxServer:
    label = socket or "default"
    path = default_socket_path(socket)
    try:
        proc = run(socket, "list-panes", "-a", "-F", FORMAT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return TmuxServer(label, "unreachable", f"tmux did not answer within {timeout:g}s", path)
    except OSError as exc:
        return TmuxServer(label, "unreachable", f"cannot run tmux: {exc.strerror or exc}", path)
    stderr = proc.stderr.strip()
    if proc.returncode != 0:
        if any(marker in stderr for marker in NO_SERVER_MARKERS):
            return TmuxServer(label, "no-server", stderr, path)
        if stderr in EMPTY_SERVER_MARKERS:
            return TmuxServer(label, "running", socket_path=path)
        return TmuxServer(label, "unreachable", stderr or f"tmux exited with {proc.returncode}", path)
    try:
        parsed = [_parse(line) for line in proc.stdout.splitlines() if line]
    except ValueError:
        return TmuxServer(label, "unreachable", "tmux printed output this tool cannot parse", path)
    if not parsed:
        return TmuxServer(label, "running", socket_path=path)
    _, server_pid, socket_path = parsed[0]
    return TmuxServer(label, "running", "", socket_path, server_pid, tuple(p for p, _, _ in parsed))


@cache
def version() -> str:
    """`tmux -V` of the binary this run uses, for the report; empty when it cannot be run (asked once)."""
    try:
        proc = run(None, "-V", timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip()
