"""What one run checks: which workspace, which tmux servers, which processes count as Claude."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import tzinfo
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from .programs import CLAUDE, OTHERS, AgentProgram, Programs
from .sources import CHOICES
from .text import is_printable_name

if TYPE_CHECKING:  # types only: the waivers (and tomllib) are imported where they are read (options.settings_from)
    from .waivers import Waiver

DEFAULT_WORKSPACE = Path(".agent-workspace")
DEFAULT_PREFIX = ""  # the records' dialect's
DEFAULT_GRACE = 60.0
DEFAULT_TMUX_TIMEOUT = 5.0


@dataclass(frozen=True)
class Settings:
    workspace: Path = DEFAULT_WORKSPACE
    tmux_sockets: tuple[str, ...] = ()  # empty: the default tmux server
    session_prefix: str = DEFAULT_PREFIX  # empty: the records' dialect's (agent_ for the orchestrator)
    claude_match: str = CLAUDE.match  # the Claude entry's name and argv pattern (programs.py)
    grace: float = DEFAULT_GRACE
    tmux_timeout: float = DEFAULT_TMUX_TIMEOUT
    registry_tz: str = ""  # the orchestrator's time zone (IANA name); empty: this machine's local zone
    lock_timeout: float = 10.0  # how long to wait for the orchestrator's locks (a registry flock, a busy database)
    waivers: tuple[Waiver, ...] = ()  # findings a person acknowledged, until a date
    source: str = "auto"  # where the agents' records are: auto or a name in healthchecks.sources.SOURCES
    # this run's values of its placed store's options, (flag, value): what its Place.load reads beside the place
    place_options: tuple[tuple[str, str], ...] = ()
    more_workspaces: tuple[Path, ...] = ()  # further orchestrator workspaces a run of every store judges (--workspace)
    # Searched in /proc/<pid>/exe: an installed Claude Code, whatever it is named. Empty: recognised by claude_match
    # only (worlds of stand-ins, so that only their own stand-ins count as Claude in them).
    claude_exe: str = CLAUDE.exe
    # the file of what was seen as agents' (healthchecks.sightings), in the per-user state directory; None: none
    sightings: Path | None = None
    # programs added by configuration (--agent-program, healthchecks_agent_programs: programs.configured), asked after
    # the built-in table's
    agent_programs: tuple[AgentProgram, ...] = ()

    def __post_init__(self) -> None:
        for what, pattern in (("claude match", self.claude_match), ("claude exe", self.claude_exe)):
            try:  # fail at configuration time, not mid-scan
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{what} {pattern!r} is not a valid regex: {exc}") from None
        if self.grace < 0:
            raise ValueError("grace must be >= 0 seconds")
        if self.tmux_timeout <= 0:
            raise ValueError("tmux timeout must be > 0 seconds")
        self.tz  # noqa: B018  (an unknown zone fails here, at configuration time)
        if self.source not in CHOICES:
            raise ValueError(f"source {self.source!r} is not one of {', '.join(CHOICES)}")

    @property
    def tz(self) -> tzinfo | None:
        """The zone naive registry timestamps are read in; None: this machine's local zone."""
        if not self.registry_tz:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(self.registry_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"registry time zone {self.registry_tz!r} is not a known IANA zone") from None

    @property
    def programs(self) -> Programs:
        """The programs table this run's scan and judges ask: the built-in one and the configured programs."""
        return _table(self.agent_programs)

    def is_claude(self, name: str, argv: tuple[str, ...], exe: str = "") -> bool:
        """What the process is (its binary) first, then its name and argv against --claude-match.

        A name with a line break or an escape sequence is never Claude: no install makes one, and a report line
        must not be forged.
        """
        if not is_printable_name(name):
            return False
        if self.claude_exe and exe and CLAUDE.by_binary(_compiled(self.claude_exe), exe, argv):
            return True
        pattern = _compiled(self.claude_match)
        return bool(pattern.search(name) or (argv and pattern.search(" ".join(argv))))


@cache
def _table(configured: tuple[AgentProgram, ...]) -> Programs:
    return Programs((*OTHERS, *configured))


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern not in _PATTERNS:
        _PATTERNS[pattern] = re.compile(pattern)
    return _PATTERNS[pattern]
