"""What one run checks: which workspace, which tmux servers, which processes count as Claude."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .sources import CHOICES
from .text import is_printable_name
from .waivers import Waiver

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
# What an installed Claude Code is, read from /proc/<pid>/exe: the first evidence, because its name (comm) and argv
# are only what was exec'd (`claude.exe`, `claude`, the version `2.1.332`, or any symlink's name). A binary inside
# an `@anthropic-ai/claude-code*` npm package (bin/claude.exe, or a platform package's `claude`), or the native
# installer's `.../claude/versions/<X.Y.Z>`.
DEFAULT_CLAUDE_EXE = r"/@anthropic-ai/claude-code[^/]*/[^\n]*$|/claude/versions/\d+\.\d+\.\d+[^/\n]*$"
# A script run by node (whose exe is node): the node era's `…/@anthropic-ai/claude-code/cli.js`, or `npx [-y]
# @anthropic-ai/claude-code[@version]` (argv[1] is the npx script).
CLAUDE_SCRIPT = re.compile(r"\S*/@anthropic-ai/claude-code/cli\.js")
CLAUDE_PACKAGE = re.compile(r"@anthropic-ai/claude-code(@\S+)?")
NODE_EXE = re.compile(r"/(node|nodejs|bun)[^/]*$")
DEFAULT_WORKSPACE = Path(".agent-workspace")
DEFAULT_PREFIX = ""  # the records' dialect's
DEFAULT_GRACE = 60.0
DEFAULT_TMUX_TIMEOUT = 5.0


@dataclass(frozen=True)
class Settings:
    workspace: Path = DEFAULT_WORKSPACE
    tmux_sockets: tuple[str, ...] = ()  # empty: the default tmux server
    session_prefix: str = DEFAULT_PREFIX  # empty: the records' dialect's (agent_ for the orchestrator)
    claude_match: str = DEFAULT_CLAUDE_MATCH
    grace: float = DEFAULT_GRACE
    tmux_timeout: float = DEFAULT_TMUX_TIMEOUT
    registry_tz: str = ""  # the orchestrator's time zone (IANA name); empty: this machine's local zone
    lock_timeout: float = 10.0  # how long to wait for the orchestrator's locks (a registry flock, a busy database)
    waivers: tuple[Waiver, ...] = ()  # findings a person acknowledged, until a date
    source: str = "auto"  # where the agents' records are: auto or a name in healthchecks.sources.SOURCES
    # Searched in /proc/<pid>/exe: an installed Claude Code, whatever it is named. Empty: recognised by claude_match
    # only (worlds of stand-ins, so that only their own stand-ins count as Claude in them).
    claude_exe: str = DEFAULT_CLAUDE_EXE
    # the file of what was seen as agents' (healthchecks.sightings), in the per-user state directory; None: none
    sightings: Path | None = None

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
        try:
            return ZoneInfo(self.registry_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"registry time zone {self.registry_tz!r} is not a known IANA zone") from None

    def is_claude(self, name: str, argv: tuple[str, ...], exe: str = "") -> bool:
        """What the process is (its binary) first, then its name and argv against --claude-match.

        A name with a line break or an escape sequence is never Claude: no install makes one, and a report line
        must not be forged.
        """
        if not is_printable_name(name):
            return False
        if self.claude_exe and exe and is_claude_binary(_compiled(self.claude_exe), exe, argv):
            return True
        pattern = _compiled(self.claude_match)
        return bool(pattern.search(name) or (argv and pattern.search(" ".join(argv))))


def is_claude_binary(binary: re.Pattern[str], exe: str, argv: tuple[str, ...]) -> bool:
    """An installed Claude Code by its executable: the package's or the native installer's binary (``binary``), or
    node running the package's cli.js or npx of the package."""
    if binary.search(exe):
        return True
    if not NODE_EXE.search(exe) or len(argv) < 2:
        return False
    if CLAUDE_SCRIPT.fullmatch(argv[1]):
        return True
    npx = argv[1].rsplit("/", 1)[-1] in ("npx", "npx-cli.js")
    return npx and any(CLAUDE_PACKAGE.fullmatch(a) for a in argv[2:] if not a.startswith("-"))


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern not in _PATTERNS:
        _PATTERNS[pattern] = re.compile(pattern)
    return _PATTERNS[pattern]
