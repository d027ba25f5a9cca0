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


Target = ProcessTarget | SessionTarget | AgentTarget | CounterTarget | FileTarget | None
