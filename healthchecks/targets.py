"""What a finding is about, typed, so that a fixer re-verifies exactly that entity and nothing else.

Like psutil's Process, the identity lives inside the value: a process is PID + start ticks (a PID
alone can be reused), a session is its server, tmux id and creation time (a name can be reused),
and its pane processes as the snapshot saw them (a dead pane's PID can be given to a stranger).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProcessTarget:
    pid: int
    start_ticks: int
    # A pair's child (programs.Pair) that is one agent with it: ended with it, each by its own identity
    carried: tuple[ProcessTarget, ...] = field(default=(), compare=False)

    @property
    def subject(self) -> tuple[str, str]:
        """(kind, id) of what it is about, for the finding's stable id: the same entity, the same id, whatever
        the finding's wording."""
        return "process", str(self.pid)


@dataclass(frozen=True)
class SessionTarget:
    server: str  # the checked server's label
    session_id: str  # $N: never reused while the server runs
    name: str
    created: float
    # The live panes' processes as that snapshot saw them: shown, but not part of the session's identity (the
    # fixer ends the roots the verification snapshot saw, each by the start time recorded there).
    roots: tuple[ProcessTarget, ...] = field(default=(), compare=False)
    attached: int = field(default=0, compare=False)  # clients attached then; re-read before acting

    @property
    def subject(self) -> tuple[str, str]:
        return "session", self.name


@dataclass(frozen=True)
class AgentTarget:
    id: str
    session: str  # as tmux stores it

    @property
    def subject(self) -> tuple[str, str]:
        return "agent", self.id


@dataclass(frozen=True)
class CounterTarget:
    path: str
    name: str
    scope: str = field(default="", compare=False)  # the file as a person names it (healthchecks.records.Scope.label)

    @property
    def subject(self) -> tuple[str, str]:
        return "counter", f"{self.scope} {self.name}"


@dataclass(frozen=True)
class FileTarget:
    path: str

    @property
    def subject(self) -> tuple[str, str]:
        return "file", self.path


@dataclass(frozen=True)
class PaneTarget:
    """One pane of one server (a record placed by its pane id): the server process (pane ids restart with a new
    server) and the pane's process as the snapshot saw it (None: a dead pane)."""

    server: str
    server_pid: int | None
    pane_id: str
    root: ProcessTarget | None
    owner: str = field(default="", compare=False)  # the record it holds, as a person names it

    @property
    def subject(self) -> tuple[str, str]:
        return "pane", f"{self.server} {self.pane_id}"


@dataclass(frozen=True)
class ServerTarget:
    """A whole tmux server, by its socket and its process (a restarted server is another one)."""

    server: str
    server_pid: int | None = field(compare=False)  # re-checked by the effect (an empty server shows no pid)
    panes: tuple[PaneTarget, ...] = field(default=(), compare=False)

    @property
    def subject(self) -> tuple[str, str]:
        return "server", self.server


@dataclass(frozen=True)
class ScopeTarget:
    """One store of records as a whole (a team's directory), by its path and its content's digest."""

    path: str
    name: str
    digest: str | None = field(default=None, compare=False)

    @property
    def subject(self) -> tuple[str, str]:
        return "scope", self.name


@dataclass(frozen=True)
class WorktreeTarget:
    """A git worktree of a repository, locked by one agent (pid + start ticks): the lock is read again, and must
    still name that agent, dead, before anything is done to it."""

    repo: str
    path: str
    pid: int
    start_ticks: int
    branch: str = field(default="", compare=False)

    @property
    def subject(self) -> tuple[str, str]:
        return "worktree", self.path


Target = (ProcessTarget | SessionTarget | AgentTarget | CounterTarget | FileTarget | PaneTarget | ServerTarget
          | ScopeTarget | WorktreeTarget | None)
