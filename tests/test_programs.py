"""The programs table beyond Claude Code (healthchecks/programs.py): each program recognised by its binary and its
script's real path, never by a name alone; the scan gives each process its program; a pane running one is a working
agent to the zombie check. The real programs themselves: test_real_programs.py and test_programs_fleet.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from healthchecks import processes
from healthchecks.observe import observe
from healthchecks.programs import AIDER, CLAUDE, CODEX, CURSOR_AGENT, GEMINI, OPENCODE, named, recognise
from healthchecks.settings import Settings
from healthchecks.sources.agent_deck.world import DeckWorld
from healthchecks.sources.claude_squad.world import READY, SquadWorld
from healthchecks.testing.real_programs import cursor_agent_standin

NODE = "/usr/bin/node"
PYTHON = "/usr/lib/venv/bin/python3.11"
CODEX_NATIVE = "@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"


def _file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path


@pytest.fixture
def npm(tmp_path) -> Path:
    """node_modules as npm lays it out: `.bin/<name>` links to each package's script."""
    modules = tmp_path / "node_modules"
    for name, script in (("codex", "@openai/codex/bin/codex.js"), ("gemini", "@google/gemini-cli/bundle/gemini.js")):
        _file(modules / script)
        (modules / ".bin").mkdir(exist_ok=True)
        (modules / ".bin" / name).symlink_to(Path("..") / script)
    _file(modules / "stray" / "gemini")  # a file named like a program, in no program's package
    return modules


def test_each_program_by_its_binary_or_its_scripts_real_path(npm):
    bin_ = npm / ".bin"
    assert recognise(NODE, ("node", f"{bin_}/codex", "exec", "hi")) is CODEX  # the wrapper
    assert recognise(f"{npm}/{CODEX_NATIVE}", ("codex", "exec", "hi")) is CODEX  # its native child
    assert recognise(NODE, ("node", f"{bin_}/gemini", "-i", "hi")) is GEMINI  # the launcher
    assert recognise(NODE, ("node", "--max-old-space-size=4096", f"{bin_}/gemini")) is GEMINI  # its child
    assert recognise(f"{npm}/opencode-ai/bin/opencode.exe", ("opencode",)) is OPENCODE
    assert recognise(f"{npm}/opencode-linux-x64/bin/opencode", ("opencode", "run", "hi")) is OPENCODE
    assert recognise(PYTHON, ("/venv/bin/python3", "/venv/bin/aider", "--yes-always")) is AIDER


def test_a_name_alone_is_no_program(npm):
    assert recognise(NODE, ("node", f"{npm}/stray/gemini")) is None  # named gemini, not its package
    assert recognise(NODE, ("node", "node_modules/.bin/codex")) is None  # relative: the process's cwd, not ours
    assert recognise("/usr/bin/vim", ("vim", "codex")) is None
    assert recognise("/usr/local/bin/opencode", ("opencode",)) is None  # no package of opencode's
    assert recognise("/usr/bin/sleep", ("aider", "cursor-agent", "gemini")) is None
    assert recognise("", (f"{npm}/.bin/codex",)) is None  # binary unreadable: not asked


def test_headless_runs_by_flag_or_subcommand(npm):
    assert CODEX.headless(("node", f"{npm}/.bin/codex", "exec", "hi"))
    assert not CODEX.headless(("node", f"{npm}/.bin/codex", "hi exec"))
    assert OPENCODE.headless(("opencode", "run", "hi")) and not OPENCODE.headless(("opencode", "--prompt", "run"))
    assert GEMINI.headless(("node", "gemini", "-p", "hi")) and AIDER.headless(("python", "aider", "--message", "x"))
    assert CLAUDE.headless(("claude", "-p", "hi")) and not CLAUDE.headless(("claude", "run"))


def test_a_record_names_its_program_by_its_command():
    assert named("codex") is CODEX and named("/usr/local/bin/aider --model x") is AIDER and named("claude") is CLAUDE
    assert named("bash") is None and named("") is None and named(None) is None


def test_the_scan_gives_cursor_agents_launcher_and_bundled_node_their_program(tmp_path):
    """A stand-in of cursor-agent's documented shape (the real one cannot be installed here)."""
    link = cursor_agent_standin(tmp_path)
    launcher = subprocess.Popen([str(link), "-p", "hi"], stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            procs = {p.pid: p for p in processes.scan(Settings().is_claude)}
            child = next((p for p in procs.values() if p.ppid == launcher.pid), None)
            if (child is not None and child.exe.endswith("/node")) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert procs[launcher.pid].program is CURSOR_AGENT and not procs[launcher.pid].is_claude
        assert child is not None and child.program is CURSOR_AGENT and CURSOR_AGENT.headless(child.argv)
        assert procs[os.getpid()].program is None  # pytest's python: no program's
    finally:
        os.killpg(launcher.pid, 9)
        launcher.wait(timeout=10)


def _codex_standin(root: Path) -> Path:
    """A binary where Codex's native child lives (a copy of sleep): what the scan recognises Codex by."""
    path = root / "node_modules" / CODEX_NATIVE
    path.parent.mkdir(parents=True)
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", path)
    return path


def test_a_pane_running_another_agent_program_is_a_working_agent_and_a_dead_one_a_zombie_in_its_name(tmp_path):
    world = SquadWorld(tmp_path, grace=0.2)
    codex = _codex_standin(tmp_path)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    world.run_program(world.instance("codex works", READY, None), "codex", [str(codex), "1000"], env)
    world.run_program(world.instance("codex gone", READY, None), "codex", ["true"], env)  # a shell stays
    world.run_program(world.instance("codex other", READY, None), "codex", ["sleep", "1000"], env)
    world.start()
    try:
        time.sleep(0.5)
        results = observe(world.settings).results["zombie_sessions"]
        reasons = {f.entity: (f.severity, f.reason) for f in results.findings}
        assert "session claudesquad_codexworks" not in reasons
        severity, reason = reasons["session claudesquad_codexgone"]
        assert severity == "fail" and reason.startswith("no Codex process in its panes (only idle ones"), reason
        severity, reason = reasons["session claudesquad_codexother"]
        assert severity == "info" and "not recognised as Codex; left alone" in reason, reason
    finally:
        world.teardown()


def test_agent_decks_recorded_tool_names_the_program_its_zombie_lacks(tmp_path):
    """agent-deck records the program it launched in `tool`: a row whose pane only idles is a zombie in its name."""
    world = DeckWorld(tmp_path, grace=0.2)
    world.row("gemini gone", running="shell")["tool"] = "gemini"
    world.row("claude gone", running="shell")
    world.start()
    try:
        time.sleep(0.5)
        reasons = sorted(f.reason for f in observe(world.settings).results["zombie_sessions"].failing)
        assert [r.split(" (")[0] for r in reasons] == ["no Claude process in its panes",
                                                     "no Gemini CLI process in its panes"], reasons
    finally:
        world.teardown()
