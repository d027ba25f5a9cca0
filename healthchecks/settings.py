"""What one run checks: which workspace, which tmux servers, which processes count as Claude."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .sources import CHOICES, Source

# Searched in a process's name and in its command line (argv joined by spaces). It catches a process
# named `claude`, an argv[0] whose basename is `claude`, `node …/@anthropic-ai/claude-code/cli.js` and
# `npx -y @anthropic-ai/claude-code` and a native install (`~/.local/share/claude/versions/<X.Y.Z>`, whose
# process name is the bare version); anchoring at the start keeps out `vim claude_notes.md` and a
# `tee` writing to a path that contains "claude".
DEFAULT_CLAUDE_MATCH = (
    r"^(\S*/)?claude(\s|$)"
    r"|^\S*/claude/versions/\d[^/\s]*(\s|$)"
    r"|^(\S*/)?node\s+(-\S+\s+)*\S*@anthropic-ai/claude-code/"
    r"|^(\S*/)?npx\s+(-\S+\s+)*@anthropic-ai/claude-code(@\S*)?(\s|$)"
)
DEFAULT_WORKSPACE = Path(".agent-workspace")
DEFAULT_PREFIX = "agent_"
DEFAULT_GRACE = 60.0
DEFAULT_TMUX_TIMEOUT = 5.0


def default_claude_config_dir() -> Path:
    """Where Claude Code keeps its config (teams, sessions): $CLAUDE_CONFIG_DIR, else ~/.claude."""
    return Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")


@dataclass(frozen=True)
class Settings:
    workspace: Path = DEFAULT_WORKSPACE
    tmux_sockets: tuple[str, ...] = ()  # empty: the default tmux server
    session_prefix: str = DEFAULT_PREFIX
    claude_match: str = DEFAULT_CLAUDE_MATCH
    grace: float = DEFAULT_GRACE
    tmux_timeout: float = DEFAULT_TMUX_TIMEOUT
    registry_tz: str = ""  # the orchestrator's time zone (IANA name); empty: this machine's local zone
    lock_timeout: float = 10.0  # how long to wait for the orchestrator's locks (a registry flock, a busy database)
    waivers: tuple = ()  # healthchecks.waivers.Waiver: findings a person acknowledged, until a date
    source: str = "auto"  # where the agents' records are: auto or a name in healthchecks.sources.SOURCES
    claude_config_dir: Path = field(default_factory=default_claude_config_dir)  # Claude Code's (Agent Teams)

    def __post_init__(self) -> None:
        try:  # fail at configuration time, not mid-scan
            re.compile(self.claude_match)
        except re.error as exc:
            raise ValueError(f"claude match {self.claude_match!r} is not a valid regex: {exc}") from None
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
        try:
            return ZoneInfo(self.registry_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"registry time zone {self.registry_tz!r} is not a known IANA zone") from None

    def root(self, source: Source) -> Path:
        """The directory a source's store lives in (its table line names the field)."""
        return getattr(self, source.root)

    def is_claude(self, name: str, argv: tuple[str, ...]) -> bool:
        pattern = _compiled(self.claude_match)
        return bool(pattern.search(name) or (argv and pattern.search(" ".join(argv))))


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern not in _PATTERNS:
        _PATTERNS[pattern] = re.compile(pattern)
    return _PATTERNS[pattern]
