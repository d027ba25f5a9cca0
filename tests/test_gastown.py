"""Gas Town's town judged and repaired on real worlds: its own tmux server (the socket derived from the town as Gas
Town derives it), sessions made with its GT_* environment, pid files as TrackPID writes them, and bystanders (a
person's session on a private server standing in for the default one, a crew session running nothing, Claudes
carrying another town's pair or a live session's). The town's files are never written."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace

import psutil
from helpers import alive, info, judge, run_health

from fixers.apply import Options
from fixers.run import fix
from healthchecks import processes, sightings, sources
from healthchecks.observe import observe
from healthchecks.sources.gastown import reader as gastown
from healthchecks.sources.gastown.world import TownWorld, lstart, town_demo


def _failing(obs) -> dict[str, set[str]]:
    return {cid: {f.entity for f in r.failing} for cid, r in obs.results.items() if r.failing}


def test_the_socket_is_derived_from_the_town_as_gas_town_derives_it(tmp_path, monkeypatch):
    town = tmp_path / "My Town.v2"
    town.mkdir()
    monkeypatch.delenv("GT_TMUX_SOCKET", raising=False)
    digest = hashlib.sha256(os.path.realpath(town).encode()).hexdigest()[:6]
    assert gastown.town_socket(town) == f"my-town-v2-{digest}"  # lowercased, runs of [^a-z0-9-] one `-`
    monkeypatch.setenv("GT_TMUX_SOCKET", "auto")
    assert gastown.town_socket(town) == f"my-town-v2-{digest}"
    monkeypatch.setenv("GT_TMUX_SOCKET", "mine")
    assert gastown.town_socket(town) == "mine"


def test_every_fault_found_and_fixed_exactly_no_bystander_touched(tmp_path):
    world = town_demo(tmp_path)
    try:
        files = world.files()
        obs = observe(world.settings)
        assert obs.snapshot.registries.source == gastown.NAME
        failing = _failing(obs)
        judged = {c: (r.status, r.reason, [f.line() for f in r.findings]) for c, r in obs.results.items()}
        assert failing.pop("zombie_sessions", None) == {"session gt-furiosa", "session bd-refinery"}, judged  # not crew
        assert failing.pop("stale_pid_files") == {"pid file bd-nux.pid", "pid file hq-deacon.pid"}
        (orphan,) = failing.pop("orphan_processes")
        assert failing == {}
        info = {(f.check, f.entity) for f in obs.info}
        assert ("stale_pid_files", "pid file gt-witness.pid") in info  # a bare pid proves nothing
        orphan_pid = int(orphan.split()[1])
        others = {p.pid for p in world.standins()} - {orphan_pid}  # the person's, the other towns', the agents'
        sessions, town = world.live_sessions(), world.town_sessions()
        fix(obs, world.settings, Options(), dry_run=False, confirm=lambda plan: (True, "test"), show=lambda _: None)
        assert world.files() == files  # never written
        assert world.town_sessions() == town - {"gt-furiosa", "bd-refinery"}
        assert world.live_sessions() == sessions  # the person's server untouched
        assert not psutil.pid_exists(orphan_pid) or psutil.Process(orphan_pid).status() == psutil.STATUS_ZOMBIE
        assert {p.pid for p in world.standins()} >= others
        assert set(_failing(observe(world.settings))) == {"stale_pid_files"}  # Gas Town's files: a person's call
    finally:
        world.teardown()


def test_the_command_line_names_gas_town_everywhere(tmp_path):
    world = TownWorld(tmp_path, socket=f"hc-cli-{os.getpid()}-{tmp_path.name[-6:]}")  # --gt-socket, not derived
    try:
        world.member("hq-mayor", "mayor")
        world.member("gt-crew-max", "gastown/crew/max", "gastown", "shell", pid_file=None)
        world.start()
        files = world.files()
        s = world.settings
        done = run_health(tmp_path, "--source", gastown.NAME, "--gt-town", str(world.town), "--gt-socket",
                          world.town_socket, "--claude-match", s.claude_match, "--grace", str(s.grace),
                          "--tmux-socket", world.socket_name, "--findings-json", str(tmp_path / "f.json"),
                          "--fix", "--yes")
        assert done.returncode == 0, done.stdout[-2000:]
        doc = json.loads((tmp_path / "f.json").read_text())
        assert doc["settings"]["source"] == "gastown" and doc["settings"]["session_prefix"] == ["hq-", "bd-", "gt-"]
        assert "records: gastown" in done.stdout
        assert world.files() == files and world.town_sessions() == {"hq-mayor", "gt-crew-max"}
    finally:
        world.teardown()


def test_demo_picture_findings_and_metrics_name_gas_town(tmp_path):
    done = run_health(tmp_path, "--demo", "--demo-source", gastown.NAME, "--findings-json", str(tmp_path / "f.json"),
                      "--metrics-file", str(tmp_path / "m.prom"), "--report-dir", str(tmp_path / "r"))
    assert done.returncode == 1, done.stdout[-2000:]
    doc = json.loads((tmp_path / "f.json").read_text())
    assert doc["settings"]["source"] == "gastown"
    assert {f["check"] for f in doc["findings"] if f["severity"] == "fail"} == {
        "zombie_sessions", "orphan_processes", "stale_pid_files"}
    assert 'records_source{source="gastown",' in (tmp_path / "m.prom").read_text()
    html = "".join(p.read_text() for p in (tmp_path / "r").rglob("*.html"))
    assert "gastown" in html and "hc-picture" in html and "gt-furiosa" in html


def test_a_given_socket_reaches_only_its_own_run(tmp_path, monkeypatch):
    """--gt-socket is this run's: its settings carry it to the reader, and a later run on the same town without it
    reads the socket derived from the town, never one an earlier run was given (no state kept between runs)."""
    monkeypatch.delenv("GT_TMUX_SOCKET", raising=False)
    world = TownWorld(tmp_path, socket=f"hc-given-{os.getpid()}-{tmp_path.name[-6:]}")  # not what the path derives
    try:
        world.member("hq-mayor", "mayor")
        world.start()
        assert world.town_socket != gastown.town_socket(world.town)
        values = {"--gt-town": str(world.town), "--gt-socket": world.town_socket}
        name, town = sources.resolve(tmp_path / "none", gastown.NAME, values)
        agents = sources.load(town, name, 5.0, sources.given(name, values)).authority.agents
        assert [a.id for a in agents] == ["hq-mayor"]
        assert [a.id for a in observe(world.settings).snapshot.registries.authority.agents] == ["hq-mayor"]
        values = {"--gt-town": str(world.town)}
        name, town = sources.resolve(tmp_path / "none", gastown.NAME, values)
        assert sources.load(town, name, 5.0, sources.given(name, values)).authority.agents == ()  # derived: none
    finally:
        world.teardown()


def test_a_session_launched_with_another_sessions_pair_is_not_the_towns(tmp_path):
    """A session named like the town's whose launch environment names this town but another session (a copy of an
    agent's environment, a server whose global environment carries an agent's): not a record of the town, so never
    a zombie to end, even running only a shell; listed as untracked information."""
    world = TownWorld(tmp_path)
    try:
        world.member("hq-mayor", "mayor")
        world.member("gt-copy", "gastown/polecats/copy", "gastown", "shell", None, launch={"GT_SESSION": "hq-mayor"})
        world.start()
        obs = observe(world.settings)
        assert [a.id for a in obs.snapshot.registries.authority.agents] == ["hq-mayor"]
        assert _failing(obs) == {}
        assert ("leaked_sessions", "session gt-copy") in {(f.check, f.entity) for f in obs.info}
    finally:
        world.teardown()


def _carrying(world: TownWorld, session: str) -> int:
    """The pid of the world's Claude outside tmux whose GT_SESSION names ``session``."""
    return next(p.pid for p in world.standins() if p.environ().get("GT_SESSION") == session)


def test_a_gone_sessions_pair_alone_never_ends_a_claude(tmp_path):
    """GT_ROOT + GT_SESSION are inherited by everything an agent starts (a person's Claude opened from its shell) and
    anyone can set them: with the session gone they are information, unless the town's pid file for that very
    session names this very process (pid and start time), as TrackPID wrote it for the pane's process, the agent."""
    world = TownWorld(tmp_path)
    try:
        world.member("hq-mayor", "mayor")
        world.member("gt-slit", "gastown/polecats/slit", "gastown", outlives=True)  # its pid file names it
        for session in ("gt-nux", "gt-ace", "gt-max"):
            world.gone_pair(session, f"gastown/polecats/{session[3:]}", "gastown")
        world.start()
        pids = {session: _carrying(world, session) for session in ("gt-nux", "gt-ace", "gt-max")}
        folder = world.town / gastown.PIDS
        (folder / "gt-ace.pid").write_text(f"{pids['gt-ace']}|Thu Jan  1 09:00:00 2026\n")  # another start time
        (folder / "gt-other.pid").write_text(f"{pids['gt-max']}|{lstart(pids['gt-max'])}\n")  # another session's
        obs = observe(world.settings)
        slit = world.panes["gt-slit"]
        assert _failing(obs).get("orphan_processes") == {f"pid {slit}"}
        reasons = {f.entity: f.reason for f in obs.info if f.check == "orphan_processes"}
        for session, pid in pids.items():
            assert f"session '{session}'" in reasons[f"pid {pid}"]
            assert "no pid file or lineage proves it was launched there" in reasons[f"pid {pid}"]
        fix(obs, world.settings, Options(), dry_run=False, confirm=lambda plan: (True, "test"), show=lambda _: None)
        assert all(alive(pid) for pid in pids.values())
        assert not alive(slit)
    finally:
        world.teardown()


def test_a_claude_seen_in_its_sessions_pane_is_its_orphan_once_the_session_is_gone(tmp_path):
    """Lineage is the other proof: an earlier run saw this very process (pid and start) in that session's pane."""
    world = TownWorld(tmp_path)
    try:
        world.member("hq-mayor", "mayor")
        world.member("gt-slit", "gastown/polecats/slit", "gastown", pid_file=None, launch={"HC_IGNORE_HUP": "1"})
        world.start()
        settings = replace(world.settings, sightings=tmp_path / "state" / sightings.FILE)
        sightings.record(settings.sightings, sightings.seen(observe(settings).analysis))  # what an earlier run leaves
        slit = world.panes["gt-slit"]
        world.restart_server(["gt-slit"])
        assert alive(slit)
        assert ("orphan_processes", f"pid {slit}") in info(judge(world.settings))  # no lineage read: information
        obs = observe(settings)
        assert _failing(obs) == {"orphan_processes": {f"pid {slit}"}}
        (found,) = obs.results["orphan_processes"].failing
        assert "seen in agent gt-slit's pane" in found.reason
    finally:
        world.teardown()


def test_a_session_launched_between_the_towns_read_and_the_process_scan_retakes_the_snapshot(tmp_path, monkeypatch):
    """The town's server is read with the records, before the processes are scanned: a session Gas Town launches in
    between has a Claude the read shows in no pane (its pid file comes seconds later, after its start-up waits).
    The fingerprint taken after the scan sees the server's panes changed, and the snapshot is taken again."""
    world = TownWorld(tmp_path)
    try:
        world.member("hq-mayor", "mayor")
        world.start()
        late = world.member("gt-late", "gastown/polecats/late", "gastown", pid_file=None)
        scan = processes.scan

        def launched_first(*args, **kwargs):
            if world.members[-1] is late and late.session not in world.town_sessions():
                world.launch(late)  # once: between the first read of the town and its process scan
            return scan(*args, **kwargs)

        monkeypatch.setattr(processes, "scan", launched_first)
        obs = observe(world.settings)
        pid = _carrying(world, "gt-late")
        assert obs.snapshot.attempts == 2 and obs.snapshot.stable
        assert "gt-late" in {a.id for a in obs.snapshot.registries.authority.agents}
        assert ("orphan_processes", f"pid {pid}") not in info(obs.results)
        assert _failing(obs) == {}
    finally:
        world.teardown()


def _ghosts(obs) -> set[str]:
    return {f.entity for f in obs.results["ghost_agents"].failing}


def test_without_bd_the_ledger_is_one_information_line_and_every_other_check_stands(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no `bd` there (beads installs it elsewhere, if at all)
    world = TownWorld(tmp_path)
    try:
        world.member("hq-mayor", "mayor")
        world.member("gt-furiosa", "gastown/polecats/furiosa", "gastown", "shell")
        world.start()
        obs = observe(world.settings)
        assert _failing(obs) == {"zombie_sessions": {"session gt-furiosa"}}
        (line,) = [f for f in obs.info if f.check == "ghost_agents"]
        assert line.entity == "the beads ledger" and "not read: no `bd` on PATH" in line.reason
    finally:
        world.teardown()


def test_the_ledger_read_through_bd_finds_agent_beads_working_with_no_session(tmp_path, monkeypatch):
    """Agent beads as Gas Town writes them, in the town's ledger and a rig's, read through a stand-in `bd` shaped as
    beads' source prints `bd list --json`: active (working, running, spawning) with the session gone is a ghost;
    with the session live, done, idle, or of a prefix no rig of this town has, it is not."""
    world = TownWorld(tmp_path)
    try:
        world.member("hq-mayor", "mayor")
        world.member("gt-nux", "gastown/polecats/nux", "gastown")
        world.bead("hq-mayor", "working")  # live
        world.bead("hq-deacon", "spawning")  # ghost
        world.bead("gt-gastown-polecat-nux", "working", "gastown")  # live
        world.bead("gt-gastown-polecat-rictus", "working", "gastown")  # ghost
        world.bead("gt-gastown-polecat-toast", "done", "gastown")  # finished
        world.bead("gt-gastown-crew-max", "idle", "gastown")
        world.bead("bd-beads-witness", "running", "beads", legacy=True)  # ghost: the old structured field
        world.bead("zz-other-polecat-slit", "working", "gastown")  # another town's rig: not this town's
        for rig in ("gastown", "beads"):
            (world.town / rig).mkdir()
        world.start()
        monkeypatch.setenv("PATH", f"{world.bd()}:{os.environ['PATH']}")
        files = world.files()
        obs = observe(world.settings)
        assert _ghosts(obs) == {"agent hq-deacon", "agent gt-rictus", "agent bd-witness"}
        assert not [f for f in obs.info if f.entity == "the beads ledger"]
        fix(obs, world.settings, Options(), dry_run=False, confirm=lambda plan: (True, "test"), show=lambda _: None)
        assert world.files() == files  # the ledger is never written: reported only
    finally:
        world.teardown()


def test_a_bd_that_does_not_answer_within_the_bound_is_one_information_line(tmp_path, monkeypatch):
    world = TownWorld(tmp_path)
    try:
        world.member("hq-mayor", "mayor")
        world.bead("hq-deacon", "working")
        world.start()
        monkeypatch.setenv("PATH", f"{world.bd(delay=30)}:{os.environ['PATH']}")
        obs = observe(replace(world.settings, lock_timeout=1.0))
        assert _failing(obs) == {} and obs.snapshot.duration < 10
        (line,) = [f for f in obs.info if f.check == "ghost_agents"]
        assert "did not answer within" in line.reason
    finally:
        world.teardown()


def test_an_agent_beads_session_follows_from_its_id_as_gas_town_parses_it():
    from healthchecks.sources.gastown.ledger import session_of

    assert session_of("hq-mayor") == "hq-mayor" and session_of("gt-deacon") == "hq-deacon"
    assert session_of("hq-dog-alpha") == "hq-dog-alpha"
    assert session_of("gt-gastown-witness") == "gt-witness" and session_of("ff-witness") == "ff-witness"
    assert session_of("gt-my-rig-polecat-nux") == "gt-nux"  # a hyphenated rig
    assert session_of("gt-gastown-polecat-witness") == "gt-witness"  # a polecat named like a role
    assert session_of("gt-gastown-crew-joe-2") == "gt-crew-joe-2"
    assert session_of("ff-polecat-nux") == "ff-nux"  # prefix == rig: the rig left out
    assert session_of("gt-gastown-polecat") is None and session_of("x-mayor") is None


def test_two_towns_at_once_each_record_is_judged_on_its_own_towns_server_alone(tmp_path, monkeypatch):
    """Two towns on one machine both have sessions named hq-*: this town's ledger has hq-deacon working with no
    session on its server (a ghost) and hq-dog-alpha done, while the other town runs both (a shell only). Whether the
    other town's server is left unchecked (seen) or checked too, its sessions are never this town's records': the
    ghost stays a ghost, and the other town's hq-deacon is no zombie and its hq-dog-alpha no leak of this town."""
    here, there = TownWorld(tmp_path / "here"), TownWorld(tmp_path / "there")
    try:
        here.member("hq-mayor", "mayor")
        here.bead("hq-deacon", "working")
        here.bead("hq-dog-alpha", "done")
        there.member("hq-mayor", "mayor")
        there.member("hq-deacon", "deacon", running="shell")
        there.member("hq-dog-alpha", "dog", running="shell", pid_file=None)
        there.start()
        here.start()
        monkeypatch.setenv("PATH", f"{here.bd()}:{os.environ['PATH']}")
        theirs = there.town_sessions()
        both = replace(here.settings, tmux_sockets=(here.socket_name, there.town_socket))
        for settings in (here.settings, both):
            obs = observe(settings)
            assert _failing(obs) == {"ghost_agents": {"agent hq-deacon"}}, settings.tmux_sockets
        # nor remembered as this town's (a process or a session seen in its pane), nor counted as tracked
        assert {s.agent for s in sightings.seen(obs.analysis)} == {"hq-mayor"}
        assert obs.figures.untracked_sessions == 3  # the other town's three hq-* sessions are no record of here
        fix(obs, both, Options(), dry_run=False, confirm=lambda plan: (True, "test"), show=lambda _: None)
        assert there.town_sessions() == theirs  # the other town's sessions untouched
    finally:
        here.teardown()
        there.teardown()


def test_a_town_whose_server_restarted_is_judged_once_its_new_sessions_are_past_grace(tmp_path):
    """restart_server launches the kept sessions again: the world hands over its town only once those are past its
    grace, as World.start does, so what is judged is what was built (the demo's zombies were young, not judged)."""
    world = TownWorld(tmp_path, grace=2.0)
    try:
        world.member("hq-mayor", "mayor")
        world.member("gt-furiosa", "gastown/polecats/furiosa", "gastown", "shell")  # a zombie
        world.member("gt-slit", "gastown/polecats/slit", "gastown", outlives=True)  # the restart: its orphan
        world.start()
        assert _failing(observe(world.settings)).get("zombie_sessions") == {"session gt-furiosa"}
    finally:
        world.teardown()
