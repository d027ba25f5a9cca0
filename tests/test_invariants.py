"""Each invariant on a real world holding exactly one fault: the check names that entity and nothing else."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import psutil
from helpers import failing, info, judge

from fixers.plan import make_plan
from healthchecks import processes
from healthchecks.dialect import Evidence as Sign
from healthchecks.observe import Observation, judged, observe
from healthchecks.processes import start_ticks
from healthchecks.snapshot import collect
from healthchecks.targets import FileTarget, ProcessTarget
from healthchecks.testing.world import World


def healthy(world: World) -> list[str]:
    """A fleet with nothing wrong: live agents of every active spelling, plus finished history."""
    ids = [world.agent(status, "claude") for status in (None, "running", "working", "reviewing")]
    ids += [world.agent(status, None) for status in ("completed", "terminated", "failed", "phase_completed")]
    return ids


def test_healthy_world_passes_every_check(world):
    healthy(world)
    world.start()
    assert failing(judge(world.settings)) == set()


def test_ghost_agent(world):
    healthy(world)
    ghost = world.agent("working", None)
    world.start()
    assert failing(judge(world.settings)) == {("ghost_agents", f"agent {ghost}")}


def test_agent_without_status_is_active_and_can_be_a_ghost(world):
    healthy(world)
    ghost = world.agent(None, None)
    world.start()
    assert failing(judge(world.settings)) == {("ghost_agents", f"agent {ghost}")}


def test_agent_deployed_one_second_ago_is_not_a_ghost(world):
    world.agent("running", None, started_ago=1)
    world.start()
    assert failing(judge(dataclasses.replace(world.settings, grace=60))) == set()


def test_zombie_session(world):
    healthy(world)
    zombie = world.agent("running", "shell")
    world.start()
    assert failing(judge(world.settings)) == {("zombie_sessions", f"session agent_{zombie}")}


def test_new_session_without_claude_is_starting_not_zombie(world):
    world.agent("running", "shell")
    world.start()
    assert failing(judge(dataclasses.replace(world.settings, grace=60))) == set()


def test_leaked_session(world):
    healthy(world)
    leaked = world.agent("completed", "claude")
    world.start()
    assert failing(judge(world.settings)) == {("leaked_sessions", f"session agent_{leaked}")}


def test_orphan_claude_process(world):
    healthy(world)
    agent = world.agent("completed", "orphan")
    world.start()
    orphan = next(p for p in world.standins() if agent in " ".join(p.cmdline()))
    results = judge(world.settings)
    assert failing(results) == {("orphan_processes", f"pid {orphan.pid}")}
    finding = next(f for f in results["orphan_processes"].findings if f.severity == "fail")
    assert finding.target == ProcessTarget(orphan.pid, start_ticks(orphan.pid))


def test_counter_drift(world):
    healthy(world)
    task = next(iter(world.tasks))
    world.write_registries(
        global_overrides={"active_agents": 15, "total_agents_spawned": 95},
        task_overrides={task: {"completed_count": 9}},
    )
    world.start()
    assert failing(judge(world.settings)) == {
        ("counters", "registry/GLOBAL_REGISTRY.json active_agents"),
        ("counters", "registry/GLOBAL_REGISTRY.json total_agents_spawned"),
        ("counters", f"{task}/AGENT_REGISTRY.json completed_count"),
    }


def test_task_registry_disagreeing_with_global(world):
    ids = healthy(world)
    world.write_registries()
    task = world.tasks and next(iter(world.tasks))
    data = json.loads(world.task_path(task).read_text())
    data["agents"][0]["status"] = "completed"  # the global registry still says it runs
    data["completed_count"] += 1
    data["active_count"] -= 1
    world.task_path(task).write_text(json.dumps(data))
    world.start()
    assert failing(judge(world.settings)) == {("registry_agreement", f"agent {ids[0]}")}


def test_a_schema_problem_under_a_path_holding_a_colon_names_the_whole_file(tmp_path):
    """A folder may be named `a: b`: the finding names the file whole and says the place and the problem (the line
    was split back at its first ": ", which cut the path in two)."""
    world = World(tmp_path / "a: b" / "world")
    try:
        world.write_registries(global_overrides={"active_agents": "fifteen"})
        world.start()
        (finding,) = judge(world.settings)["registry_schema"].findings
        assert finding.entity == str(world.global_path)
        assert finding.reason == "$.active_agents: expected integer, got string"
        assert finding.target == FileTarget(str(world.global_path))
    finally:
        world.teardown()


def test_unknown_status(world):
    healthy(world)
    odd = world.agent("paused", None)
    world.start()
    assert failing(judge(world.settings)) == {("known_statuses", f"agent {odd}")}


def test_schema_violation_fails_schema_check_and_skips_registry_checks(world):
    healthy(world)
    world.write_registries(global_overrides={"active_agents": "fifteen"})
    world.start()
    results = judge(world.settings)
    assert [f.line() for f in results["registry_schema"].findings] == [
        f"{world.global_path}: $.active_agents: expected integer, got string"
    ]
    skipped = {c for c, r in results.items() if not r.judged}
    assert skipped == {
        "counters",
        "registry_agreement",
        "known_statuses",
        "timestamps",
        "ghost_agents",
        "split_brain",
        "zombie_sessions",
        "leaked_sessions",
        "orphan_processes",
        "orphaned_agents",
        "duplicate_agents",
        "stale_scopes",
        "stale_pid_files",
        "leaked_worktrees",
        "accounted_for",
    }
    assert all(r.status == "skip" for r in results.values() if not r.judged)


def test_foreign_and_user_session_claude_are_never_orphans(world):
    healthy(world)
    world.foreign_claude()
    world.user_session()  # a Claude in the user's own session, working inside the workspace
    world.start()
    results = judge(world.settings)
    assert failing(results) == set()
    foreign = world.popen[0].pid
    assert info(results) == {("orphan_processes", f"pid {foreign}")}


def test_untracked_session_is_information_only(world):
    healthy(world)
    name = world.untracked_session()
    world.untracked_session("agent_elsewhere-idle", claude=False)
    world.start()
    results = judge(world.settings)
    assert failing(results) == set()
    assert info(results) == {
        ("leaked_sessions", f"session {name}"),
        ("leaked_sessions", "session agent_elsewhere-idle"),
    }


def test_unreachable_tmux_makes_tmux_checks_error(world):
    healthy(world)
    world.agent("working", None)  # a ghost, if tmux could be read
    world.start()
    server = world.server_pid()
    os.kill(server, signal.SIGSTOP)  # a hung server: tmux clients wait for it forever
    try:
        results = judge(dataclasses.replace(world.settings, tmux_timeout=0.5))
    finally:
        os.kill(server, signal.SIGCONT)
    errored = {c for c, r in results.items() if r.status == "error"}
    assert errored == {"ghost_agents", "split_brain", "zombie_sessions", "leaked_sessions", "orphan_processes",
                       "orphaned_agents", "duplicate_agents", "stale_scopes", "leaked_servers", "accounted_for"}
    assert "did not answer within 0.5s" in results["ghost_agents"].reason
    assert failing(results) - {(c, "error") for c in errored} == set()


def test_no_tmux_server_is_zero_sessions_not_unreachable(world, tmp_path):
    ghost = world.agent("working", None)
    world.start()  # nothing runs: no tmux server is ever started for this world
    assert world.server_pid() is None
    assert failing(judge(world.settings)) == {("ghost_agents", f"agent {ghost}")}


def test_orphan_attributed_through_its_tee_sibling(world, tmp_path):
    """Later orchestrators pipe the prompt on stdin: only the `tee` in its process group names the agent."""
    healthy(world)
    agent = world.agent("completed", None)
    log = world.workspace / world.agents[-1].task_id / "logs" / f"{agent}_stream.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    world.start()
    before = len(world.standins())
    pipeline = subprocess.Popen(
        ["sh", "-c", f"{world.standin} --print < /dev/null | tee {log} > /dev/null"],
        cwd=tmp_path,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    world.popen.append(pipeline)
    world.wait_ready(before + 1, 10)
    standin = next(p for p in world.standins() if p.ppid() == pipeline.pid)
    assert failing(judge(world.settings)) == {("orphan_processes", f"pid {standin.pid}")}
    # which kinds of sign made it an orphan are data, beside the text shown
    (orphan,) = observe(world.settings).analysis.attribution.claude_classes["orphan"]
    assert orphan.evidence is not None and orphan.evidence.signs == {Sign.PIPELINE_WRITES_WORKSPACE}


def test_running_server_without_sessions_is_zero_sessions(world):
    """With `exit-empty off` a server outlives its last session; `list-panes -a` then says "no current target"."""
    ghost = world.agent("working", None)
    orphan = world.agent("completed", "orphan")  # its session is the only one, and is killed
    world.start()
    assert world.server_pid() is not None and world.live_sessions() == set()
    results = judge(world.settings)
    orphan_pid = next(p.pid for p in world.standins() if orphan in " ".join(p.cmdline()))
    assert failing(results) == {("ghost_agents", f"agent {ghost}"), ("orphan_processes", f"pid {orphan_pid}")}


def test_interactive_claude_naming_an_agent_is_never_an_orphan(world):
    """A person asking their own Claude about an agent, from inside the workspace: not an agent, never killed."""
    healthy(world)
    agent = world.agent("failed", None)
    world.start()
    before = len(world.standins())
    person = subprocess.Popen(
        [str(world.standin), f"why did agent {agent} fail?"],
        cwd=world.workspace,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    world.popen.append(person)
    world.wait_ready(before + 1, 10)
    results = judge(world.settings)
    assert failing(results) == set()
    assert info(results) == {("orphan_processes", f"pid {person.pid}")}
    assert "interactive" in next(f.reason for f in results["orphan_processes"].findings)


def test_claude_hosting_the_orchestrator_mcp_server_is_never_an_orphan(world):
    """A scripted `claude --print` whose MCP server (its child, same process group) names the workspace.

    That server is what the Claude launched, not the pipeline that launched it: no evidence at all.
    """
    healthy(world)
    world.start()
    ws = world.workspace
    before = len(world.standins())
    server = f"cd {ws} && exec {sys.executable} -c 'import time; time.sleep(300)' orchestrator-mcp --workspace {ws}"
    client = subprocess.Popen(
        ["sh", "-c", f"({server}) & exec {world.standin} --print --mcp-config mcp.json 'deploy the agents'"],
        cwd=world.home,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    world.popen.append(client)
    try:
        world.wait_ready(before + 1, 10)
        deadline = time.monotonic() + 10
        while (server_pid := _child_running(client.pid, "orchestrator-mcp")) is None:
            assert time.monotonic() < deadline, "the MCP server stand-in did not start"
            time.sleep(0.02)
        assert os.getpgid(server_pid) == os.getpgid(client.pid)
        results = judge(world.settings)
        assert failing(results) == set()
        # a scripted Claude no record accounts for: information, named as nobody's
        assert info(results) == {("orphan_processes", f"pid {client.pid}"), ("accounted_for", f"pid {client.pid}")}
    finally:
        for child in psutil.Process(client.pid).children():
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def _child_running(pid: int, word: str) -> int | None:
    """The pid of a child of ``pid`` whose arguments contain ``word`` (children come and go: the stand-in's
    own short-lived `cat` of its stdin among them)."""
    for child in psutil.Process(pid).children():
        try:
            if word in child.cmdline():
                return child.pid
        except psutil.NoSuchProcess:
            continue
    return None


def _judged_from_inside(world: World, agent: str) -> Observation:
    """Judge a real snapshot as if this suite ran under the agent's own Claude, in the agent's own pane."""
    standin = next(p for p in world.standins() if agent in " ".join(p.cmdline()))
    snapshot = collect(world.settings)
    return judged(dataclasses.replace(snapshot, self_pids=snapshot.self_pids | processes.lineage(standin.pid)))


def test_agent_checking_its_own_fleet_is_not_a_zombie(world):
    """An agent may run the health checks itself: the Claude it runs under still counts for its session."""
    healthy(world)
    agent = world.agent("running", "claude")
    world.start()
    results = _judged_from_inside(world, agent).results
    assert failing(results) == set()
    assert info(results) == {("leaked_sessions", f"session agent_{agent}")}


def test_session_the_checks_run_in_is_never_judged_leaked(world):
    """An agent marked finished that still runs the checks: its session is never planned for killing."""
    agent = world.agent("completed", "claude")
    world.start()
    seen = _judged_from_inside(world, agent)
    assert failing(seen.results) == set()
    assert not make_plan(seen.analysis, seen.results).actions
