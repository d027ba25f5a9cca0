"""Safety on real fleets: what is not provably this workspace's is never killed, written or lost.

Each test builds the situation on a real world (private tmux server, Claude stand-ins, real files)
and runs the checks or `--fix --yes` against it, as an operator would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
from helpers import (
    REPO,
    Writer,
    alive,
    failing,
    first_line,
    fix_in_process,
    info,
    judge,
    on_terminal,
    plan_now,
    registry_bytes,
    run_health,
    settings_args,
    spawn,
)
from test_peers import _attach, tmux

from fixers.confirm import ask
from healthchecks import holding
from healthchecks.snapshot import collect
from healthchecks.testing.world import World


def healthy(world: World) -> list[str]:
    return [world.agent(status, "claude") for status in (None, "running")] + [world.agent("completed", None)]


def test_persons_headless_claude_from_a_closed_window_of_their_session_is_never_killed(world, tmp_path):
    """`setsid claude --print … &` in a window of the person's own session `work` (today's Claude exits on SIGHUP,
    even under nohup), then the window closed: its TMUX_PANE names a pane that is gone, its cwd is the project.
    Neither proves it is an agent."""
    healthy(world)
    world.user_session("work", cwd=world.client_dir)
    world.start()
    before = {p.pid for p in world.standins()}
    command = f"cd {world.client_dir} && (setsid {world.standin} --print 'summarize the open issues' &) ; sleep 0.5"
    subprocess.run(["tmux", "-L", world.socket_name, "new-window", "-t", "work", command], check=True, timeout=30)
    world.wait_ready(len(before) + 1, 10)
    (person,) = [p for p in world.standins() if p.pid not in before]
    deadline = time.monotonic() + 10
    while len(subprocess.run(["tmux", "-L", world.socket_name, "list-windows", "-t", "work"],
                             capture_output=True, text=True, timeout=30).stdout.splitlines()) > 1:
        assert time.monotonic() < deadline, "the person's window did not close"
        time.sleep(0.05)
    assert "TMUX_PANE" in person.environ()
    results = judge(world.settings)
    assert failing(results) == set()
    assert ("orphan_processes", f"pid {person.pid}") in info(results)
    proc = run_health(tmp_path, *settings_args(world.settings), "--fix", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert alive(person.pid)


def test_short_ids_and_a_persons_prompts_are_never_evidence(world, tmp_path):
    """Registry keys `a` and `` match inside any text; a person's `claude -p` may name a real agent id."""
    ids = healthy(world)
    world.write_registries()
    data = json.loads(world.global_path.read_text())
    task = next(iter(world.tasks))
    for key in ("a", ""):
        data["agents"][key] = {"task_id": task, "tmux_session": f"agent_{key or 'x'}", "status": "completed"}
    data["total_agents_spawned"] += 2
    world.global_path.write_text(json.dumps(data, indent=2))
    world.start()
    sales = spawn(world, [str(world.standin), "--print", "summarize the quarterly sales data"], world.home)
    asking = spawn(world, [str(world.standin), "-p", f"why did agent {ids[2]} fail?"], world.client_dir)
    results = judge(world.settings)
    assert failing(results) == set()
    assert {("orphan_processes", f"pid {sales.pid}"), ("orphan_processes", f"pid {asking.pid}")} <= info(results)
    reason = next(f.reason for f in results["orphan_processes"].findings if f.entity == f"pid {asking.pid}")
    assert f"its arguments name agent {ids[2]}" in reason and "not exclusive" in reason
    assert fix_in_process(world.settings).ok
    assert alive(sales.pid) and alive(asking.pid)


def test_three_workspaces_on_one_server_each_sees_only_its_own_orphan(tmp_path):
    """A and B each leave an orphan whose prompt came on stdin (the current release); C has no agents. The same
    server holds a person's own session with Claude in A's project, a grouped session through which a person (an
    attached client) watches A's healthy agent, and the person's headless Claude in A's project, with and without
    the orchestrator's four launch flags; A's orchestrator writes A's registry in place, under its flock, while A
    is fixed."""
    tag = World(tmp_path / "probe").tag
    shutil.rmtree(tmp_path / "probe")
    a, b, c = (World(tmp_path / name, tag=tag) for name in "abc")
    try:
        orphans, healthy = {}, {}
        for w in (a, b):
            healthy[w] = w.agent(None, "claude", stdin_prompt=True)
            orphans[w] = w.agent("completed", "orphan", stdin_prompt=True)
            w.start()
        c.user_session("work", cwd=a.client_dir)  # a person's interactive Claude in A's project
        c.write_registries()
        c.start()
        watched = f"agent_{healthy[a]}"
        assert tmux("-L", a.socket_name, "new-session", "-d", "-t", watched, "-s", "peek").returncode == 0
        _attach(a, "peek")
        person = spawn(c, [str(c.standin), "--print", "summarize the diff"], a.client_dir)
        flags = ["--print", "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"]
        scripted = spawn(c, [str(c.standin), *flags, "review the diff"], a.client_dir)
        pid = {w: w.orphan_pids[orphans[w]] for w in (a, b)}
        assert failing(judge(a.settings)) == {("orphan_processes", f"pid {pid[a]}")}
        assert failing(judge(b.settings)) == {("orphan_processes", f"pid {pid[b]}")}
        on_c = judge(c.settings)
        assert failing(on_c) == set()
        report = fix_in_process(c.settings)
        assert report.ok and not report.outcomes  # nothing signalled
        assert alive(pid[a]) and alive(pid[b])
        with Writer(WRITER, a.global_path, tmp_path) as writer:
            report = fix_in_process(a.settings, lock_timeout=30)
        assert [o.status for o in report.outcomes if o.action.kind == "kill_process"] == ["done"]
        assert not alive(pid[a]) and alive(pid[b]) and alive(person.pid) and alive(scripted.pid)
        assert {watched, "peek"} <= a.live_sessions() and a.claude_in_sessions([a.agents[0]])[healthy[a]]
        assert set(writer.written()) <= set(json.loads(a.global_path.read_text())["agents"])  # none lost
    finally:
        for w in (a, b, c):
            w.teardown()


def test_the_same_server_named_twice_is_one_server(world, tmp_path):
    """By name, by socket path and through a symlink: one server, a healthy fleet, nothing to do."""
    healthy(world)
    world.start()
    path = f"/tmp/tmux-{os.getuid()}/{world.socket_name}"
    link = tmp_path / "link-to-socket"
    link.symlink_to(path)
    settings = dataclasses.replace(world.settings, tmux_sockets=(world.socket_name, path, str(link)))
    snapshot = collect(settings)
    assert len(snapshot.servers) == 1 and set(snapshot.servers[0].aliases) == {path, str(link)}
    assert failing(judge(settings)) == set()
    standins = {p.pid for p in world.standins()}
    report = fix_in_process(settings)
    assert report.ok and not report.outcomes
    assert {p.pid for p in world.standins()} == standins


def test_session_names_as_tmux_stores_them(world):
    """tmux stores `.` and `:` in a session name as `_`; the orchestrator does not sanitize agent types."""
    live = [world.agent("running", "claude", agent_type=kind) for kind in ("frontend.dev", "api:v2")]
    world.start()
    assert {f"agent_{i}".replace(".", "_").replace(":", "_") for i in live} <= world.live_sessions()
    assert failing(judge(world.settings)) == set()
    assert not fix_in_process(world.settings).outcomes


def faulty(world: World) -> dict[str, str]:
    world.agent(None, "claude")
    faults = {
        "ghost": world.agent("working", None),
        "zombie": world.agent("running", "shell"),
        "orphan": world.agent("completed", "orphan"),
    }
    world.write_registries(global_overrides={"active_agents": 9})
    world.start()
    return faults


def test_selected_checks_limit_the_plan(world, tmp_path):
    faults = faulty(world)
    orphan = world.orphan_pids[faults["orphan"]]
    proc = run_health(
        tmp_path, *settings_args(world.settings), "-k", "test_counters_match_entries", "--fix", "--yes"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert alive(orphan)
    assert f"agent_{faults['zombie']}" in world.live_sessions()
    entries = json.loads(world.global_path.read_text())["agents"]
    assert entries[faults["ghost"]]["status"] == "working"
    still = failing(judge(world.settings))
    assert ("counters", "registry/GLOBAL_REGISTRY.json active_agents") not in still
    assert {c for c, _ in still} == {"ghost_agents", "zombie_sessions", "orphan_processes"}


def test_node_claude_with_its_title_over_its_arguments(world):
    """process.title = "claude" leaves no --print and no prompt in /proc/<pid>/cmdline."""
    inside = world.agent("running", "claude", titled=True)
    loose = world.agent("completed", "orphan", titled=True, stdin_prompt=True)
    world.start()
    pid = world.orphan_pids[loose]
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        assert fh.read().rstrip(b"\0") == world.standin.name.encode()
    results = judge(world.settings)
    assert failing(results) == set()  # its session runs Claude: not a zombie
    reason = next(f.reason for f in results["orphan_processes"].findings if f.entity == f"pid {pid}")
    assert "client directory" in reason and "not exclusive" in reason  # found, with what was seen; left alone
    assert inside
    # A node Claude whose prompt file of this workspace is its standard input (E0) is provably this workspace's.
    prompt = world.workspace / world.agents[0].task_id / "agent_prompt_x.txt"
    prompt.write_text("You are an agent.")
    with open(prompt) as stdin:
        e0 = spawn(world, [str(world.titled), *world.launch_args()], world.client_dir, stdin=stdin)
    deadline = time.monotonic() + 10
    while e0.name() != world.standin.name:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert ("orphan_processes", f"pid {e0.pid}") in failing(judge(world.settings))
    report = fix_in_process(world.settings)
    assert report.ok and not alive(e0.pid) and alive(pid)


WRITER = r"""
import fcntl, json, sys, time
path, log, stop = sys.argv[1], sys.argv[2], sys.argv[3]
n = 0
from pathlib import Path
while not Path(stop).exists():
    with open(path, "r+") as fh:                       # the orchestrator's LockedRegistryFile
        fcntl.flock(fh, fcntl.LOCK_EX)
        data = json.load(fh)                            # valid at every read, or this raises
        task = next(iter(data["tasks"]))
        agent = f"writer-{n:06d}-{n:06x}"
        data["agents"][agent] = {"task_id": task, "tmux_session": "agent_" + agent, "status": "working",
                                 "started_at": "2025-10-29T23:00:00.000000"}
        data["total_agents_spawned"] = data.get("total_agents_spawned", 0) + 1
        fh.seek(0); fh.truncate(); json.dump(data, fh, indent=2); fh.flush()
        fcntl.flock(fh, fcntl.LOCK_UN)
    with open(log, "a") as out:
        out.write(agent + "\n")
    n += 1
    time.sleep(0.005)
"""


def test_orchestrator_writing_in_place_loses_nothing_while_fix_runs(world, tmp_path):
    """An orchestrator-style writer (open r+, flock, read, add, truncate, write) loops through 25 fix rounds."""
    world.agent(None, "claude")
    world.start()
    with Writer(WRITER, world.global_path, tmp_path) as writer:
        for _ in range(25):
            report = fix_in_process(world.settings, lock_timeout=30)
            assert all(o.status != "failed" for o in report.outcomes), [o.line() for o in report.outcomes]
            assert writer.proc.poll() is None, writer.proc.stderr.read()
    written = writer.written()
    entries = json.loads(world.global_path.read_text())["agents"]
    assert len(written) > 50 and set(written) <= set(entries)  # 0 lost
    marked = sum(1 for i in written if entries[i].get("status") == "terminated")
    assert marked > 0  # the fix really wrote between the writer's rounds


def test_symlinked_task_folder_is_never_followed(world, tmp_path):
    """A `TASK-*` folder linked to another project's task: that project's agent is not ours to mark."""
    healthy(world)
    world.start()
    other = World(tmp_path / "other")
    try:
        ghost = other.agent("working", None)
        other.write_registries()
        task = next(iter(other.tasks))
        (world.workspace / task).symlink_to(other.workspace / task)
        before = registry_bytes(other.workspace)
        results = judge(world.settings)
        (line,) = [f.line() for f in results["registry_schema"].findings]
        assert "is a symlink" in line and "refusing to follow it out of the workspace" in line
        report = fix_in_process(world.settings)
        assert not report.outcomes and registry_bytes(other.workspace) == before
        assert json.loads(other.task_path(task).read_text())["agents"][0]["id"] == ghost
    finally:
        other.teardown()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own a workspace as another user")
def test_fix_as_another_user_refuses_and_writes_nothing(world):
    world.agent(None, "claude")
    world.agent("working", None)
    world.start()
    for path in [world.workspace, *world.workspace.rglob("*")]:
        os.chown(path, 65534, 65534)
    before = registry_bytes(world.workspace)
    report = fix_in_process(world.settings)
    assert not report.applied and "belongs to" in report.message and "uid 65534" in report.message
    assert registry_bytes(world.workspace) == before
    assert not (world.workspace / "registry" / "backups").exists()


def test_lone_surrogate_is_written_back_as_it_was(world):
    """`"\\ud83d"` is valid JSON (what json.dump writes for half a pair); it must survive a rewrite."""
    world.agent(None, "claude")
    ghost = world.agent("working", None, note="\ud83d split")
    world.start()
    report = fix_in_process(world.settings)
    assert report.ok, [o.line() for o in report.outcomes]
    entry = json.loads(world.global_path.read_text())["agents"][ghost]
    assert entry["status"] == "terminated" and entry["note"] == "\ud83d split"


def test_a_plan_that_cannot_be_carried_out_whole_acts_on_nothing(world, tmp_path):
    """`registry/backups` linked to another place: the plan stops before its first signal, in one line."""
    world.agent(None, "claude")
    orphan = world.agent("completed", "orphan")
    world.agent("working", None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (world.workspace / "registry" / "backups").symlink_to(elsewhere)
    world.start()
    before = registry_bytes(world.workspace)
    report = fix_in_process(world.settings)
    assert not report.applied and "refusing to follow it out of the workspace" in report.message
    assert "\n" not in report.message
    assert alive(world.orphan_pids[orphan]) and registry_bytes(world.workspace) == before
    assert not list(elsewhere.iterdir())


@pytest.mark.parametrize("depth", [150, 300])
def test_checks_and_fix_agree_on_deep_nesting(world, depth):
    """How deep a registry may nest does not depend on how deep the caller's stack is."""
    world.agent(None, "claude")
    ghost = world.agent("working", None)
    world.write_registries()
    text = world.global_path.read_text()
    deep = "[" * depth + "]" * depth
    world.global_path.write_text(text.replace('"created_at"', f'"deep": {deep}, "created_at"', 1))
    world.start()
    refused = [f.line() for f in judge(world.settings)["registry_schema"].findings]
    report = fix_in_process(world.settings)
    status = json.loads(world.global_path.read_text())["agents"][ghost]["status"]
    if depth > 200:
        assert refused and "nested deeper than 200 levels" in refused[0] and status == "working"
    else:
        assert not refused and report.ok and status == "terminated"


SIZE_PROBE = """
import sys
from pathlib import Path
from healthchecks.sources.orchestrator.json_registry import fingerprint, load
regs = load(Path(sys.argv[1]))
fingerprint(Path(sys.argv[1]))
print(regs.all_errors[0])
# This process's own peak (VmHWM): ru_maxrss would also count the pages of the pytest worker it was forked from.
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(int(peak.split()[1]) // 1024)
"""


def test_a_huge_sparse_registry_is_never_read_whole(world):
    world.write_registries()
    with open(world.global_path, "r+b") as fh:
        fh.truncate(1 << 30)  # 1 GB, sparse
    proc = subprocess.run([sys.executable, "-c", SIZE_PROBE, str(world.workspace)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    error, rss_mb = proc.stdout.splitlines()
    assert "over the 128 MiB limit" in error
    assert int(rss_mb) < 200, proc.stdout


def test_archive_records_stay_whole(tmp_path):
    """A torn last line is moved aside before appending; a write that fails (file size limit) is cut back."""
    from fixers.archive import append_archive

    ws = tmp_path / "ws"
    archive = ws / "registry" / "archive" / "pruned.jsonl"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b'{"agent_id": "a"}\n{"agent_id": "b", "ent')
    append_archive(ws, archive, [{"agent_id": "c"}])
    assert [json.loads(line)["agent_id"] for line in archive.read_text().splitlines()] == ["a", "c"]
    (torn,) = archive.parent.glob("pruned.jsonl.torn-*")
    assert torn.read_bytes() == b'{"agent_id": "b", "ent'
    size = archive.stat().st_size
    script = (
        "import resource, signal, sys; from pathlib import Path\n"
        "from fixers.archive import append_archive\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({size + 10}, resource.RLIM_INFINITY))\n"
        f"append_archive(Path({str(ws)!r}), Path({str(archive)!r}), [{{'agent_id': 'x' * 100}}])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "File too large" in proc.stderr
    assert archive.stat().st_size == size  # nothing torn left behind


def _hold(path: Path, kind: str) -> subprocess.Popen:
    """Hold a registry file's flock, or the workspace's fix lock, from another process."""
    code = (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert first_line(holder).strip() == "locked", kind
    return holder


def test_exit_status_is_1_when_a_write_fails(world, tmp_path):
    world.agent(None, "claude")
    ghost = world.agent("working", None)
    world.start()
    holder = _hold(world.global_path, "registry")
    try:
        args = ("--fix", "--yes", "--prune", "--lock-timeout", "0.5")
        proc = run_health(tmp_path, *settings_args(world.settings), *args)
    finally:
        holder.kill()
        holder.wait(10)
    assert proc.returncode == 1, proc.stdout
    assert "failed" in proc.stdout and ghost in proc.stdout


def test_two_fixes_at_once_do_not_both_act(world, tmp_path):
    world.agent(None, "claude")
    world.agent("working", None)
    world.start()
    before = registry_bytes(world.workspace)
    holder = _hold(world.workspace, "fix")
    try:
        proc = run_health(tmp_path, *settings_args(world.settings), "--fix", "--yes", "--lock-timeout", "0.5")
    finally:
        holder.kill()
        holder.wait(10)
    assert proc.returncode == 1
    assert "another agent-healthchecks --fix is working on" in proc.stdout
    assert registry_bytes(world.workspace) == before


def test_status_line_fix_still_tells_a_person_what_it_did(world, tmp_path):
    faults = faulty(world)
    proc = run_health(tmp_path, *settings_args(world.settings), "--status-line", "--fix", "--yes")
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith("AGENT-HEALTH ")
    assert "remediation plan" in proc.stderr and faults["ghost"] in proc.stderr
    assert "remediation results" in proc.stderr and "done:" in proc.stderr


def test_a_stopped_server_marks_nobody_dead_without_a_flag(world, tmp_path):
    """No server behind the socket, active agents in the registry: a wrong --tmux-socket or user looks like this."""
    agents = [world.agent("working", None), world.agent(None, None)]
    world.start()
    results = judge(world.settings)
    reason = next(f.reason for f in results["ghost_agents"].findings)
    assert "is not running: right --tmux-socket? right user?" in reason
    before = registry_bytes(world.workspace)
    report = fix_in_process(world.settings)
    assert not report.outcomes and len(report.plan.held) == 2 and registry_bytes(world.workspace) == before
    assert fix_in_process(world.settings, allow_server_down=True).ok
    entries = json.loads(world.global_path.read_text())["agents"]
    assert {entries[a]["status"] for a in agents} == {"terminated"}


def test_prune_takes_pruned_ids_out_of_the_hierarchy(world):
    live = world.agent(None, "claude")
    gone = [world.agent("completed", None), world.agent("working", None)]
    world.start()
    assert fix_in_process(world.settings, prune=True).ok
    task = json.loads(world.task_path(next(iter(world.tasks))).read_text())
    assert task["agent_hierarchy"] == {"orchestrator": [live]}
    assert not set(gone) & {a["id"] for a in task["agents"]}


def test_held_actions_name_their_flag(world):
    """Held-back actions say which flag would let them run."""
    world.agent("working", None)
    world.start()
    _, plan = plan_now(world.settings)
    assert any("--allow-server-down" in line for line in plan.lines())


def _on_a_terminal(world: World, tmp_path: Path, *args: str, interrupt_after: str, delay: float = 0.0):
    """Run `pytest healthchecks` on a pseudo-terminal, type Ctrl-C once ``interrupt_after`` is printed (the terminal
    turns it into SIGINT for the foreground process group)."""
    return on_terminal(world.settings, tmp_path / "reports", *args, when=interrupt_after, keys=b"\x03", delay=delay)


def test_ctrl_c_at_the_prompt_changes_nothing(world, tmp_path):
    faults = faulty(world)
    before = registry_bytes(world.workspace)
    code, out = _on_a_terminal(world, tmp_path, "--fix", interrupt_after="Type yes to proceed")
    assert code == 130, out
    assert "Traceback" not in out and "interrupted at the prompt: nothing was changed" in out
    assert registry_bytes(world.workspace) == before and alive(world.orphan_pids[faults["orphan"]])


# Loaded with -p: at the --fix prompt a helper thread is alive and takes the terminal's SIGINT. The kernel gives a
# process-directed signal to any thread that does not block it; blocking it in the main thread once the helper has
# started (unblocked) makes that choice every time, instead of once in many runs.
SIGINT_ELSEWHERE = """
import signal, threading

def pytest_collection_modifyitems():
    threading.Thread(target=threading.Event().wait, daemon=True, name="helper").start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
"""


def test_ctrl_c_at_the_prompt_ends_the_run_when_another_thread_takes_it(world, tmp_path):
    """The C handler runs in the helper thread; the main thread, blocked reading the answer, is never woken."""
    faults = faulty(world)
    before = registry_bytes(world.workspace)
    (tmp_path / "sigint_elsewhere.py").write_text(SIGINT_ELSEWHERE)
    code, out = on_terminal(world.settings, tmp_path / "reports", "--fix", "-p", "sigint_elsewhere",
                            when="Type yes to proceed", keys=b"\x03", ends_within=15,
                            env={"PYTHONPATH": str(tmp_path)})
    assert code == 130, out
    assert "Traceback" not in out and "interrupted at the prompt: nothing was changed" in out
    assert registry_bytes(world.workspace) == before and alive(world.orphan_pids[faults["orphan"]])


def test_the_snapshots_timer_thread_leaves_ctrl_c_to_the_main_thread(tmp_path):
    """The timer that lets go of the registries' flocks is a thread of the run: a Ctrl-C it took would never reach
    the main thread's blocking calls."""
    registry = tmp_path / "registry.json"
    registry.write_text("{}")
    with holding.held([registry], 0.25) as locked:
        assert locked
        (timer,) = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
        deadline = time.monotonic() + holding.MAX_HOLD / 2  # it ends at MAX_HOLD
        while not (blocked := _blocked_signals(timer.native_id)) and time.monotonic() < deadline:
            time.sleep(0.01)  # started: its first step blocks them
        assert {signal.SIGINT, signal.SIGTERM, signal.SIGALRM} <= blocked
    assert signal.SIGINT not in _blocked_signals(threading.get_native_id())


def _blocked_signals(tid: int) -> set[int]:
    status = Path(f"/proc/self/task/{tid}/status").read_text()
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)
    return {sig for sig in signal.valid_signals() if mask >> (sig - 1) & 1}


def test_a_terminal_left_in_raw_mode_still_gets_an_echoed_answer_and_its_modes_back():
    """A program that crashed in raw mode leaves no echo, no line editing and Enter as a bare CR: the question
    turns them on while it waits, and gives the terminal its own modes back."""
    master, slave = os.openpty()
    try:
        raw = termios.tcgetattr(slave)
        raw[0] &= ~termios.ICRNL
        raw[3] &= ~(termios.ICANON | termios.ECHO)
        termios.tcsetattr(slave, termios.TCSANOW, raw)
        got: list = []
        asking = threading.Thread(target=lambda: got.append(ask(["1. a"], 1, os.ttyname(slave))), daemon=True)
        asking.start()
        shown = b""
        deadline = time.monotonic() + 10
        while b"Type yes to proceed" not in shown and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                shown += os.read(master, 4096)
        os.write(master, b"yes\r")  # Enter
        asking.join(10)
        assert got == [(True, "confirmed on the terminal")], "the answer was never read"
        assert b"yes" in os.read(master, 4096)  # echoed
        assert termios.tcgetattr(slave)[:4] == raw[:4]  # its flags (tcgetattr shows VMIN, VTIME as ints)
    finally:
        os.close(master)
        os.close(slave)


def test_ctrl_c_while_applying_says_what_was_done_and_records_it(world, tmp_path):
    world.agent(None, "claude")
    stubborn = world.agent("completed", "orphan", stubborn=True)  # ignores SIGTERM: the fix waits for it
    world.agent("working", None)
    world.start()
    doc = tmp_path / "findings.json"
    code, out = _on_a_terminal(world, tmp_path, "--fix", "--yes", "--findings-json", str(doc),
                               interrupt_after="remediation plan", delay=1.0)
    assert code == 130, out
    assert "Traceback" not in out
    assert re.search(r"interrupted: \d+ action\(s\) done, \d+ not done", out)
    fix = json.loads(doc.read_text())["fix"]
    assert fix["interrupted"] is True and fix["message"].startswith("interrupted")
    assert stubborn in world.orphan_pids


def test_sessions_that_close_by_themselves_are_killed_not_failed(world):
    """The last sessions of a server close as their panes' processes end: that is success, not a restart."""
    zombies = [world.agent("running", "shell") for _ in range(2)]
    world.start()
    report = fix_in_process(world.settings)
    assert report.ok, [o.line() for o in report.outcomes]
    assert not {f"agent_{z}" for z in zombies} & world.live_sessions()


def test_an_empty_server_restarted_on_its_socket_is_never_killed(tmp_path):
    """An empty tmux server (exit-empty off) lists no pane, so no pane names its pid: at the moment of action the
    server answering on the socket is asked for it (`display -p '#{pid}'`), and kill-server refuses one that is not
    the process the checks judged."""
    from fixers import effects
    from healthchecks.tmux import default_socket_path, read_server

    name = f"hc-empty-{os.getpid()}-{time.monotonic_ns()}"

    def start() -> int:
        started = tmux("-L", name, "-f", "/dev/null", "start-server", ";", "set", "-g", "exit-empty", "off")
        assert started.returncode == 0, started.stderr
        return int(tmux("-L", name, "display", "-p", "#{pid}").stdout)

    try:
        first = start()
        judged = dataclasses.replace(read_server(name), server_pid=first)  # as the snapshot identifies it
        assert not judged.panes
        tmux("-L", name, "kill-server")
        assert ended_pid(first)
        second = start()  # another server on the same socket, empty too
        why = effects.kill_server(judged, set(), 10)
        assert f"{first} -> {second}" in why and alive(second), why
        assert effects.kill_server(dataclasses.replace(judged, server_pid=second), set(), 10) == ""  # the very one
        assert ended_pid(second)
    finally:
        tmux("-L", name, "kill-server")
        Path(default_socket_path(name)).unlink(missing_ok=True)


def ended_pid(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)
