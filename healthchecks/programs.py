"""The agent programs a fleet runs, as data: how each is recognised, what idles beside it, how it is ended, where it
records its sessions. The scan (processes.py, through Settings), the judges (analysis.py) and idle.py ask this table
instead of each knowing its own copy of what a Claude process is.

Today it holds one program, Claude Code. The next entries (facts measured in /work/shared/DOMAIN.md, "Other agent
programs") will fill in:

- Codex: a wrapper (``exe`` node, ``interpreted`` by the script whose realpath ends ``@openai/codex/bin/codex.js``) and
  a native child (``pair.child_exe`` ``…/@openai/codex-linux-x64/vendor/…/bin/codex``); the wrapper forwards SIGTERM
  (``ending.role`` WRAPPER); ``codex exec`` runs headless (``headless_flags`` ``exec``, a subcommand);
  ``~/.codex/sessions/YYYY/MM/DD/rollout-….jsonl``, not per pid (``sessions`` None or a new shape).
- Gemini CLI: a node launcher that relaunches a node child (``pair.child_env`` ``GEMINI_CLI_NO_RELAUNCH``); the
  launcher ignores SIGTERM, SIGINT and SIGHUP, so the child is the one signalled (``ending.role`` CHILD); ``-p``.
- opencode: one native process (``exe`` ``…/opencode-ai/bin/opencode.exe`` or the platform package's ``opencode``);
  ``opencode run`` headless; its sessions in a SQLite database, not per pid.
- Aider: a python script (``interpreted``: a python interpreter and ``…/bin/aider``); ``--message`` headless; its
  files in the repository.
- cursor-agent: a launcher script running a bundled node under ``~/.local/share/cursor-agent`` (a ``pair``); ``-p``.
  processes.looks_like_cursor_agent (the orchestrator's E3 backend) becomes its ``match``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Interpreted:
    """A program run as a script by an interpreter (node, bun, python): its binary is the interpreter's, so the
    script it runs (argv[1]), or the package a runner (npx) runs by name, says which program it is."""

    interpreter: re.Pattern[str]  # searched in /proc/<pid>/exe
    script: re.Pattern[str]  # argv[1], whole
    runners: frozenset[str] = frozenset()  # argv[1]'s file name when it runs a package by name
    package: re.Pattern[str] | None = None  # a runner's argument (not a flag), whole

    def runs(self, argv: tuple[str, ...]) -> bool:
        """Whether the interpreter's arguments run this program (asked once its ``interpreter`` matched)."""
        if len(argv) < 2:
            return False
        if self.script.fullmatch(argv[1]):
            return True
        runner = argv[1].rsplit("/", 1)[-1] in self.runners
        return runner and self.package is not None and any(
            self.package.fullmatch(a) for a in argv[2:] if not a.startswith("-"))


class Role(Enum):
    """Which process of a program's processes a signal goes to."""

    ONLY = "its one process"
    WRAPPER = "the wrapper a person or manager started (it passes the signal on to its child)"
    CHILD = "the child that does the work (its wrapper ignores signals, and exits with it)"


@dataclass(frozen=True)
class Pair:
    """A program that runs as two processes: the wrapper (recognised as the program) and the child it starts."""

    child_exe: re.Pattern[str] | None = None  # the child's binary, when it is not the wrapper's
    child_env: str | None = None  # a variable only the child's environment holds


@dataclass(frozen=True)
class Ending:
    """How a leaked process of the program is ended: SIGTERM, SIGKILL after the grace, to ``role``'s process and
    everything below it; with ``group``, its whole process group too."""

    role: Role = Role.ONLY
    group: bool = False


@dataclass(frozen=True)
class SessionFiles:
    """Where a program records each live process: ``per_pid`` (``{pid}`` filled in) under its config directory,
    which ``config_env`` names, else ``config_default``."""

    config_env: str
    config_default: str
    per_pid: str


@dataclass(frozen=True)
class AgentProgram:
    """One agent program: its recognition (``exe`` first, then ``match``: the defaults of --claude-exe and
    --claude-match for Claude), the flags of its headless runs, the idle processes that go with it in a pane,
    how it is ended and where its session files are."""

    name: str
    exe: str  # regex searched in /proc/<pid>/exe: the installed program, whatever it was named
    match: str  # regex searched in the process's name and its argv joined by spaces
    interpreted: Interpreted | None  # run as a script, where ``exe`` is the interpreter's
    headless_flags: tuple[str, ...]  # any of them in its argv: a run without a person at a prompt
    idle_companions: frozenset[str]  # what idles beside it in a pane when it is gone (by name and binary)
    ending: Ending
    pair: Pair | None = None
    sessions: SessionFiles | None = None

    def by_binary(self, binary: re.Pattern[str], exe: str, argv: tuple[str, ...]) -> bool:
        """The installed program by its executable (``binary``: ``exe`` or what overrides it), or an interpreter
        running its script or package."""
        if binary.search(exe):
            return True
        way = self.interpreted  # the scan asks for every process: no loop, no call unless the interpreter matches
        return way is not None and way.interpreter.search(exe) is not None and way.runs(argv)

    def headless(self, argv: tuple[str, ...]) -> bool:
        return any(flag in argv for flag in self.headless_flags)


CLAUDE = AgentProgram(
    name="Claude Code",
    # An `@anthropic-ai/claude-code*` npm package's binary (bin/claude.exe, or a platform package's `claude`), or the
    # native installer's `.../claude/versions/<X.Y.Z>`: the first evidence, because its name (comm) and argv are only
    # what was exec'd (`claude.exe`, `claude`, the version `2.1.332`, or any symlink's name).
    exe=r"/@anthropic-ai/claude-code[^/]*/[^\n]*$|/claude/versions/\d+\.\d+\.\d+[^/\n]*$",
    # A process named `claude`, an argv[0] whose basename is `claude`, `node …/@anthropic-ai/claude-code/cli.js`,
    # `npx -y @anthropic-ai/claude-code` and a native install (`~/.local/share/claude/versions/<X.Y.Z>`, whose process
    # name is the bare version); anchoring at the start keeps out `vim claude_notes.md` and a `tee` writing to a path
    # that contains "claude".
    match=(
        r"^(\S*/)?claude(\s|$)"
        r"|^\S*/claude/versions/\d[^/\s]*(\s|$)"
        r"|^(\S*/)?node\s+(-\S+\s+)*\S*@anthropic-ai/claude-code/"
        r"|^(\S*/)?npx\s+(-\S+\s+)*@anthropic-ai/claude-code(@\S*)?(\s|$)"
    ),
    # The node era's `…/@anthropic-ai/claude-code/cli.js`, or `npx [-y] @anthropic-ai/claude-code[@version]` (argv[1]
    # is the npx script).
    interpreted=Interpreted(
        interpreter=re.compile(r"/(node|nodejs|bun)[^/]*$"),
        script=re.compile(r"\S*/@anthropic-ai/claude-code/cli\.js"),
        runners=frozenset({"npx", "npx-cli.js"}),
        package=re.compile(r"@anthropic-ai/claude-code(@\S+)?"),
    ),
    headless_flags=("--print", "-p"),
    idle_companions=frozenset({"cat", "tee"}),  # the pipeline's cat (the prompt) and tee (the log)
    # Its own tree (MCP servers, the Bash tool's own-session children), not its group: outside a pane the group may
    # be a person's pipeline. SIGTERM ends it in 0.1 s.
    ending=Ending(Role.ONLY, group=False),
    # Interactive and background Claudes write one; whether a `--print` run does differs between measurements.
    sessions=SessionFiles("CLAUDE_CONFIG_DIR", "~/.claude", "sessions/{pid}.json"),
)

PROGRAMS: tuple[AgentProgram, ...] = (CLAUDE,)
