"""The default Claude matcher: catches every way Claude Code runs, and nothing that merely mentions it."""

import os
import pickle
from dataclasses import fields, replace

import pytest

from healthchecks import processes
from healthchecks.idle import Idle, idle
from healthchecks.options import OPTIONS
from healthchecks.processes import Proc
from healthchecks.programs import CLAUDE, PROGRAMS, Ending, Role
from healthchecks.settings import Settings
from healthchecks.sources.orchestrator.dialect import ORCHESTRATOR_ID_TOKEN, ORCHESTRATOR_JSON

DEFAULT = Settings()


@pytest.mark.parametrize(
    "name, argv",
    [
        ("claude", ("claude", "--print", "hello")),
        ("claude", ()),  # argv unreadable (another user's process): the name alone decides
        ("node", ("/usr/bin/claude", "--print", "--output-format", "stream-json")),
        ("node", ("node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js", "--print")),
        ("node", ("/usr/local/bin/node", "--no-warnings", "/home/u/.npm/@anthropic-ai/claude-code/cli.js")),
        ("npm exec", ("npx", "-y", "@anthropic-ai/claude-code", "--print", "x")),
        ("node", ("/usr/bin/npx", "-y", "@anthropic-ai/claude-code@1.0.3")),
        # a native install, as the current release launches it (realpath of `which claude`); its name is the version
        ("2.0.14", ("/home/u/.local/share/claude/versions/2.0.14", "--print", "--output-format", "stream-json")),
        ("2.1.3", ("/home/u/.local/share/claude/versions/2.1.3",)),
        ("claude", ("claude",)),  # node's process.title = "claude" over the whole argument area
    ],
)
def test_default_matcher_catches_claude(name, argv):
    assert DEFAULT.is_claude(name, argv)


@pytest.mark.parametrize(
    "name, argv",
    [
        ("vim", ("vim", "claude_notes.md")),
        ("tee", ("tee", "/home/u/proj/.agent-workspace/TASK-1/logs/claude_stream.jsonl")),
        ("tee", ("tee", "/home/u/claude/log.jsonl")),
        ("bash", ("/bin/bash", "-c", "cd /x && claude --print hi | tee log")),  # the pane shell, not Claude
        ("claude-abc12345", ("/bin/bash", "/tmp/w/bin/claude-abc12345", "--print")),  # a test world's stand-in
        ("grep", ("grep", "claude")),
        ("2.0.14", ("/opt/app/versions/2.0.14", "--serve")),  # a version-named process of something else
        ("less", ("less", "/home/u/.local/share/claude/versions/2.0.14")),
        ("python3", ("python3", "-m", "pytest", "--claude-match", "claude")),
    ],
)
def test_default_matcher_ignores_mentions(name, argv):
    assert not DEFAULT.is_claude(name, argv)


NPM = "/home/u/proj/node_modules/@anthropic-ai/claude-code/bin/claude.exe"


@pytest.mark.parametrize(
    "name, argv, exe",
    [
        ("claude.exe", (NPM, "--print"), NPM),  # npm local, exec'd by its real path (the orchestrator's realpath)
        ("claude", ("claude", "--print"), NPM),  # npm global: the bin/claude symlink
        ("2.1.332", ("/root/.local/share/claude/versions/2.1.332",), "/root/.local/share/claude/versions/2.1.332"),
        ("cc", ("cc",), "/usr/lib/node_modules/@anthropic-ai/claude-code-linux-x64/claude"),  # any name: the binary
        ("2.1.332", ("x",), "/root/.local/share/claude/versions/2.1.332 (deleted)".removesuffix(" (deleted)")),
        ("MainThread", ("node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js", "-p"), "/usr/bin/node"),
        ("npm exec @anthr", ("node", "/usr/bin/npx", "-y", "@anthropic-ai/claude-code@2.1.332"), "/usr/bin/node"),
    ],
)
def test_installed_claude_is_recognised_by_its_binary(name, argv, exe):
    assert DEFAULT.is_claude(name, argv, exe)
    assert not Settings(claude_match="^nothing$", claude_exe="").is_claude(name, argv, exe)


@pytest.mark.parametrize(
    "name, argv, exe",
    [
        ("vim", ("vim", "claude_notes.md"), "/usr/bin/vim.basic"),
        ("tee", ("tee", "/home/u/claude/versions/2.1.332"), "/usr/bin/tee"),
        ("claude-notes", ("/bin/bash", "claude-notes"), "/usr/bin/bash"),  # a shell script named claude-notes
        ("node", ("node", "server.js", "@anthropic-ai/claude-code"), "/usr/bin/node"),
        ("npm", ("node", "/usr/bin/npm", "install", "@anthropic-ai/claude-code"), "/usr/bin/node"),
        ("claude\nx", ("claude",), NPM),  # a name with a newline is never Claude
    ],
)
def test_binaries_that_only_mention_claude_are_not_claude(name, argv, exe):
    assert not DEFAULT.is_claude(name, argv, exe)


def test_world_matcher_matches_only_its_own_standin():
    world = Settings(claude_match="^claude-abc12345$")
    assert world.is_claude("claude-abc12345", ("/bin/bash", "/tmp/w/bin/claude-abc12345"))
    assert not world.is_claude("claude", ("claude", "--print"))
    assert not world.is_claude("claude-abc123456", ())


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError):
        Settings(claude_match="(")
    with pytest.raises(ValueError):
        Settings(grace=-1)


def test_claude_first_in_the_table_and_the_options_default_to_its_patterns():
    """What a Claude process is lives in the programs table; --claude-match and --claude-exe default to its entry."""
    assert PROGRAMS[0] == CLAUDE and len({p.name for p in PROGRAMS}) == len(PROGRAMS)
    assert (DEFAULT.claude_match, DEFAULT.claude_exe) == (CLAUDE.match, CLAUDE.exe)
    defaults = {option.name: option.default for option in OPTIONS}
    assert (defaults["--claude-match"], defaults["--claude-exe"]) == (CLAUDE.match, CLAUDE.exe)
    assert CLAUDE.ending == Ending(Role.ONLY, group=False)  # an orphan's own tree, never a person's group
    assert CLAUDE.sessions is not None and CLAUDE.sessions.per_pid.format(pid=42) == "sessions/42.json"


def _proc(name: str, *argv: str, exe: str = "") -> Proc:
    return Proc(1, 0, 1, 1, 0, name, argv, 1, "S", exe=exe)


@pytest.mark.parametrize("argv, headless", [
    (("claude", "--print", "hi"), True),
    (("claude", "-p", "hi"), True),
    (("claude", "--resume", "x"), False),
    (("claude", "--print-something"), False),  # a flag only when it is the whole argument
])
def test_headless_is_the_programs_flags(argv, headless):
    claude = replace(_proc("claude", *argv), program=CLAUDE)  # as the scan gives a Claude process
    assert claude.headless is headless is CLAUDE.headless(argv)


def test_idle_companions_come_from_the_programs_table():
    """A pane's `tee` and `cat` idle beside Claude; renamed, or a program's own process, they are not idle."""
    for name in CLAUDE.idle_companions:
        assert idle(_proc(name, name, exe=f"/usr/bin/{name}")) is Idle.PIPE
    assert idle(_proc("tee", "tee", exe="/usr/bin/python3")) is None
    assert idle(_proc("claude", "claude", "--print")) is None


@pytest.mark.parametrize("line, ids", [
    ("claude -p 'Your agent id is fixer-120102-a1b2c3.'", {"fixer-120102-a1b2c3"}),
    ("cd /w/inv.x:y-120102999-abcdef && claude", {"inv.x:y-120102999-abcdef"}),
    ("cat agent_prompt_fixer-120102-a1b2c3", {"agent_prompt_fixer-120102-a1b2c3"}),
    ("x-120102-a1b2c3d x-12010-a1b2c3 x-120102-A1B2C3 --x-120102-a1b2c3", set()),
])
def test_agent_id_tokens_have_the_dialects_id_shape(line, ids):
    """The agent ids named in a command line are tokens of the orchestrator dialect's id shape, from one place."""
    found = {m.group(1) for m in ORCHESTRATOR_ID_TOKEN.finditer(line)}
    assert found == ids
    assert all(ORCHESTRATOR_JSON.id_shape.fullmatch(token) for token in found)


def test_the_scan_makes_each_proc_as_its_constructor_would():
    """The scan sets a Proc's fields itself (processes._scanned): every field, the same object Proc(...) makes."""
    me = next(p for p in processes.scan(lambda *_: False) if p.pid == os.getpid())
    made = Proc(me.pid, me.ppid, me.pgid, me.sid, me.tty, me.name, me.argv, me.start_ticks, me.state, me.is_claude,
                me.exe, program=me.program)
    assert me == made and hash(me) == hash(made) and repr(me) == repr(made) and pickle.loads(pickle.dumps(me)) == made
    assert set(vars(me)) == {f.name for f in fields(Proc)}  # a field of its own default_factory would be missing


def test_the_wanted_variables_in_their_order_each_time_set():
    raw = b"A=1\0GT_RIG=r\0B==x\0GT_RIG=s\0GT_ROOT=/t=u\0XGT_RIG=no\0GT_AGENT"  # the last one cut: no `=`
    names = frozenset({"GT_RIG", "GT_ROOT", "GT_AGENT", "B", "A=B", ""})
    assert processes.variables(raw, names) == (("GT_RIG", "r"), ("B", "=x"), ("GT_RIG", "s"), ("GT_ROOT", "/t=u"))
    assert processes.variables(raw + b"=x", names)[-1] == ("GT_AGENT", "x")
