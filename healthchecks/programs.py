"""The agent programs a fleet runs, as data: how each is recognised, what idles beside it, how it is ended, where it
records its sessions. The scan (processes.py, through Settings), the judges (analysis.py) and idle.py ask this table
instead of each knowing its own copy of what a Claude process is.

Claude Code is the one the checks know best (``is_claude``, --claude-match/--claude-exe, orphan attribution). The
others (facts measured in /work/shared/DOMAIN.md, "Other agent programs") are recognised by their binary only, never
by a name alone: ``recognise`` gives the scan each process's program. A pane running any of them is a working agent.
Codex's two app-server daemons (a copy of its binary under ``~/.codex/packages/``, their own sessions) are not
recognised as Codex: they are not the agent. They, and a Gemini whose terminal is gone, are the program's
``leftover``: what the analysis reports when its agent is gone (healthchecks.analysis.attribution).
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from enum import Enum
from functools import cached_property


@dataclass(frozen=True)
class Interpreted:
    """A program run as a script by an interpreter (node, bun, python): its binary is the interpreter's, so the
    script it runs (argv[1]), or the package a runner (npx) runs by name, says which program it is."""

    interpreter: re.Pattern[str]  # searched in /proc/<pid>/exe
    script: re.Pattern[str]  # argv[1], whole
    runners: frozenset[str] = frozenset()  # argv[1]'s file name when it runs a package by name
    package: re.Pattern[str] | None = None  # a runner's argument (not a flag), whole
    # With names: the script is the first argument that is not a flag, its file name one of these, its absolute path
    # resolved through symlinks before ``script`` is asked (`.bin/gemini` -> `@google/gemini-cli/bundle/gemini.js`)
    names: frozenset[str] = frozenset()
    # A package run as `python -m <module>`: its `<module>/__main__.py` installed under the interpreter's prefix (the
    # venv of an absolute argv[0], or the binary's own), the file the module name resolves to, not the name alone
    module: str | None = None

    def runs(self, argv: tuple[str, ...], exe: str = "") -> bool:
        """Whether the interpreter's arguments run this program (asked once its ``interpreter`` matched)."""
        if len(argv) < 2:
            return False
        if self.module and argv[1:3] == ("-m", self.module):
            return _installed_module(self.module, argv[0], exe)
        if self.names:
            return self._resolved_script(argv)
        if self.script.fullmatch(argv[1]):
            return True
        runner = argv[1].rsplit("/", 1)[-1] in self.runners
        return runner and self.package is not None and any(
            self.package.fullmatch(a) for a in argv[2:] if not a.startswith("-"))

    def _resolved_script(self, argv: tuple[str, ...]) -> bool:
        script = next((a for a in argv[1:] if not a.startswith("-")), "")
        if not script.startswith("/") or script.rsplit("/", 1)[-1] not in self.names:
            return False  # a relative path names a file in the process's cwd, not ours
        return self.script.fullmatch(os.path.realpath(script)) is not None

    def own_arguments(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        """The arguments after the script or module (the interpreter's own, such as python's `-m`, are not the
        program's); all but argv[0] when none is found."""
        rest = argv[1:]
        at = next((i for i, a in enumerate(rest) if a.rsplit("/", 1)[-1] in self.names or a == self.module), -1)
        return rest[at + 1:]


def _installed_module(module: str, argv0: str, exe: str) -> bool:
    """Whether ``module`` is a package installed under the interpreter's prefix: the venv argv[0] names (absolute
    only: a bare `python` is looked up in a PATH we do not know) or the binary's own installation."""
    prefixes = {os.path.dirname(os.path.dirname(path)) for path in (argv0, exe) if path.startswith("/")}
    return any(glob.glob(f"{glob.escape(prefix)}/lib/python3*/site-packages/{module}/__main__.py")
               for prefix in prefixes)


class Role(Enum):
    """Which process of a program's processes a signal goes to."""

    ONLY = "its one process"
    WRAPPER = "the wrapper a person or manager started (it passes the signal on to its child)"
    CHILD = "the child that does the work (its wrapper ignores signals, and exits with it)"


@dataclass(frozen=True)
class Pair:
    """A program that runs as two processes: the wrapper (recognised as the program) and the child it starts, known
    as the pair's by running the same program under it (and, when it is another binary, by ``child_exe``)."""

    child_exe: re.Pattern[str] | None = None  # the child's binary, when it is not the wrapper's


@dataclass(frozen=True)
class Ending:
    """How a leaked process of the program is ended: SIGTERM, SIGKILL after the grace, to ``role``'s process and
    everything below it; with ``group``, its whole process group too."""

    role: Role = Role.ONLY
    group: bool = False


class Orphaned(Enum):
    """What shows that a leftover process has lost the agent it belonged to."""

    PARENT_GONE = "its parent {program} is gone"
    TERMINAL_GONE = "its terminal is gone"


@dataclass(frozen=True)
class Leftover:
    """Processes a program leaves running once its agent is gone (DOMAIN.md, "Other agent programs"): known by a
    binary of their own (``exe``), or with None the program's own processes; ``orphaned`` says when they are."""

    what: str  # as a person reads it
    exe: re.Pattern[str] | None
    orphaned: Orphaned


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
    headless_subcommands: frozenset[str] = frozenset()  # its first word after the program: `codex exec`
    commands: frozenset[str] = frozenset()  # the command names a manager records for it (claude-squad's `program`)
    leftover: Leftover | None = None  # what it leaves running when its agent is gone

    @cached_property
    def binary(self) -> re.Pattern[str] | None:
        return re.compile(self.exe) if self.exe else None

    def by_binary(self, binary: re.Pattern[str], exe: str, argv: tuple[str, ...]) -> bool:
        """The installed program by its executable (``binary``: ``exe`` or what overrides it), or an interpreter
        running its script or package."""
        if binary.search(exe):
            return True
        way = self.interpreted  # the scan asks for every process: no loop, no call unless the interpreter matches
        return way is not None and way.interpreter.search(exe) is not None and way.runs(argv, exe)

    def headless(self, argv: tuple[str, ...]) -> bool:
        """A run without a person at a prompt, by this program's own flags or first word (`codex exec`), read in its
        own arguments: an interpreter's (python's `-m aider`) are not Aider's `-m MESSAGE`."""
        rest = self.interpreted.own_arguments(argv) if self.interpreted else argv[1:]
        if any(flag in rest for flag in self.headless_flags):
            return True
        return bool(rest) and rest[0] in self.headless_subcommands


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
    commands=frozenset({"claude"}),
)
NODE = re.compile(r"/(node|nodejs)[^/]*$")

CODEX = AgentProgram(
    name="Codex",
    exe=r"/@openai/codex-[^/]+/vendor/[^/]+/bin/codex$",  # the native child (a platform package's binary)
    match=r"^(\S*/)?codex(\s|$)",  # documentation only: no program but Claude is recognised by name
    interpreted=Interpreted(NODE, re.compile(r"\S*/@openai/codex/bin/codex\.js"),
                            names=frozenset({"codex", "codex.js"})),
    headless_flags=(),
    headless_subcommands=frozenset({"exec", "e"}),
    idle_companions=frozenset(),
    ending=Ending(Role.WRAPPER),  # the node wrapper forwards SIGTERM to its native child
    pair=Pair(child_exe=re.compile(r"/@openai/codex-[^/]+/vendor/[^/]+/bin/codex$")),
    commands=frozenset({"codex"}),
    # its two app-server daemons, children of the native codex, re-parented to pid 1 when the pane dies
    leftover=Leftover("app-server daemon", re.compile(r"/packages/app-server-daemon/releases/[^/]+/bin/codex$"),
                      Orphaned.PARENT_GONE),
)
GEMINI = AgentProgram(
    name="Gemini CLI",
    exe="",  # node, both of them: the launcher and the child it relaunches with a larger heap
    match=r"^(\S*/)?gemini(\s|$)",
    interpreted=Interpreted(NODE, re.compile(r"\S*/@google/gemini-cli/bundle/gemini\.js"),
                            names=frozenset({"gemini", "gemini.js"})),
    headless_flags=("-p", "--prompt"),
    idle_companions=frozenset(),
    ending=Ending(Role.CHILD),  # the launcher ignores SIGTERM, SIGINT and SIGHUP, and exits when its child does
    pair=Pair(),  # its child is node running the same script again (GEMINI_CLI_NO_RELAUNCH set)
    commands=frozenset({"gemini"}),
    leftover=Leftover("process", None, Orphaned.TERMINAL_GONE),  # both live on, idle, after kill-session
)
OPENCODE = AgentProgram(
    name="opencode",
    # One native process: npm's (a hard link of its platform package's binary), or its own installer's
    exe=r"/opencode-ai/bin/opencode\.exe$|/opencode-linux-[^/]+/bin/opencode$|/\.opencode/bin/opencode$",
    match=r"^(\S*/)?opencode(\s|$)",
    interpreted=None,
    headless_flags=(),
    headless_subcommands=frozenset({"run"}),
    idle_companions=frozenset(),
    ending=Ending(Role.ONLY),
    commands=frozenset({"opencode"}),
)
AIDER = AgentProgram(
    name="Aider",
    exe="",  # the python interpreter of its venv, running the venv's `bin/aider` script or `-m aider`
    match=r"^(\S*/)?aider(\s|$)",
    interpreted=Interpreted(re.compile(r"/python[0-9.]*$"), re.compile(r"\S*/bin/aider"), names=frozenset({"aider"}),
                            module="aider"),
    headless_flags=("--message", "-m", "--message-file", "-f"),
    idle_companions=frozenset(),
    ending=Ending(Role.ONLY),
    commands=frozenset({"aider"}),
)
# Not installable here (no offline package): as its docs describe it, `~/.local/bin/cursor-agent` (or `agent`), a
# symlink to the launcher script `~/.local/share/cursor-agent/versions/<v>/cursor-agent`, which runs the node bundled
# beside it. The tests run a stand-in of that shape (tests/test_programs.py), not the real program.
CURSOR_AGENT = AgentProgram(
    name="cursor-agent",
    exe=r"/cursor-agent/versions/[^/]+/node$",  # the bundled node: a node nowhere else
    match=r"^(\S*/)?(cursor-)?agent(\s|$)",
    interpreted=Interpreted(re.compile(r"/(ba|da|z)?sh$"), re.compile(r"\S*/cursor-agent/versions/[^/]+/cursor-agent"),
                            names=frozenset({"cursor-agent", "agent"})),
    headless_flags=("-p", "--print"),
    idle_companions=frozenset(),
    ending=Ending(Role.CHILD),  # a shell launcher: SIGTERM would end it and leave its node
    pair=Pair(child_exe=re.compile(r"/cursor-agent/versions/[^/]+/node$")),
    commands=frozenset({"cursor-agent", "agent", "cursor"}),  # `cursor`: aoe's `tool`, the orchestrator's backend
)

PROGRAMS: tuple[AgentProgram, ...] = (CLAUDE, CODEX, GEMINI, OPENCODE, AIDER, CURSOR_AGENT)
MAX_BINARIES = 4096  # binaries whose asks a table keeps (Programs._binary_asks); past it they are worked out again
OTHERS = PROGRAMS[1:]


@dataclass(frozen=True)
class Programs:
    """The table one run asks: the built-in programs and those its configuration adds (Settings.programs)."""

    others: tuple[AgentProgram, ...] = OTHERS  # every program but Claude, whose entry --claude-* options override

    @cached_property
    def candidate(self) -> re.Pattern[str]:
        """One search a process decides whether any program may be running it (its binary, or an interpreter one of
        them uses): a process none of them can be costs the scan this search and nothing more."""
        others = self.others
        return re.compile("|".join(
            [p.exe for p in others if p.exe] + sorted({p.interpreted.interpreter.pattern for p in others
                                                       if p.interpreted})))

    def recognise(self, exe: str, argv: tuple[str, ...]) -> AgentProgram | None:
        """The program other than Claude Code that this process runs, by its binary (``/proc/<pid>/exe``) and, for
        an interpreter, by its script's real path; None for any other process (Claude is ``Settings.is_claude``'s)."""
        if not exe:
            return None
        for program, by_binary in self._binary_asks(exe):
            if by_binary or (program.interpreted is not None and program.interpreted.runs(argv, exe)):
                return program
        return None

    @cached_property
    def _asks(self) -> dict[str, tuple[tuple[AgentProgram, bool], ...]]:
        """_binary_asks' memory, one per table: a frozen dataclass keeps a mutable cache only this way."""
        return {}

    def _binary_asks(self, exe: str) -> tuple[tuple[AgentProgram, bool], ...]:
        """What a binary alone decides, in table order, worked out once a binary (a machine runs a few dozen, 1,000
        processes of bash): each program it may be, True when by the binary itself (the last one asked), False when
        by an interpreter its arguments must confirm. () for a binary no program can be."""
        if (found := self._asks.get(exe)) is not None:
            return found
        asks: list[tuple[AgentProgram, bool]] = []
        for program in self.others if self.candidate.search(exe) is not None else ():
            if program.binary is not None and program.binary.search(exe):
                asks.append((program, True))
                break
            if program.interpreted is not None and program.interpreted.interpreter.search(exe):
                asks.append((program, False))
        if len(self._asks) >= MAX_BINARIES:
            self._asks.clear()
        self._asks[exe] = found = tuple(asks)
        return found

    def named(self, commands: tuple[str, ...]) -> AgentProgram | None:
        """The program a manager's record names, the first of its ``commands`` (its command: `codex`, a path, with
        arguments; an agent's name) that names one; None when none does."""
        for command in commands:
            words = command.split(maxsplit=1)
            first = words[0].rsplit("/", 1)[-1] if words else ""
            if found := next((p for p in (CLAUDE, *self.others) if first in p.commands), None):
                return found
        return None


TABLE = Programs()  # the built-in table: what a run without configured programs asks
recognise = TABLE.recognise
CONFIGURED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,39}")


def configured(line: str) -> AgentProgram:
    """A program a person adds without code, from `NAME = EXE_REGEX`: recognised by its binary (searched in
    /proc/<pid>/exe) only, never by a name; named NAME in outputs and in a manager's record. ValueError says what
    is wrong with the line."""
    name, sep, exe = (part.strip() for part in line.partition("="))
    if not sep or not CONFIGURED_NAME.fullmatch(name):
        raise ValueError("expected NAME = EXE_REGEX, NAME of letters, digits, . _ + - (40 at most)")
    if any(name.lower() in {p.name.lower(), *p.commands} for p in PROGRAMS):
        raise ValueError(f"{name} is already a program of the table")
    if not exe:
        raise ValueError("the regex searched in the binary is empty (it would match every process)")
    try:
        re.compile(exe)
    except re.error as exc:
        raise ValueError(f"{exe!r} is not a valid regex: {exc}") from None
    return AgentProgram(name=name, exe=exe, match="", interpreted=None, headless_flags=(),
                        idle_companions=frozenset(), ending=Ending(Role.ONLY), commands=frozenset({name}))


def left_by(exe: str) -> AgentProgram | None:
    """The program whose leftover runs this binary (Codex's daemon copy), by ``/proc/<pid>/exe`` only."""
    if not exe:
        return None
    return next((p for p in PROGRAMS if p.leftover and p.leftover.exe and p.leftover.exe.search(exe)), None)


def named(command: str | None) -> AgentProgram | None:
    """The built-in program a manager's record names by its command (claude-squad's `program`), or None."""
    return TABLE.named((command,) if command else ())
