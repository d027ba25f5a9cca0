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
from helpers import installed_program

from healthchecks import processes
from healthchecks.observe import observe
from healthchecks.programs import AIDER, CLAUDE, CODEX, CURSOR_AGENT, GEMINI, OPENCODE, named, recognise
from healthchecks.settings import Settings
from healthchecks.sources.agent_deck.world import DeckWorld
from healthchecks.sources.claude_squad.world import READY, SquadWorld
from healthchecks.testing import real_programs
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
        _outputs_name_the_program(observe(world.settings), "session claudesquad_codexgone")
    finally:
        world.teardown()


def _outputs_name_the_program(seen, entity: str) -> None:
    """The findings JSON (its published schema), the metrics and the picture name a Codex agent's program."""
    import json
    from types import SimpleNamespace

    from jsonschema import Draft202012Validator

    from healthchecks.outputs import findings_json, picture, prometheus
    from healthchecks.summary import figures

    numbers = figures(seen.analysis, seen.results)
    doc = findings_json.document(seen.results, numbers, seen.analysis.now, {}, "faults")
    schema = json.loads((Path(findings_json.__file__).parent.parent / "schemas" / "findings.schema.json").read_text())
    findings = Draft202012Validator(schema["properties"]["findings"])  # the published schema's findings
    assert [e.message for e in findings.iter_errors(doc["findings"])] == []
    found = next(f for f in doc["findings"] if f["check"] == "zombie_sessions" and f["entity"]["id"] in entity)
    assert (found["label"], found["program"]) == (f"{entity} (Codex)", "Codex")
    metrics = prometheus.metrics_text(seen.results, numbers, 0.1, seen.analysis.now)
    labels = f'check="zombie_sessions",entity="{entity}",manager="claude-squad",program="Codex"'
    assert f"agent_healthchecks_failing_finding{{{labels}}} 1" in metrics
    labels = [n.label for n in picture.nodes(SimpleNamespace(observation=seen, results=seen.results))]
    assert f"{entity.removeprefix('session ')} (Codex)" in labels


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


# --- programs added through configuration, per-program headless runs, recognition extras (issue 28) -------------


def _copy(binary: str, path: Path) -> Path:
    """A real executable at ``path`` (a copy: /proc/<pid>/exe names the copy)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(shutil.which(binary) or f"/bin/{binary}", path)
    return path


def _configured(tmp_path: Path) -> Settings:
    from healthchecks.programs import configured

    return Settings(agent_programs=(configured(f"myagent = ^{tmp_path}/opt/myagent/bin/myagent$"),))


def test_a_configured_program_is_recognised_by_its_binary_only(tmp_path):
    """`NAME = EXE_REGEX` from the run's settings: its binary is the program, a binary of the same name elsewhere is
    not, and a run without it (the built-in table) knows neither."""
    settings = _configured(tmp_path)
    ours = subprocess.Popen([str(_copy("sleep", tmp_path / "opt/myagent/bin/myagent")), "60"])
    namesake = subprocess.Popen([str(_copy("sleep", tmp_path / "elsewhere/myagent")), "60"])
    try:
        procs = {p.pid: p for p in processes.scan(settings.is_claude, programs=settings.programs)}
        assert procs[ours.pid].program is not None and procs[ours.pid].program.name == "myagent"
        assert procs[namesake.pid].program is None  # named myagent, not its binary
        plain = {p.pid: p for p in processes.scan(Settings().is_claude)}
        assert plain[ours.pid].program is None
        assert settings.programs.named(("myagent --flag",)).name == "myagent" and named("myagent") is None
    finally:
        for p in (ours, namesake):
            p.kill()
            p.wait(10)


def test_a_configured_program_keeps_its_pane_alive_and_its_death_is_a_zombie_in_its_name(tmp_path):
    import dataclasses

    world = SquadWorld(tmp_path, grace=0.2)
    agent = _copy("sleep", tmp_path / "opt/myagent/bin/myagent")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    world.run_program(world.instance("mine works", READY, None), "myagent", [str(agent), "1000"], env)
    world.run_program(world.instance("mine gone", READY, None), "myagent", ["true"], env)
    world.start()
    try:
        time.sleep(0.5)
        settings = dataclasses.replace(world.settings, agent_programs=_configured(tmp_path).agent_programs)
        found = observe(settings).results["zombie_sessions"].findings
        assert [(f.entity, f.severity) for f in found] == [("session claudesquad_minegone", "fail")], found
        assert found[0].reason.startswith("no myagent process in its panes"), found[0].reason
        assert found[0].program == "myagent" and found[0].line().startswith("session claudesquad_minegone (myagent):")
    finally:
        world.teardown()


@pytest.mark.parametrize("args, where", [
    (("--agent-program", "broken=("), "--agent-program 'broken=('"),
    (("--agent-program", "no regex here"), "--agent-program 'no regex here'"),
    (("--agent-program", "codex=/x/codex$"), "already a program of the table"),
    (("-o", "healthchecks_agent_programs=good = /x/good$\nbad = ("), "healthchecks_agent_programs line 2 'bad = ('"),
])
def test_a_bad_configured_program_is_one_usage_error_naming_where(tmp_path, args, where):
    from helpers import run_health

    proc = run_health(tmp_path, *args)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "agent-healthchecks: invalid" in line]
    assert len(errors) == 1 and where in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_process_is_headless_by_its_own_programs_flags(npm):
    def proc(program, *argv):
        return processes.Proc(1, 0, 1, 1, 0, "x", argv, 1, "S", program=program)

    assert proc(CODEX, "node", f"{npm}/.bin/codex", "exec", "hi").headless  # Codex's `exec`, not Claude's -p
    assert proc(OPENCODE, "opencode", "run", "hi").headless and not proc(OPENCODE, "opencode", "-p", "x").headless
    assert proc(AIDER, "/venv/bin/python", "/venv/bin/aider", "--message", "x").headless
    assert not proc(AIDER, "/venv/bin/python", "-m", "aider").headless  # python's -m, not Aider's -m MESSAGE
    assert proc(AIDER, "/venv/bin/python", "-m", "aider", "-m", "hi").headless
    assert not proc(None, "sleep", "-p").headless  # no program's: never a headless agent


def test_opencodes_own_installer_and_aider_as_a_module_by_their_files(tmp_path):
    """opencode's installer puts its binary in ~/.opencode/bin; `python -m aider` is Aider when its package is
    installed under that interpreter's prefix, never by the module's name alone."""
    assert recognise(f"{tmp_path}/.opencode/bin/opencode", ("opencode",)) is OPENCODE
    venv = tmp_path / "venv"
    argv = (f"{venv}/bin/python", "-m", "aider", "--yes-always")
    assert recognise(PYTHON, argv) is None  # no aider installed there
    _file(venv / "lib/python3.11/site-packages/aider/__main__.py")
    assert recognise(PYTHON, argv) is AIDER
    assert recognise(PYTHON, ("python", "-m", "aider")) is None  # a bare python: its PATH is not ours to guess
    assert recognise(PYTHON, (f"{venv}/bin/python", "-m", "aiderx")) is None


@pytest.mark.real_programs
def test_aider_as_a_module_of_the_real_install():
    """The pinned aider-chat venv (real_programs.py, installed on first use; required in CI, where it skipped
    whenever HC_PROGRAMS_CACHE was not set): its python running `-m aider`."""
    aider = installed_program(real_programs.PROGRAMS["aider"])  # <venv>/bin/aider
    venv = aider.parent.parent
    exe = os.path.realpath(venv / "bin" / "python")
    assert recognise(exe, (str(venv / "bin" / "python"), "-m", "aider")) is AIDER
    assert recognise(exe, (str(venv / "bin" / "python"), "-m", "pygments")) is None


def test_aoe_and_gas_town_records_name_the_program_their_zombie_lacks(tmp_path):
    """agent-of-empires' `tool` (a custom `command` first, `detect_as` last) and Gas Town's GT_AGENT, read by the
    table as claude-squad's `program` and agent-deck's `tool` are."""
    from healthchecks.sources.aoe.world import AoeWorld
    from healthchecks.sources.gastown.world import TownWorld

    aoe = AoeWorld(tmp_path / "aoe", grace=0.2)
    aoe.instance("gemini gone", running="shell")["tool"] = "gemini"
    aoe.instance("custom gone", running="shell").update(tool="mine", command="/opt/wrap --x", detect_as="codex")
    aoe.instance("cursor gone", running="shell")["tool"] = "cursor"
    town = TownWorld(tmp_path / "gt", grace=0.2)
    town.member("hq-mayor", "mayor", running="shell", launch={"GT_AGENT": "opencode"})
    worlds = (aoe.start(), town.start())
    try:
        time.sleep(0.5)
        found = {f.entity: (f.reason.split(" (")[0], f.program) for w in worlds
                 for f in observe(w.settings).results["zombie_sessions"].failing}
        assert sorted(found.values()) == [("no Codex process in its panes", "Codex"),
                                          ("no Gemini CLI process in its panes", "Gemini CLI"),
                                          ("no cursor-agent process in its panes", "cursor-agent"),
                                          ("no opencode process in its panes", "opencode")], found
    finally:
        for w in worlds:
            w.teardown()
