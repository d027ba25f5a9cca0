"""What an agent's pane may run when its agent is gone: the only processes a zombie session may hold.

A session is a zombie (and killed under --fix) only on positive evidence that nothing works in it: every pane dead,
or every process in its panes one of these. Anything else, however unlike Claude it looks (a Claude under a name
no matcher knows, a build the agent started), is information: no action may rest on the absence of a match.
"""

from __future__ import annotations

import re
from enum import Enum

from .processes import Proc
from .programs import PROGRAMS


class Idle(Enum):
    """The known idle processes, and why each is one."""

    DEFUNCT = "a process that has exited and waits to be reaped"
    SHELL = "a shell: at a prompt, or running the agent's pipeline"
    PIPE = "the pipeline's cat (the prompt) or tee (the log)"
    NOTIFIER = "the orchestrator's completion notifier (orchestrator/completion_notifier.py)"


# Any pane's, whatever program it ran: its shells. What idles beside an agent program is the programs table's.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "tcsh", "csh"})
PIPES: frozenset[str] = frozenset().union(*(program.idle_companions for program in PROGRAMS))
PYTHON = re.compile(r"python[0-9.]*")
NOTIFIER = "completion_notifier.py"


def _named(proc: Proc, names: frozenset[str]) -> bool:
    """Its name, and its binary when readable, are among ``names``: renaming a process does not make it a shell."""
    return proc.name in names and (not proc.exe or proc.exe.rsplit("/", 1)[-1] in names)


def idle(proc: Proc) -> Idle | None:
    """Which known idle process this is; None: something that may be working."""
    if proc.defunct:
        return Idle.DEFUNCT
    if _named(proc, SHELLS):
        return Idle.SHELL
    if _named(proc, PIPES):
        return Idle.PIPE
    python = PYTHON.fullmatch(proc.name) and (not proc.exe or PYTHON.fullmatch(proc.exe.rsplit("/", 1)[-1]))
    if python and any(arg.rsplit("/", 1)[-1] == NOTIFIER for arg in proc.argv[1:3]):
        return Idle.NOTIFIER
    return None
