"""Faults injected into real worlds: the tool must not add damage to a machine that is already broken."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from helpers import REPO, failing, judge, plan_now

from fixers.apply import Options, apply
from healthchecks.dialect import ScopeKind
from healthchecks.sources.orchestrator.json_registry import load_file
from healthchecks.testing.world import World

FIX_SCRIPT = """
import json, os, sys, time
from pathlib import Path
from healthchecks.sources.orchestrator import json_writer as registry_write
from fixers.apply import Options
from fixers.run import fix
from healthchecks.observe import observe
from healthchecks.settings import Settings
point, marker = os.environ.get("FAULT_AT", ":").split(":", 1)
registry_write.BLOCK = 64  # so a write in place is torn when the writer is stopped after its first block

def torn():
    try:
        json.loads((Path(sys.argv[1]) / "registry" / "GLOBAL_REGISTRY.json").read_bytes())
    except ValueError:
        return True
    return False

def stop_here(name):
    if name == point and (name != "in-place" or torn()):
        Path(marker).touch()
        while True:
            time.sleep(60)

registry_write.fault = stop_here
settings = Settings(workspace=Path(sys.argv[1]), tmux_sockets=(sys.argv[2],), claude_match=sys.argv[3], grace=0.3,
                    claude_exe="")
report = fix(observe(settings), settings, Options(), dry_run=False,
             confirm=lambda plan: (True, "test"), show=lambda lines: None)
print("ok" if report.ok else report.remaining)
"""


@pytest.mark.parametrize("point", ["backup-written", "journal-written", "in-place", "written"])
def test_fixer_killed_mid_write_is_restored_or_finished_by_the_next_run(world, tmp_path, point):
    """SIGKILL at each step of an in-place write: the file is the old one, the new one, or torn with its
    journal beside it; the next run restores a torn file from the journal and finishes the job."""
    world.agent(None, "claude")
    world.agent("working", None)
    world.start()
    old = world.global_path.read_bytes()
    marker = tmp_path / "at-fault-point"
    s = world.settings
    fixer = subprocess.Popen([sys.executable, "-c", FIX_SCRIPT, str(s.workspace), s.tmux_sockets[0], s.claude_match],
                             cwd=REPO, env={**os.environ, "FAULT_AT": f"{point}:{marker}"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not marker.exists():
        if fixer.poll() is not None or time.monotonic() >= deadline:
            fixer.kill()
            pytest.fail(f"the fixer never reached {point} (in 60 s): {fixer.communicate(timeout=10)}")
        time.sleep(0.02)
    fixer.send_signal(signal.SIGKILL)
    fixer.wait(10)
    now = world.global_path.read_bytes()
    journal = world.global_path.with_name(".GLOBAL_REGISTRY.json.hc-journal")
    if point in ("backup-written", "journal-written"):
        assert now == old
    elif point == "in-place":
        assert now != old and load_file(world.global_path, ScopeKind.GLOBAL).errors  # torn...
        assert journal.exists()  # ...with the way back beside it
        assert "the next --fix restores it" in str(load_file(world.global_path, ScopeKind.GLOBAL).errors[-1])
    else:
        assert now != old and load_file(world.global_path, ScopeKind.GLOBAL).errors == ()
    (backup,) = (world.workspace / "registry" / "backups").glob("*.bak")
    assert backup.read_bytes() == old
    # The next run finishes the job from wherever the killed one stopped.
    proc = subprocess.run([sys.executable, "-c", FIX_SCRIPT, str(s.workspace), s.tmux_sockets[0], s.claude_match],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "ok", proc.stdout + proc.stderr
    assert failing(judge(world.settings)) == set()
    assert not list(world.global_path.parent.glob(".hc-tmp-*"))  # the killed writer's temp file is cleaned up
    assert not journal.exists()


def test_tmux_server_killed_between_plan_and_fix(world):
    healthy = [world.agent(None, "claude", ignores_hup=True) for _ in range(3)]  # outlive the server: seen unsignalled
    ghost = world.agent("working", None)
    world.start()
    _, plan = plan_now(world.settings)
    assert {a.target.id for a in plan.actions if a.kind == "mark_terminated"} == {ghost}
    standins = {p.pid for p in world.standins()}
    server = psutil.Process(world.server_pid())
    subprocess.run(["tmux", "-L", world.socket_name, "kill-server"], check=True, timeout=30)
    server.wait(10)  # while it is still exiting, tmux answers "server exited unexpectedly": unreachable, all refused
    outcomes = apply(plan, world.settings, Options())
    statuses = {aid: e.get("status") for aid, e in json.loads(world.global_path.read_text())["agents"].items()}
    assert statuses[ghost] == "terminated", [o.line() for o in outcomes]  # confirmed, and still a ghost
    assert all(statuses[h] is None for h in healthy)  # now session-less too, but never confirmed: untouched
    assert {p.pid for p in world.standins()} == standins  # no process was signalled
    assert all(o.status == "done" for o in outcomes)


def test_process_of_another_user_is_neither_judged_nor_signalled():
    """Another user's process may name itself anything: it is never a Claude of this user's fleet (issue 18)."""
    root = Path(tempfile.mkdtemp(prefix="hc-otheruser-"))
    root.chmod(0o755)
    world = World(root / "world")
    try:
        for d in (world.root, world.root / "ws", world.bin):
            d.chmod(0o755)
        (world.bin / ".fifo").chmod(0o666)
        (world.bin / ".ready").chmod(0o777)
        world.agent(None, "claude")
        agent = world.agent("completed", None)
        world.start()
        task_dir = world.workspace / world.agents[-1].task_id
        if os.geteuid() != 0:
            pytest.skip("needs root to start a process as another user")
        other = subprocess.Popen([str(world.standin), *world.launch_args(f"Your agent id is {agent}.")], cwd=task_dir,
                                 user=65534, start_new_session=True, stdin=subprocess.DEVNULL)
        world.popen.append(other)
        world.wait_ready(2, 10)
        seen, plan = plan_now(world.settings)
        assert failing(seen.results) == set() and plan.actions == []
        assert not [f for r in seen.results.values() for f in r.findings if f.entity == f"pid {other.pid}"]
        assert other.poll() is None  # not signalled
    finally:
        world.teardown()
        shutil.rmtree(root)


def test_defunct_claude_is_neither_judged_nor_signalled(world):
    world.agent(None, "claude")
    agent = world.agent("completed", None)
    world.start()
    child = subprocess.Popen([str(world.standin), "--print", f"agent {agent}"], cwd=world.workspace,
                             start_new_session=True, stdin=subprocess.DEVNULL)
    world.popen.append(child)  # teardown reaps it
    world.wait_ready(2, 10)
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:  # exited, not reaped: defunct
        assert time.monotonic() < deadline, "the killed stand-in never became defunct"
        time.sleep(0.01)
    seen, plan = plan_now(world.settings)
    assert failing(seen.results) == set()
    assert all(f"pid {child.pid}" != f.entity for r in seen.results.values() for f in r.findings)
    assert plan.actions == []
