"""`--fix`: the plan, its confirmation, its guards and its verification, on real worlds."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import failing, first_line, judge, plan_now, registry_bytes, run_health, section, settings_args
from junitparser import JUnitXml

from fixers.apply import Options, apply
from fixers.plan import Action, ActionKind, Phase
from fixers.run import fix, still_wrong
from healthchecks.analysis import Analysis
from healthchecks.dialect import ScopeKind
from healthchecks.observe import judged, observe
from healthchecks.processes import start_ticks
from healthchecks.records import RegistryError
from healthchecks.sources.claude_squad.world import READY, SquadWorld
from healthchecks.sources.orchestrator.json_writer import rewrite
from healthchecks.targets import AgentTarget, ProcessTarget
from healthchecks.testing import demo
from healthchecks.testing.world import World, outside_tmux


@pytest.fixture
def demo_world(tmp_path):
    world = demo.build(tmp_path / "demo")
    yield world
    world.teardown()


def fix_now(world: World, analysis: Analysis | None = None, lock_timeout: float | None = None, **options):
    """Run the fixer in-process with confirmation given, as `--fix --yes` does."""
    settings = world.settings
    if lock_timeout is not None:
        settings = dataclasses.replace(settings, lock_timeout=lock_timeout)
    observation = judged(analysis.snapshot) if analysis else observe(settings)
    return fix(
        observation,
        settings,
        Options(**options),
        dry_run=False,
        confirm=lambda plan: (True, "test"),
        show=lambda lines: None,
    )


def live_state(world: World) -> tuple[dict, set, set]:
    return registry_bytes(world.workspace), {p.pid for p in world.standins()}, world.live_sessions()


def entries(world: World) -> dict:
    return json.loads(world.global_path.read_text())["agents"]


def test_demo_fix_yes_leaves_every_check_passing(demo_world, tmp_path):
    foreign = demo_world.popen[0].pid
    orphan_agent = next(a.id for a in demo_world.agents if a.running == "orphan")
    orphan = next(p.pid for p in demo_world.standins() if orphan_agent in " ".join(p.cmdline()))
    healthy = {a.session for a in demo_world.agents if a.running == "claude" and a.status != "completed"}
    proc = run_health(tmp_path, *settings_args(demo_world.settings), "--fix", "--yes")
    assert proc.returncode == 0, proc.stdout
    assert failing(judge(demo_world.settings)) == set()
    active = {
        aid
        for aid, e in entries(demo_world).items()
        if e.get("status") in (None, "running", "working", "blocked", "reviewing")
    }
    assert len(active) == 8 and {f"agent_{a}" for a in active} == healthy
    assert demo_world.live_sessions() - {name for name, _, _ in demo_world.extra_sessions} == healthy
    assert not psutil.pid_exists(orphan) and psutil.pid_exists(foreign)
    table = section(proc.stdout, "before / after")
    assert any(line.startswith("Ghost agents") and line.split()[-1] == "0" for line in table)
    assert section(proc.stdout, "still wrong after the fix") == ["nothing: every check passes"]
    html = (tmp_path / "reports" / "latest.html").read_text()
    assert "Remediation plan" in html and "before / after" in html


def test_prune_keeps_live_entries_and_archives_the_rest_exactly(demo_world):
    original = entries(demo_world)
    tasks_before = {t: json.loads(demo_world.task_path(t).read_text())["agents"] for t in demo_world.tasks}
    report = fix_now(demo_world, prune=True)
    assert report.ok, report.remaining
    live = demo_world.live_sessions()
    kept = entries(demo_world)
    assert set(kept) == {aid for aid, e in original.items() if e["tmux_session"] in live}
    assert all(json.dumps(kept[aid]) == json.dumps(original[aid]) for aid in kept)
    (archive,) = (demo_world.workspace / "registry" / "archive").glob("pruned-*.jsonl")
    archived = [json.loads(line) for line in archive.read_text().splitlines()]
    from_global = {r["agent_id"]: r["entry"] for r in archived if r["registry"] == "registry/GLOBAL_REGISTRY.json"}
    assert set(from_global) == set(original) - set(kept)
    assert all(json.dumps(e) == json.dumps(original[aid]) for aid, e in from_global.items())  # byte for byte
    for task, before in tasks_before.items():
        after = {e["id"] for e in json.loads(demo_world.task_path(task).read_text())["agents"]}
        pruned = {r["entry"]["id"] for r in archived if r["registry"].startswith(task)}
        assert after | pruned == {e["id"] for e in before} and not after & pruned
    data = json.loads(demo_world.global_path.read_text())
    assert data["total_agents_spawned"] == len(kept) == 8


def test_dry_run_changes_nothing_and_prints_the_plan_yes_applies(demo_world, tmp_path):
    before = live_state(demo_world)
    dry = run_health(tmp_path, *settings_args(demo_world.settings), "--fix", "--dry-run")
    assert dry.returncode == 1
    assert live_state(demo_world) == before
    plan = section(dry.stdout, "remediation plan")
    assert len(plan) >= 10 and "dry run: nothing was changed" in dry.stdout
    applied = run_health(tmp_path, *settings_args(demo_world.settings), "--fix", "--yes")
    assert section(applied.stdout, "remediation plan") == plan
    assert applied.returncode == 0


def test_no_terminal_and_no_yes_refuses(demo_world, tmp_path):
    before = live_state(demo_world)
    proc = run_health(tmp_path, *settings_args(demo_world.settings), "--fix")
    assert proc.returncode == 1
    assert "no terminal to ask for confirmation on, and no --yes: nothing was changed" in proc.stdout
    assert live_state(demo_world) == before


def _interactive(world: World, tmp_path, answer: str) -> str:
    """Run `pytest --fix` in a real terminal (a tmux pane on a private server) and type the answer."""
    socket = f"hc-operator-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    out = tmp_path / "operator.out"
    args = " ".join(f"'{a}'" for a in settings_args(world.settings))
    cmd = (
        f"cd {os.getcwd()} && env -u PYTHONDONTWRITEBYTECODE {sys.executable} -m pytest healthchecks "
        f"-p no:hypothesispytest --report-dir {tmp_path}/reports {args} --fix > {out} 2>&1; "
        f"echo exit=$? >> {out}"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    subprocess.run(
        ["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "50", cmd],
        check=True,
        env=env,
        timeout=30,
    )
    try:
        deadline = time.monotonic() + 60
        screen = ""
        while "Type yes to proceed" not in screen:
            assert time.monotonic() < deadline, screen
            time.sleep(0.2)
            screen = subprocess.run(["tmux", "-L", socket, "capture-pane", "-p"], capture_output=True, text=True,
                                    timeout=30).stdout
        assert "remediation plan" in screen
        subprocess.run(["tmux", "-L", socket, "send-keys", answer, "Enter"], check=True, timeout=30)
        while "exit=" not in (out.read_text() if out.exists() else ""):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        return out.read_text()
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30)
        (Path(f"/tmp/tmux-{os.getuid()}") / socket).unlink(missing_ok=True)


def test_typed_yes_on_the_terminal_applies(world, tmp_path):
    world.agent(None, "claude")
    ghost = world.agent("working", None)
    world.start()
    output = _interactive(world, tmp_path, "yes")
    assert "exit=0" in output and "confirmed on the terminal" in output
    assert entries(world)[ghost]["status"] == "terminated"


def test_any_other_answer_changes_nothing(world, tmp_path):
    world.agent(None, "claude")
    world.agent("working", None)
    world.start()
    before = live_state(world)
    output = _interactive(world, tmp_path, "y")
    assert "exit=1" in output and "not confirmed (answered 'y'): nothing was changed" in output
    assert live_state(world) == before


def test_entry_added_after_the_checks_survives(world):
    world.agent(None, "claude")
    world.agent("working", None)
    world.start()
    analysis = observe(world.settings).analysis  # the checks ran; then the orchestrator deploys
    data = json.loads(world.global_path.read_text())
    newcomer = {
        "task_id": next(iter(world.tasks)),
        "type": "late",
        "parent": "orchestrator",
        "started_at": "2025-10-29T23:59:59.000001",
        "tmux_session": "agent_late-235959-abcdef",
        "custom_field": {"kept": True},
    }
    data["agents"]["late-235959-abcdef"] = newcomer
    world.global_path.write_text(json.dumps(data, indent=2))
    report = fix_now(world, analysis)
    assert report.applied
    assert entries(world)["late-235959-abcdef"] == newcomer


def _orphan_world(world: World, **agent_kwargs) -> psutil.Process:
    world.agent(None, "claude")
    agent = world.agent("completed", "orphan", **agent_kwargs)
    world.start()
    return next(p for p in world.standins() if agent in " ".join(p.cmdline()))


def test_target_gone_before_its_kill_is_already_gone(world):
    orphan = _orphan_world(world)
    _, plan = plan_now(world.settings)
    orphan.kill()
    orphan.wait(5)
    (outcome,) = apply(plan, world.settings, Options())
    assert (outcome.action.kind, outcome.status) == ("kill_process", "already gone")


def test_target_exited_unreaped_before_its_kill_is_already_gone(tmp_path):
    """A planned orphan that exits before the fix while its parent has not reaped it yet (defunct: a Gemini pair's
    launcher whose child ended, say) is already gone, not skipped as if something else had changed."""
    world = SquadWorld(tmp_path / "world", grace=0.2)
    worktree = world.instance("perf", READY, None)["worktree"]["worktree_path"]
    world.start()
    # its parent never reaps it (posix_spawn, no wait): once it exits, it stays defunct
    spawn = "import os, sys, time; os.posix_spawn(sys.argv[1], sys.argv[1:], dict(os.environ)); time.sleep(120)"
    parent = subprocess.Popen([sys.executable, "-c", spawn, str(world.standin)], cwd=worktree, env=outside_tmux(),
                              start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        world.wait_ready(1, 30)
        (orphan,) = world.standins()
        _, plan = plan_now(world.settings)
        (action,) = [a for a in plan.actions if a.kind == "kill_process"]
        assert action.target.pid == orphan.pid
        orphan.kill()
        deadline = time.monotonic() + 10
        while orphan.status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the orphan never became defunct"
            time.sleep(0.05)
        outcomes = [o for o in apply(plan, world.settings, Options()) if o.action is action]
        assert [o.status for o in outcomes] == ["already gone"], [o.line() for o in outcomes]
    finally:
        parent.kill()
        parent.wait(10)
        world.teardown()


def test_process_whose_create_time_differs_is_not_signalled(world):
    orphan = _orphan_world(world)
    _, plan = plan_now(world.settings)
    (action,) = plan.actions
    plan.actions = [dataclasses.replace(action, target=ProcessTarget(orphan.pid, start_ticks(orphan.pid) - 100))]
    (outcome,) = apply(plan, world.settings, Options())
    assert outcome.status == "skipped" and "now belongs to another process" in outcome.detail
    assert orphan.is_running() and orphan.status() != psutil.STATUS_ZOMBIE


def test_stubborn_claude_ends_by_sigkill_within_the_bound(world):
    """An orphan that ignores SIGTERM is SIGKILLed when its grace is over. Timed: the acting (the phase's scan, the
    re-verification, the signals and the wait), not the observations before and after it, which load stretches (the
    whole fix took 10.6 s at a 1-minute load of 12 on 2 cores)."""
    orphan = _orphan_world(world, stubborn=True)
    _, plan = plan_now(world.settings)
    started = time.monotonic()
    outcomes = apply(plan, world.settings, Options(term_timeout=1.0))
    elapsed = time.monotonic() - started
    (outcome,) = [o for o in outcomes if o.action.kind == "kill_process"]
    assert outcome.status == "done" and "SIGKILL after 1s" in outcome.detail, [o.line() for o in outcomes]
    assert elapsed < 10 and not orphan.is_running(), elapsed
    assert not {f for f in failing(judge(world.settings)) if f[0] == "orphan_processes"}


def test_every_session_is_killed_though_some_close_by_themselves(world):
    """tmux stops a command sequence at its first error: a session that closed when its pane processes ended
    must not leave the sessions after it alive. Dead panes of remain-on-exit sessions stay until kill-session."""
    keep = world.agent(None, "claude")
    zombies = [world.agent("running", "shell") for _ in range(4)]
    world.start()
    for agent in zombies[1::2]:
        subprocess.run(
            ["tmux", "-L", world.socket_name, "set-option", "-w", "-t", f"=agent_{agent}:", "remain-on-exit", "on"],
            check=True,
            timeout=30,
        )
    _, plan = plan_now(world.settings)
    outcomes = [o for o in apply(plan, world.settings, Options()) if o.action.kind == "kill_session"]
    assert [o.status for o in outcomes] == ["done"] * 4, [o.line() for o in outcomes]
    assert world.live_sessions() == {f"agent_{keep}"}


def _hold_lock(path, seconds: float) -> subprocess.Popen:
    code = (
        "import fcntl, sys, time; f = open(sys.argv[1], 'r+'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(float(sys.argv[2]))"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert first_line(holder).strip() == "locked"
    return holder


def test_fixer_waits_for_the_orchestrators_lock(world):
    world.agent(None, "claude")
    ghost = world.agent("working", None)
    world.start()
    holder = _hold_lock(world.global_path, 1.0)
    try:
        started = time.monotonic()
        report = fix_now(world, lock_timeout=10)
        assert time.monotonic() - started >= 0.5
    finally:
        holder.wait(10)
    assert report.ok and entries(world)[ghost]["status"] == "terminated"


def test_file_replaced_while_waiting_for_the_lock_is_locked_again(world):
    """A co-writer renames a new registry (with a new agent) over the one we wait to lock: its entry survives."""
    ghost = world.agent("working", None)
    world.start()
    code = (
        "import fcntl, json, os, sys, time; path = sys.argv[1]; f = open(path, 'r+'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(0.3); data = json.load(open(path)); "
        "data['agents']['late-235959-abcdef'] = {'task_id': 'T', 'tmux_session': 'agent_late-235959-abcdef'}; "
        "open(path + '.new', 'w').write(json.dumps(data)); os.replace(path + '.new', path); time.sleep(0.3)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(world.global_path)], stdout=subprocess.PIPE, text=True)
    assert first_line(holder).strip() == "locked"

    def mark(data: dict) -> list[str]:
        data["agents"][ghost]["status"] = "terminated"
        return [f"terminated {ghost}"]

    try:
        rewrite(world.global_path, ScopeKind.GLOBAL, mark, workspace=world.workspace, lock_timeout=10)
    finally:
        holder.wait(10)
    assert entries(world)[ghost]["status"] == "terminated"
    assert entries(world)["late-235959-abcdef"]["tmux_session"] == "agent_late-235959-abcdef"


def test_a_write_checks_keys_again_unless_the_bytes_are_those_its_records_were_read_from(world):
    """The write leaves out the duplicate-key check only for bytes of the digest its records were read as: a file
    changed since (here, a repeated key put in front) is parsed strictly, refused, and left as it is."""
    ghost = world.agent("working", None)
    world.start()
    clean = world.global_path.read_bytes()
    read_as = hashlib.sha256(clean).hexdigest()
    tampered = b'{"agents": {},' + clean.lstrip()[1:]
    world.global_path.write_bytes(tampered)

    def mark(data: dict) -> list[str]:
        data["agents"][ghost]["status"] = "terminated"
        return [f"terminated {ghost}"]

    with pytest.raises(RegistryError, match="duplicate key 'agents'"):
        rewrite(world.global_path, ScopeKind.GLOBAL, mark, workspace=world.workspace, lock_timeout=10,
                read_as=read_as)
    assert world.global_path.read_bytes() == tampered
    assert not (world.workspace / "registry" / "backups").exists()


def test_fixer_gives_up_on_a_held_lock_without_writing(world):
    world.agent(None, "claude")
    world.agent("working", None)
    world.start()
    before = world.global_path.read_bytes()
    holder = _hold_lock(world.global_path, 600)  # held through the whole fix however slow (killed below, not waited)
    try:
        report = fix_now(world, lock_timeout=0.5)
    finally:
        holder.kill()
        holder.wait(10)
    assert world.global_path.read_bytes() == before
    failed = [o for o in report.outcomes if o.status == "failed"]
    assert failed and all("held the registry lock for more than 0.5s" in o.detail for o in failed)
    assert not report.ok


def test_tmux_unreachable_before_the_fix_takes_no_action(world):
    orphan = _orphan_world(world)
    world.agent("working", None)
    world.write_registries()
    settings = dataclasses.replace(world.settings, tmux_timeout=0.5)
    _, plan = plan_now(settings)
    assert {a.kind for a in plan.actions} >= {"kill_process", "mark_terminated"}
    before = registry_bytes(world.workspace)
    server = world.server_pid()
    os.kill(server, signal.SIGSTOP)
    try:
        outcomes = apply(plan, settings, Options())
    finally:
        os.kill(server, signal.SIGCONT)
    assert {o.status for o in outcomes} == {"refused"}
    assert orphan.is_running() and registry_bytes(world.workspace) == before


def test_xdist_fix_applies_each_action_once(demo_world, tmp_path):
    proc = run_health(tmp_path, *settings_args(demo_world.settings), "-n", "2", "--fix", "--yes")
    assert proc.returncode == 0, proc.stdout
    plan = [line for line in section(proc.stdout, "remediation plan") if re.match(r"\s*\d+\. ", line)]
    results = [line for line in section(proc.stdout, "remediation results") if ": " in line]
    assert len(results) == len(plan) and all(line.strip().startswith("done:") for line in results)
    assert proc.stdout.count("remediation results") == 1
    backups = list((demo_world.workspace / "registry" / "backups").iterdir())
    assert len(backups) == len({b.name.rsplit(".", 2)[0] for b in backups})  # one write per file


def test_killing_sessions_waits_no_longer_than_the_tmux_timeout(world):
    """A server that stops answering between the checks and the kill: --tmux-timeout bounds the wait."""
    from fixers import effects

    zombie = world.agent("running", "shell")
    world.start()
    seen = observe(world.settings)
    (server,) = seen.snapshot.servers
    session_id = seen.analysis.tmux.sessions[f"agent_{zombie}"][0].id
    pid = world.server_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        _, error = effects.kill_sessions(server, {session_id}, timeout=0.5)
        waited = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "did not answer within 0.5s" in error and waited < 3
    assert f"agent_{zombie}" in world.live_sessions()


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_after_a_fix_every_output_agrees_with_the_exit_status(demo_world, tmp_path, workers):
    """The fix runs once the tests are known and before they run: the tests judge what it left, so the terminal,
    JUnit, the findings JSON and the exit status all say the same thing; what was found is in the fix's record."""
    xml, doc = tmp_path / "j.xml", tmp_path / "f.json"
    proc = run_health(tmp_path, *settings_args(demo_world.settings), "--fix", "--yes", "--junitxml", str(xml),
                      "--findings-json", str(doc), *workers)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "17 passed" in proc.stdout and "failed" not in proc.stdout.splitlines()[-1]
    assert re.search(r'<testsuite name="agent-healthchecks" errors="0" failures="0"', xml.read_text())
    found = json.loads(doc.read_text())
    assert found["status"] == "repaired" and {c["status"] for c in found["checks"].values()} == {"pass"}
    assert found["fix"]["before"]["ghosts"] == 5  # what was found and repaired, beside the outcome


def test_junit_suite_properties_describe_the_state_after_the_fix(demo_world, tmp_path):
    """The suite's properties (snapshot, findings) come from the state the fix left, like its test cases: in the
    legacy family each test case names the snapshot it judged, and the suite names the same one."""
    xml = tmp_path / "j.xml"
    found = run_health(tmp_path, *settings_args(demo_world.settings), "--junitxml", str(xml))
    assert found.returncode == 1
    (suite,) = JUnitXml.fromfile(str(xml))
    before = {p.name for p in suite.properties()}
    assert {"finding", "entity"} <= before  # the demo's faults, listed while they are there
    fixed = run_health(tmp_path, *settings_args(demo_world.settings), "--fix", "--yes", "--junitxml", str(xml),
                       "-o", "junit_family=xunit1")
    assert fixed.returncode == 0, fixed.stdout[-3000:]
    (suite,) = JUnitXml.fromfile(str(xml))
    assert suite.failures == 0 and suite.tests == 17
    props = [(p.name, p.value) for p in suite.properties()]
    assert [name for name, _ in props] == ["snapshot"]  # no finding of before the fix
    judged = {p.get("value") for case in suite for p in case._elem.iter("property") if p.get("name") == "snapshot"}
    assert judged == {props[0][1]}


def test_a_plan_keeps_what_it_holds_back_and_what_it_cannot_judge_typed(world):
    """Held actions are kept whole (the action and why), blocked checks as the check and its reason, what is still
    wrong as the check and its finding: the lines a person reads are made from them, the same as before."""
    agent = world.agent("working", None)  # no tmux server behind the socket: marking it dead waits for a flag
    world.start()
    seen, plan = plan_now(world.settings)
    (held,) = plan.held
    assert held.action.kind is ActionKind.MARK_TERMINATED and held.action.target == AgentTarget(agent, f"agent_{agent}")
    assert f"  held back: {held.why}" in plan.lines() and "--allow-server-down" in held.why
    (ghost,) = still_wrong(seen.results, frozenset({"ghost_agents"}))
    assert ghost.finding is not None and ghost.finding.target == held.action.target
    assert ghost.line() == f"ghost_agents: {ghost.finding.line()}"
    world.global_path.write_text("{")
    seen, plan = plan_now(world.settings)
    blocked = {b.check: b for b in plan.blocked}
    assert blocked["ghost_agents"].reason.startswith("registry unusable")
    assert f"  not planned: ghost_agents: {blocked['ghost_agents'].reason}" in plan.lines()
    (unjudged,) = still_wrong(seen.results, frozenset({"ghost_agents"}))
    assert unjudged.finding is None and unjudged.line() == f"ghost_agents: not judged ({unjudged.reason})"


def test_an_action_takes_only_its_kinds_target_checked_where_it_is_made():
    """Each kind names the target type it takes: a wrong one is refused when the action is made, not in a phase."""
    process = ProcessTarget(os.getpid(), start_ticks(os.getpid()))
    kill = Action("kill_process", process, "pid", "why", "orphan_processes")  # a plugin may name the kind by its word
    assert kill.kind is ActionKind.KILL_PROCESS and json.dumps(kill.kind) == '"kill_process"'
    assert kill.describe() == "kill process tree of pid — why"
    with pytest.raises(TypeError, match="kill_session takes a SessionTarget, not ProcessTarget"):
        Action(ActionKind.KILL_SESSION, process, "pid", "why", "orphan_processes")
    assert [k.order for k in ActionKind] == sorted(k.order for k in ActionKind)
    assert {k for k in ActionKind if k.records} == {k for k in ActionKind if k.phase is Phase.RECORDS}
