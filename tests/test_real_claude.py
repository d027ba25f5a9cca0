"""The real Claude Code (the pinned npm package) in all three install layouts, deployed as the orchestrator deploys it.

One world per layout carries every fault at once (far cheaper than one world per fault): a ghost, a setsid-detached
orphan, a zombie (its Claude SIGKILLed, the pane's shell and notifier alive, its Bash tool's own-session children
left outside every pane), a leaked session, an agent whose Claude alone was setsid-detached and then lost its
session (found by lineage: an earlier run saw it in the agent's pane); beside live agents and the bystanders a
person brings: an interactive `claude` in their `work` session of the same server, and `claude -p` from the project
directory with and without the orchestrator's four flags. Every fault must be found and fixed exactly; nothing
live is failing or signalled.
Claude talks only to the scripted API on 127.0.0.1 (messages_api.py): the test proves it.

Skipped, saying why, where the binary cannot be had (no npm, offline); CI sets HC_REAL_CLAUDE=required, so there a
missing binary fails instead.
"""

from __future__ import annotations

import contextlib

import psutil
import pytest
from helpers import alive, failing, fix_in_process, info, installed_claude

from healthchecks import sightings
from healthchecks.observe import observe
from healthchecks.testing import real_claude
from healthchecks.testing.messages_api import MessagesAPI
from healthchecks.testing.real_world import RealWorld

pytestmark = pytest.mark.real_claude
LOOPBACK = ("127.0.0.1", "::1")


@pytest.fixture(scope="session")
def claude_exe():
    return installed_claude()


@pytest.fixture
def api():
    server = MessagesAPI()
    yield server
    server.close()


def _remote_hosts(pids: list[int]) -> set[str]:
    hosts = set()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            hosts |= {c.raddr.ip for c in psutil.Process(pid).net_connections(kind="inet") if c.raddr}
    return hosts


@pytest.mark.parametrize("layout", real_claude.LAYOUTS)
def test_real_fleet_every_fault_found_and_fixed_exactly(layout, claude_exe, api, tmp_path):
    world = RealWorld(tmp_path / "world", layout, claude_exe, api)
    leftovers: list[psutil.Process] = []  # the Bash tool's children the fix leaves alone: ended here, by identity
    try:
        live = world.real_agent("running", "claude")
        busy = world.real_agent("working", "claude", script="bash")  # its Bash tool runs inside its pane
        zombie = world.real_agent("running", "claude", script="bash")
        ghost = world.real_agent("running", None)
        orphan = world.real_agent("completed", "orphan")
        leaked = world.real_agent("completed", "claude")
        hidden = world.real_agent("running", "claude", binary=world.unrecognised_binary())
        detached = world.real_agent("running", "claude", detached=True)  # `cat … | setsid claude … | tee …`
        world.person_session("work")
        world.person_headless("person-flags", flags=True)
        world.person_headless("person-plain", flags=False)
        world.start()
        world.wait(lambda: world.tool_children(world.claude_of(zombie)) and world.tool_children(world.claude_of(busy)),
                   60, "the Bash tools ran")
        keep = {name: world.claude_of(name) for name in (live, busy, hidden)}
        keep["work"] = next(p for p in world.session_pids(["work"])
                            if psutil.Process(p).exe() == str(world.claude_path.resolve()))
        keep.update({f"person {i}": p.pid for i, p in enumerate(world.people)})
        kept_tools = [p.pid for p in world.tool_children(keep[busy])]
        leaked_claude, orphan_claude = world.claude_of(leaked), world.orphan_pids[orphan]
        detached_claude = world.claude_of(detached)

        # An earlier run saw the zombie's Bash tool and the detached Claude inside their panes; then the zombie's
        # Claude is SIGKILLed, and the detached one's session killed (its Claude outlives it: its own session).
        recorded = sightings.seen(observe(world.settings).analysis)
        sightings.record(world.settings.sightings, recorded)
        in_pane = {agent: {s.pid for s in recorded if isinstance(s, sightings.Sighting) and s.agent == agent}
                   for agent in (zombie, detached)}
        _, tools = world.kill_claude(zombie)
        assert tools and set(tools) <= in_pane[zombie]
        world.kill_sessions([f"agent_{detached}"])
        world.wait(lambda: not any(alive(p) for p in in_pane[detached] - {detached_claude}), 30,
                   "the detached agent's pane and pipeline ended (SIGHUP), all but its Claude")
        assert alive(detached_claude)
        # what was seen in the zombie's pane and now lives outside it: its Bash tool's processes (and any other
        # child the SIGKILLed Claude left behind)
        left = {p for p in in_pane[zombie] if alive(p)} - world.session_pids([f"agent_{zombie}"])
        for pid in left:
            with contextlib.suppress(psutil.Error):
                leftovers.append(psutil.Process(pid))

        results = observe(world.settings).results
        expected = {
            ("ghost_agents", f"agent {ghost}"),
            ("orphan_processes", f"pid {orphan_claude}"),
            ("zombie_sessions", f"session agent_{zombie}"),
            ("leaked_sessions", f"session agent_{leaked}"),
            ("ghost_agents", f"agent {detached}"),
            ("orphan_processes", f"pid {detached_claude}"),
        }
        seen = "\n".join(f"{f.check} {f.severity} {f.entity}: {f.reason}" for r in results.values() for f in r.findings)
        assert {f for f in failing(results) if f[0] != "counters"} == expected, seen
        # the Bash tool's children are no agent program: lineage alone never ends them (information, left alive)
        assert {("orphan_processes", f"pid {pid}") for pid in left} <= info(results)
        assert ("zombie_sessions", f"session agent_{hidden}") in info(results)  # runs, under a name no one knows
        hidden_reason = next(f.reason for f in results["zombie_sessions"].info if hidden in f.entity)
        assert "`assistant`" in hidden_reason and "not recognised as Claude; left alone" in hidden_reason
        for name in ("person 0", "person 1"):
            assert ("orphan_processes", f"pid {keep[name]}") in info(results)
        lineage = {f.entity: f.reason for f in results["orphan_processes"].findings}
        assert f"seen in agent {zombie}'s pane at " in lineage[f"pid {tools[0]}"]
        assert "not a recognised agent program" in lineage[f"pid {tools[0]}"]
        assert f"seen in agent {detached}'s pane at " in lineage[f"pid {detached_claude}"]

        report = fix_in_process(world.settings)
        for name, pid in keep.items():
            assert alive(pid), f"{name}'s Claude (pid {pid}) ended; API requests: {api.seen.requests}"
        assert report.ok, [o.line() for o in report.outcomes if not o.ok] + [r.line() for r in report.remaining]
        assert failing(observe(world.settings).results) == set()
        assert all(alive(pid) for pid in kept_tools)
        assert not any(alive(pid) for pid in (orphan_claude, leaked_claude, detached_claude))
        assert all(alive(pid) for pid in left)
        assert not world.session_pids([f"agent_{zombie}", f"agent_{leaked}"])

        # Claude reached our loopback server and nothing else: what it asked us, and where its sockets lead.
        assert {live, busy, hidden, "person-flags", "person-plain"} <= api.labels()
        assert _remote_hosts(list(keep.values())) <= set(LOOPBACK)  # any other host was refused by the proxy
    finally:
        for proc in leftovers:
            with contextlib.suppress(psutil.Error):
                proc.kill()  # psutil checks the start time: never another process
        world.teardown()
