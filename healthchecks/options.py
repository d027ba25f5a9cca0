"""Every command-line option in one table: name, ini name, environment variable, type, default, help.

Each value option is also an ini option (`[tool.pytest.ini_options]`). Precedence: command line, then
environment, then ini, then default; a value that does not parse is a usage error naming the option.

Every pytest run in the environment loads this table (the plugin's pytest_addoption): it imports none of the tables
its help and defaults come from (the sources', the programs', the settings'): it holds their texts as literals, which
tests/test_imports.py checks against the tables. What a health-check run needs is imported when its values are read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import pytest

from .run import PACKAGE_DIR

if TYPE_CHECKING:  # a health-check run's modules: imported where its values are read
    from .programs import AgentProgram
    from .settings import Settings


def finite(value: str) -> float:
    """A number of seconds: `inf` and `nan` parse as floats, and then break every comparison and timeout."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def positive(value: str) -> float:
    number = finite(value)
    if number <= 0:
        raise ValueError("must be > 0")
    return number


def not_negative(value: str) -> float:
    number = finite(value)
    if number < 0:
        raise ValueError("must be >= 0")
    return number


def _bad(expected: str) -> NoReturn:
    raise ValueError(f"must be {expected}")


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be >= 1")
    return number


def not_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be >= 0")
    return number


@dataclass(frozen=True)
class Option:
    name: str  # --name
    help: str
    kind: Literal["value", "flag", "lines"] = "value"
    default: str = ""
    env: str | None = None
    parse: Callable[[str], Any] = str
    ini: str | None = None  # when the ini name is not derived from the option's name
    repeatable: bool = False  # a value option given more than once: value() is the first, more() the others

    @property
    def dest(self) -> str:
        """Also its ini name."""
        return self.ini or "healthchecks_" + self.name.removeprefix("--").replace("-", "_")


# What the help texts and defaults below take from the tables, as literals: with the tables (the sources' with every
# manager's reader, the programs', the settings', the sightings') importing the plugin took every pytest run in the
# environment 45 ms of CPU, without them 7 ms. tests/test_imports.py fails, showing the table's value, when one drifts.
SESSION_PREFIXES = ("agent_ (ClaudeOrchestratorMCP), claudesquad_ (claude-squad), agentdeck_ (agent-deck), "
                    "aoe_ (agent-of-empires), hq- (Gas Town)")  # every dialect's prefix (sources.DIALECTS), each once
SOURCES_ABOUT = (  # each source's name and `about`, in the table's order (sources.SOURCES)
    "sqlite (registry/state.sqlite3, the orchestrator's current release), json (registry/*.json, the orchestrator's "
    "releases up to 2026-01), claude-squad (claude-squad's state.json (--claude-squad-dir); never written), "
    "agent-deck (agent-deck's state.db (--agent-deck-db, --agent-deck-profile); never written), agent-of-empires "
    "(agent-of-empires' profiles/<profile>/sessions.json (--aoe-dir, --aoe-profile); never written), agent-teams "
    "(teams/*/config.json in Claude's config dir (--claude-config-dir), Claude Code Agent Teams), claude-background "
    "(jobs/*/state.json, the daemon's roster and sessions/*.json in Claude's config dir (--claude-config-dir): Claude "
    "Code's own background agents (`claude --bg`)), gastown (a Gas Town town (--gt-town): its tmux server's sessions "
    "and their GT_* env, .runtime/pids; never written)"
)
DEMO_SOURCES = ("sqlite", "json", "claude-squad", "agent-deck", "agent-of-empires", "agent-teams", "claude-background",
                "gastown")  # sources.DEMOS
STORE_OPTIONS = (  # sources.STORE_OPTIONS: (flag, help, default) of each placed store's options
    ("--claude-squad-dir", "claude-squad's directory, holding state.json and worktrees/ (default ~/.claude-squad)",
     "~/.claude-squad"),
    ("--agent-deck-db", "agent-deck's state.db (default: the profile's, under ${XDG_DATA_HOME:-~/.local/share}/"
     "agent-deck/profiles/<profile>/, else the legacy ~/.agent-deck/profiles/<profile>/)", ""),
    ("--agent-deck-profile", "agent-deck profile whose state.db is read (default default)", "default"),
    ("--aoe-dir", "agent-of-empires' app directory (default as aoe finds it: ${XDG_CONFIG_HOME:-~/.config}/"
     "agent-of-empires on Linux, ~/.agent-of-empires elsewhere)", ""),
    ("--aoe-profile", "aoe profile whose sessions.json is read (default as aoe picks it: config.toml's "
     "default_profile, else the first profile folder, else main)", ""),
    ("--claude-config-dir", "Claude Code's config directory: Agent Teams' teams/<team>/config.json, its background "
     "agents' jobs/, daemon/roster.json and daemon.lock, and sessions/<pid>.json (default $CLAUDE_CONFIG_DIR, else "
     "~/.claude)", ""),
    ("--gt-town", "Gas Town's town directory (default $GT_TOWN_ROOT, else ~/gt)", ""),
    ("--gt-socket", "the town's tmux socket name (default $GT_TMUX_SOCKET, else derived from the town as Gas Town "
     "derives it: <basename>-<6 hex of sha256(realpath)>)", ""),
)
CLAUDE_MATCH = (  # programs.CLAUDE.match
    r"^(\S*/)?claude(\s|$)"
    r"|^\S*/claude/versions/\d[^/\s]*(\s|$)"
    r"|^(\S*/)?node\s+(-\S+\s+)*\S*@anthropic-ai/claude-code/"
    r"|^(\S*/)?npx\s+(-\S+\s+)*@anthropic-ai/claude-code(@\S*)?(\s|$)"
)
CLAUDE_EXE = r"/@anthropic-ai/claude-code[^/]*/[^\n]*$|/claude/versions/\d+\.\d+\.\d+[^/\n]*$"  # programs.CLAUDE.exe
STATE_ENV = "AGENT_HEALTHCHECKS_STATE"  # sightings.STATE_ENV


def _source(value: str) -> str:
    from .sources import CHOICES  # a health-check run's table: see the literals above

    return value if value in CHOICES else _bad("one of " + ", ".join(CHOICES))


def _demo_source(value: str) -> str:
    from .sources import DEMOS  # a health-check run's table: see the literals above

    return value if value in DEMOS else _bad("one of " + ", ".join(DEMOS))


OPTIONS = (
    Option(
        "--workspace",
        "orchestrator workspace; registry at DIR/registry/GLOBAL_REGISTRY.json, task registries at "
        "DIR/TASK-*/AGENT_REGISTRY.json (env AGENT_WORKSPACE; default ./.agent-workspace); repeatable with "
        "--source all (each another workspace judged)",
        default=".agent-workspace",
        env="AGENT_WORKSPACE",
        repeatable=True,
    ),
    Option(
        "--tmux-socket",
        "tmux server to check, repeatable: a value with / is a socket path (tmux -S), else a socket name "
        "(tmux -L); default: the default server",
        kind="lines",
        ini="healthchecks_tmux_sockets",
    ),
    Option(
        "--waivers",
        "TOML file of [[waiver]] tables (check, entity, reason, expires), read with the rootdir's pyproject.toml; "
        "never a file inside the workspace, which the agents being judged can write",
    ),
    Option("--session-prefix", f"name prefix of agent tmux sessions (default: the manager's: {SESSION_PREFIXES})"),
    Option(
        "--claude-match",
        "regex searched in a process's name and command line to decide it is Claude (default catches claude, "
        "node …/@anthropic-ai/claude-code/…, npx @anthropic-ai/claude-code and a native install)",
        default=CLAUDE_MATCH,
    ),
    Option(
        "--claude-exe",
        "regex searched in a process's binary (/proc/<pid>/exe), tried before --claude-match: an installed Claude "
        "Code whatever its name (default: a binary of an @anthropic-ai/claude-code* npm package, or the native "
        "installer's …/claude/versions/<X.Y.Z>; node or npx running the package); empty: --claude-match only",
        default=CLAUDE_EXE,
    ),
    Option(
        "--agent-program",
        "an agent program beside the built-in ones, repeatable: NAME=EXE_REGEX, the regex searched in a process's "
        "binary (/proc/<pid>/exe) only, never in its name; a pane running it is a working agent, and a manager's "
        "record naming NAME expects it (ini healthchecks_agent_programs: one NAME = EXE_REGEX a line)",
        kind="lines",
        ini="healthchecks_agent_programs",
    ),
    Option(
        "--grace",
        "seconds: an agent deployed or a session created less than this ago is starting, not faulty (default 60)",
        default="60.0",  # settings.DEFAULT_GRACE
        parse=not_negative,
    ),
    Option(
        "--tmux-timeout",
        "seconds to wait for a tmux server before calling it unreachable (default 5)",
        default="5.0",  # settings.DEFAULT_TMUX_TIMEOUT
        parse=positive,
    ),
    Option(
        "--registry-tz",
        "IANA time zone the orchestrator writes its naive timestamps in (default: this machine's local zone, "
        "which is what the orchestrator uses when it runs here)",
    ),
    Option(
        "--source",
        f"where the agents' records are: {SOURCES_ABOUT}; all: every store present, each judged as alone, from one "
        "scan of the machine; or auto: all when more than one store is present, else the first of these whose store "
        "holds agents (default auto)",
        default="auto",
        parse=_source,
    ),
    *(Option(flag, text, default=default) for flag, text, default in STORE_OPTIONS),
    Option(
        "--demo-source",
        "with --demo: which era's world to build: " + ", ".join(DEMO_SOURCES) + " (default json)",
        default="json",
        parse=_demo_source,
    ),
    Option(
        "--lock-timeout",
        "seconds to wait for the orchestrator's locks (a registry file's flock, a busy state database) and, under "
        "--fix, for another --fix of the same workspace, before giving up (default 10)",
        default="10",
        parse=positive,
    ),
    Option(
        "--report-dir",
        "where the HTML report goes: a timestamped file plus latest.html (default reports/: a checkout's own when "
        "its checks run, else the current directory's)",
        default="reports",
    ),
    Option(
        "--state-dir",
        "this user's private state: the lineage the runs remember (processes and sessions seen as agents'), "
        "authenticated with a key kept there; a directory only this user can write (env "
        f"{STATE_ENV}; default $XDG_STATE_HOME/agent-healthchecks, else ~/.local/state/agent-healthchecks)",
        env=STATE_ENV,
    ),
    Option(
        "--keep-reports",
        "how many timestamped HTML reports to keep in the report directory; older ones are deleted "
        "(0 keeps all; default 100)",
        default="100",
        parse=not_negative_int,
    ),
    Option(
        "--demo",
        "build the built-in demo world (a private tmux server, Claude stand-ins, registries reproducing the seed "
        "incident), check it, and tear it down afterwards",
        kind="flag",
    ),
    Option(
        "--fix",
        "after the checks, build one remediation plan, show it, ask once for a typed yes, apply it with every "
        "guard, then check again; exit 0 only if every action succeeded and every check then passes",
        kind="flag",
    ),
    Option("--yes", "with --fix: apply the plan without asking", kind="flag"),
    Option("--dry-run", "with --fix: print the remediation plan and change nothing", kind="flag"),
    Option(
        "--prune",
        "with --fix: remove entries without a live session from the registries (archived first to "
        "<workspace>/registry/archive/*.jsonl) instead of marking ghosts terminated",
        kind="flag",
    ),
    Option(
        "--keep-backups",
        "with --fix: backups kept per written record file in <workspace>/registry/backups/ (the newest; only "
        "backups this tool made are removed, and never a file's last one; default 10)",
        default="10",
        parse=positive_int,
    ),
    Option(
        "--backup-days",
        "with --fix: days a backup is kept at most, except each file's newest one (default 30)",
        default="30",
        parse=positive,
    ),
    Option(
        "--kill-attached",
        "with --fix: also kill zombie or leaked sessions a person is attached to (their terminal is thrown out)",
        kind="flag",
    ),
    Option(
        "--allow-server-down",
        "with --fix: change agents' entries even though a checked tmux server is not running (by default that "
        "looks like a wrong --tmux-socket or user, and only the processes are fixed)",
        kind="flag",
    ),
)


def add_options(parser: pytest.Parser, extra: tuple[Option, ...] = ()) -> None:
    group = parser.getgroup("agent-healthchecks", "agent fleet health checks (agent-healthchecks)")
    for opt in (*OPTIONS, *extra):
        if opt.kind == "flag":
            group.addoption(opt.name, dest=opt.dest, action="store_true", help=opt.help)
            continue
        metavar = opt.name.removeprefix("--").split("-")[-1].upper()
        action = "append" if opt.kind == "lines" or opt.repeatable else "store"
        group.addoption(opt.name, dest=opt.dest, action=action, default=None, metavar=metavar, help=opt.help)
        ini: Literal["linelist", "string"] = "linelist" if opt.kind == "lines" else "string"
        parser.addini(opt.dest, opt.help, type=ini)


def value(config: pytest.Config, name: str, extra: tuple[Option, ...] = ()) -> Any:
    """An option's parsed value: command line, then environment, then ini file, then default."""
    opt = next(o for o in (*OPTIONS, *extra) if o.name == name)
    cli = config.getoption(opt.dest)
    if opt.kind == "flag":
        return bool(cli)
    if opt.kind == "lines":
        return tuple(cli or config.getini(opt.dest) or ())
    if opt.repeatable and cli is not None:
        cli = cli[0]
    if cli is not None:
        raw = cli
    elif opt.env and os.environ.get(opt.env):
        raw = os.environ[opt.env]
    else:
        raw = config.getini(opt.dest) or opt.default
    try:
        return opt.parse(raw)
    except ValueError as exc:
        raise pytest.UsageError(f"agent-healthchecks: invalid {opt.name} {raw!r}: {exc}") from None


def more(config: pytest.Config, name: str) -> tuple[str, ...]:
    """A repeatable option's values after its first, as given on the command line."""
    return tuple((config.getoption(next(o for o in OPTIONS if o.name == name).dest) or [])[1:])


def path(config: pytest.Config, text: str, base: Path) -> Path:
    found = Path(text).expanduser()
    return found if found.is_absolute() else base / found


def settings_from(config: pytest.Config) -> Settings:
    from . import sightings, sources, waivers  # a health-check run's: the table above is loaded by every pytest run
    from .checks import CHECKS
    from .settings import Settings

    workspace = path(config, value(config, "--workspace"), config.invocation_params.dir)
    places = {flag: value(config, flag) for flag, _, _ in sources.STORE_OPTIONS}  # each reader's locate() reads them
    try:
        named = value(config, "--waivers")
        found = waivers.load(config.rootpath / "pyproject.toml", path(config, named, config.invocation_params.dir)
                             if named else None, workspace, [c.id for c in CHECKS.values()])
    except waivers.WaiverError as exc:
        raise pytest.UsageError(f"agent-healthchecks: {exc}") from None
    try:
        others = tuple(path(config, w, config.invocation_params.dir) for w in more(config, "--workspace"))
        source, workspace = sources.resolve(workspace, value(config, "--source"), places, others)
        if others and source != sources.ALL:
            raise pytest.UsageError(f"agent-healthchecks: --workspace given {len(others) + 1} times judges them all "
                                    "only with --source all (or auto, when more than one store is present)")
        return Settings(
            workspace=workspace,
            waivers=found,
            tmux_sockets=value(config, "--tmux-socket"),
            session_prefix=value(config, "--session-prefix"),
            claude_match=value(config, "--claude-match"),
            claude_exe=value(config, "--claude-exe"),
            agent_programs=agent_programs(config),
            grace=value(config, "--grace"),
            tmux_timeout=value(config, "--tmux-timeout"),
            registry_tz=value(config, "--registry-tz"),
            lock_timeout=value(config, "--lock-timeout"),
            source=source,
            place_options=sources.given(source, places),
            more_workspaces=others,
            sightings=state_dir(config) / sightings.FILE,
        )
    except ValueError as exc:
        raise pytest.UsageError(f"agent-healthchecks: invalid option: {exc}") from None


def agent_programs(config: pytest.Config) -> tuple[AgentProgram, ...]:
    """The configured programs, each line's problem a usage error naming where it is: the option, or the ini line."""
    from .programs import configured  # a health-check run's, as in settings_from

    opt = next(o for o in OPTIONS if o.name == "--agent-program")
    given = config.getoption(opt.dest)
    lines = [(opt.name, line) for line in given] if given else [
        (f"{opt.dest} line {i}", line) for i, line in enumerate(config.getini(opt.dest) or (), 1)]
    found = []
    for where, line in lines:
        try:
            found.append(configured(line))
        except ValueError as exc:
            raise pytest.UsageError(f"agent-healthchecks: invalid {where} {line!r:.200}: {exc}") from None
    return tuple(found)


def state_dir(config: pytest.Config) -> Path:
    from . import sightings  # a health-check run's, as in settings_from

    named = value(config, "--state-dir")
    return path(config, named, config.invocation_params.dir) if named else sightings.default_dir()


def report_dir(config: pytest.Config) -> Path:
    """A relative --report-dir is the checkout's when this checkout's checks run, else the cwd's: an installed run's
    rootdir can be any common ancestor of its arguments (`/` for a workspace under another top-level folder)."""
    checkout = config.rootpath.resolve() == PACKAGE_DIR.parent
    return path(config, value(config, "--report-dir"), config.rootpath if checkout else config.invocation_params.dir)
