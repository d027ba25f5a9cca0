"""Claude Code Agent Teams: the real files read, each fault found and repaired exactly, a person's panes and
Claude beside the teams never failing and never touched (#30098). Real tmux servers, real processes, real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from helpers import alive, failing, fix_in_process, info, plan_now

from fixers.plan import make_plan
from fixers.writers import Edits
from healthchecks import sources
from healthchecks.checks import DUPLICATE_AGENTS, agent_finding
from healthchecks.observe import observe
from healthchecks.processes import start_ticks
from healthchecks.results import CheckResult
from healthchecks.sources.agent_teams import reader as agent_teams
from healthchecks.sources.agent_teams import world as teams
from healthchecks.sources.agent_teams import writer
from healthchecks.sources.agent_teams.world import Member, TeamWorld
from healthchecks.testing.world import World

REPO_EXAMPLES = Path(__file__).parent / "data" / "agent-teams"  # written by the real 2.1.332 (see its README)


@pytest.fixture
def team_world(tmp_path: Path):
    with TeamWorld(tmp_path) as world, world.environment():
        yield world


def _config(world: TeamWorld, team: teams.Team) -> Path:
    return world.config_dir / "teams" / team.name / "config.json"


def test_the_real_files_of_2_1_332_are_read_as_written(tmp_path: Path):
    """The files the real binary wrote: two tmux teammates placed by pane id, the lead as the owner (pid +
    procStart), the lead and in-process members not records of their own."""
    config = tmp_path / "claude"
    shutil.copytree(REPO_EXAMPLES, config)
    records = sources.load(config, "agent-teams", 1.0)
    assert records.ok, records.all_errors
    (team,) = records.members
    assert team.name == "session-26156660" and team.owner[:2] == (23129, 392196)
    assert [(r.id, r.extra.pane, r.status) for r in team.agents] == [
        ("mate1@session-26156660", "%1", "active"), ("mate2@session-26156660", "%2", "active")]


def test_auto_takes_agent_teams_alone_only_when_no_orchestrator_store_is_there(tmp_path: Path):
    config = tmp_path / "claude"
    shutil.copytree(REPO_EXAMPLES, config)
    workspace = tmp_path / "ws" / ".agent-workspace"
    places = {"--claude-config-dir": str(config), "--claude-squad-dir": str(tmp_path / "no-squad"),
              "--agent-deck-db": str(tmp_path / "no-deck" / "state.db")}
    assert sources.resolve(workspace, "auto", places) == ("agent-teams", config)
    (workspace / "registry").mkdir(parents=True)
    (workspace / "registry" / "GLOBAL_REGISTRY.json").write_text('{"agents": {}, "tasks": {}}')
    # both stores present: auto reads every one of them (--source all), the workspace's as its own auto does
    assert sources.resolve(workspace, "auto", places) == ("all", workspace)
    assert sources.present_stores(workspace, places) == (("auto", workspace), ("agent-teams", config))
    assert sources.load(workspace, "auto", 1.0).source == "json"


@pytest.mark.parametrize(("content", "expected"), [
    (b"{", "truncated"),
    (b'{"members": {}}', "$.members: is dict, expected an array"),
    (b'{"leadProcess": {"pid": "x"}}', "$.leadProcess.pid"),
    (b'{"members": [{"backendType": "tmux", "agentId": "mate", "tmuxPaneId": "%1"}]}', "expected <name>@<team>"),
    (b'{"members": [{"backendType": "tmux", "agentId": "a@t", "tmuxPaneId": "leader; rm"}]}', "tmux pane id"),
    (b"\xff\xfe", "invalid UTF-8"),
])
def test_hostile_config_is_one_line_naming_file_and_path(tmp_path: Path, content: bytes, expected: str):
    config = tmp_path / "claude"
    (config / "teams" / "session-x").mkdir(parents=True)
    path = config / "teams" / "session-x" / "config.json"
    path.write_bytes(content)
    records = agent_teams.load(config, 1.0)
    (line,) = map(str, records.all_errors)
    assert line.startswith(f"{path}: ") and expected in line and "\n" not in line


def test_a_fifo_or_a_symlink_in_a_configs_place_is_refused_without_reading_it(tmp_path: Path):
    config = tmp_path / "claude"
    (config / "teams" / "fifo").mkdir(parents=True)
    os.mkfifo(config / "teams" / "fifo" / "config.json")
    (config / "teams" / "link").mkdir(parents=True)
    (config / "teams" / "link" / "config.json").symlink_to("/etc/passwd")
    errors = tuple(map(str, agent_teams.load(config, 1.0).all_errors))
    assert len(errors) == 2 and any("not a regular file" in e for e in errors) and any("symlink" in e for e in errors)


def test_a_healthy_team_beside_a_persons_panes_gives_no_failing_finding_and_fix_changes_nothing(team_world):
    team = team_world.team(3)
    team_world.start()
    before = _config(team_world, team).read_bytes()
    seen = observe(team_world.settings)
    assert failing(seen.results) == set()
    assert not any(f.severity == "info" and "member" in f.entity for r in seen.results.values() for f in r.info)
    report = fix_in_process(team_world.settings)
    assert report.plan.actions == [] and report.plan.held == []
    assert _config(team_world, team).read_bytes() == before
    assert all(alive(m.pid) for m in team.members) and alive(team.lead_pid)


def test_every_fault_is_found_exactly_and_nothing_of_a_persons(team_world):
    live = team_world.team([Member("ok"), Member("ghost", running=False), Member("dead", fault="dead"),
                            Member("reused", fault="reused"), Member("twin", fault="duplicate")])
    orphaned = team_world.team(2, in_tmux=False, lead_alive=False)
    stale = team_world.team([Member("gone", running=False)], lead_alive=False)
    team_world.start()
    stray = team_world.stray_swarm_server()
    seen = observe(team_world.settings)
    twin = next(p.pid for p in team_world.standins()
                if f"twin@{live.name}" in p.cmdline() and p.pid != live.members[4].pid)
    assert failing(seen.results) == {
        ("ghost_agents", f"member ghost@{live.name}"),
        ("ghost_agents", f"member dead@{live.name}"),
        ("ghost_agents", f"member reused@{live.name}"),
        ("duplicate_agents", f"member twin@{live.name} (pid {twin})"),
        ("orphan_processes", f"pid {twin}"),
        *{("orphaned_agents", f"member {orphaned.agent_id(m)} (pid {m.pid})") for m in orphaned.members},
        ("stale_scopes", f"team {stale.name}"),
        ("leaked_servers", f"server claude-swarm-{orphaned.lead_pid}"),
        ("leaked_servers", f"server {stray}"),
    }
    reused = next(f for f in seen.results["ghost_agents"].failing if "reused" in f.entity)
    assert "runs no process carrying --agent-id" in reused.reason  # the person's shell now holds that pane id


def test_fix_repairs_each_fault_exactly_and_never_touches_a_persons_panes(team_world):
    healthy = team_world.team(2)
    live = team_world.team([Member("ok"), Member("ghost", running=False), Member("twin", fault="duplicate")])
    orphaned = team_world.team(2, in_tmux=False, lead_alive=False)
    stale = team_world.team([Member("gone", running=False)], lead_alive=False)
    team_world.start()
    stray = team_world.stray_swarm_server()
    person = {pid for pid in _pane_pids(team_world, team_world.person.values())}
    healthy_bytes, live_bytes = _config(team_world, healthy).read_bytes(), _config(team_world, live).read_bytes()
    report = fix_in_process(team_world.settings)
    kinds = sorted(o.action.kind for o in report.outcomes)
    outcomes = "\n".join(["outcomes:", *(o.line() for o in report.outcomes), "plan:", *report.plan.lines()])
    assert kinds == ["archive_scope", "archive_scope", "kill_process", "kill_server", "kill_server"], outcomes
    assert all(o.status == "done" for o in report.outcomes), outcomes
    # a ghost under a live lead is the lead's to settle: held, its config.json never written
    assert report.plan.held and all("owner" in h.line() for h in report.plan.held)
    assert _config(team_world, live).read_bytes() == live_bytes
    assert _config(team_world, healthy).read_bytes() == healthy_bytes
    assert failing(observe(team_world.settings).results) == {("ghost_agents", f"member ghost@{live.name}")}
    archive = team_world.config_dir / "archive"
    assert {p.name for p in archive.glob("teams-*/*")} == {
        stale.name, orphaned.name, f"tasks-{stale.name}", f"tasks-{orphaned.name}"}
    assert not (team_world.config_dir / "tasks" / stale.name).exists()
    assert not any(alive(m.pid) for m in orphaned.members)
    assert all(alive(m.pid) for m in healthy.members) and alive(live.members[0].pid)
    assert {f"claude-swarm-{orphaned.lead_pid}", stray}.isdisjoint(_running(team_world))
    assert set(_pane_pids(team_world, team_world.person.values())) == person and all(alive(p) for p in person)


def test_a_lead_whose_pid_was_reused_is_dead_and_a_live_lead_never_is(tmp_path: Path):
    """Identity is pid + procStart: our own pid with another start time is a reused pid (the lead is dead); with
    its own start time it is alive whatever else is true."""
    config = tmp_path / "claude"
    (config / "teams" / "session-a").mkdir(parents=True)
    path = config / "teams" / "session-a" / "config.json"
    ticks = start_ticks(os.getpid())
    settings = _plain_settings(tmp_path, config)
    path.write_text(json.dumps({"name": "session-a", "leadProcess": {"pid": os.getpid(), "procStart": str(ticks)},
                                "members": []}))
    assert failing(observe(settings).results) == set()
    path.write_text(json.dumps({"name": "session-a", "leadProcess": {"pid": os.getpid(), "procStart": str(ticks + 1)},
                                "members": []}))
    (finding,) = observe(settings).results["stale_scopes"].failing
    assert finding.entity == "team session-a" and "now belongs to another process" in finding.reason


def test_a_lead_in_another_pid_namespace_is_never_judged_by_its_pid(tmp_path: Path):
    config = tmp_path / "claude"
    (config / "teams" / "session-c").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait(10)
    lead = {"pid": dead.pid, "procStart": "1", "pidSpace": "vm#pid:[1]"}  # no namespace has inode 1
    (config / "teams" / "session-c" / "config.json").write_text(json.dumps({"leadProcess": lead, "members": []}))
    assert failing(observe(_plain_settings(tmp_path, config)).results) == set()


def test_ghost_members_of_a_dead_lead_are_marked_inactive_with_a_backup_and_never_under_a_live_one(tmp_path: Path):
    config = tmp_path / "claude"
    (config / "teams" / "session-b").mkdir(parents=True)
    path = config / "teams" / "session-b" / "config.json"
    dead = subprocess.Popen(["true"])
    dead.wait(10)
    member = {"agentId": "m@session-b", "name": "m", "tmuxPaneId": "%5", "backendType": "tmux", "isActive": True}
    path.write_text(json.dumps({"name": "session-b", "leadProcess": {"pid": dead.pid, "procStart": "1"},
                                "members": [member]}))
    edits = Edits(frozenset({"m@session-b"}), frozenset(), frozenset(), False, "now", tmp_path / "unused")
    records = agent_teams.load(config, 1.0)
    assert writer.check(records, edits, 1.0) is None
    written = writer.write(records, edits, 1.0)
    assert written.done == {"m@session-b": "isActive: false (config.json backed up first)"}
    assert json.loads(path.read_text())["members"][0]["isActive"] is False
    (backup,) = (config / "registry" / "backups").iterdir()
    assert backup.name.startswith("teams__session-b__config.json.") and backup.name.endswith(".bak")
    assert json.loads(backup.read_text())["members"][0]["isActive"] is True
    alive_lead = {"pid": os.getpid(), "procStart": str(start_ticks(os.getpid()))}
    path.write_text(json.dumps({"name": "session-b", "leadProcess": alive_lead, "members": [member]}))
    before = path.read_bytes()
    records = agent_teams.load(config, 1.0)
    assert "never written" in writer.check(records, edits, 1.0)
    assert "never written" in writer.write(records, edits, 1.0).failed["m@session-b"]
    assert path.read_bytes() == before


def test_an_orchestrator_agent_under_an_agent_teams_run_is_information_naming_its_manager(team_world):
    team_world.team(1)
    team_world.start()
    launch = [str(team_world.standin), *World.launch_args("You are a worker agent.")]
    proc = subprocess.Popen(launch, cwd=team_world.project, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    team_world.popen.append(proc)
    _wait_started(team_world, proc.pid)
    # and an orchestrator's agent session on the lead's server: Agent Teams names no sessions, so it is none of its
    team_world.tmux(team_world.lead_server, "new-session", "-d", "-s", "agent_worker-120000-abcdef", "cat")
    seen = observe(team_world.settings)
    assert failing(seen.results) == set()
    (finding,) = [f for f in seen.results["orphan_processes"].info if f.entity == f"pid {proc.pid}"]
    assert "ClaudeOrchestratorMCP's" in finding.reason
    assert not [f for r in seen.results.values() for f in r.info if "agent_worker-120000-abcdef" in f.entity]
    assert plan_now(team_world.settings)[1].actions == []


def test_a_teammate_under_an_orchestrator_run_is_information_naming_agent_teams(world):
    world.agent("running", "claude")
    world.start()
    argv = [str(world.standin), "--agent-id", "mate1@session-0badcafe", "--agent-name", "mate1", "--team-name",
            "session-0badcafe", "--parent-session-id", "0badcafe-0000-0000-0000-000000000000"]
    proc = subprocess.Popen(argv, cwd=world.home, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    world.popen.append(proc)
    world.wait_ready(2, 10)
    seen = observe(world.settings)
    assert ("orphan_processes", f"pid {proc.pid}") in info(seen.results)
    assert ("orphan_processes", f"pid {proc.pid}") not in failing(seen.results)
    (finding,) = [f for f in seen.results["orphan_processes"].info if f.entity == f"pid {proc.pid}"]
    assert "Claude Code Agent Teams's" in finding.reason


# -- helpers ------------------------------------------------------------------------------------------------
def _plain_settings(tmp_path: Path, config: Path):
    from healthchecks.settings import Settings

    return Settings(workspace=config, tmux_sockets=(f"hc-absent-{os.getpid()}",), source="agent-teams",
                    claude_match="^claude-nothing-here$", grace=0)


def _pane_pids(world: TeamWorld, panes) -> list[int]:
    out = world.tmux(world.lead_server, "list-panes", "-a", "-F", "#{pane_id} #{pane_pid}")
    pids = dict(line.split() for line in out.splitlines())
    return [int(pids[p]) for p in panes if p in pids]


def _running(world: TeamWorld) -> set[str]:
    running = set()
    for name in world.servers():
        probe = subprocess.run(["tmux", "-L", name, "list-sessions"], env=world.env, capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=10)
        if probe.returncode == 0:
            running.add(name)
    return running


def _wait_started(world: TeamWorld, pid: int) -> None:
    deadline = time.monotonic() + 10
    while not any(p.pid == pid for p in world.standins()):
        assert time.monotonic() < deadline
        time.sleep(0.02)


# -- the writer never follows a symlink out of the config dir (issue 26, items 1-3) ------------------------------
def _dead_lead_team(config: Path, name: str) -> Path:
    """A team whose lead is proven dead (a reaped pid, another start time), one tmux member; its config.json."""
    dead = subprocess.Popen(["true"])
    dead.wait(10)
    member = {"agentId": f"m@{name}", "name": "m", "tmuxPaneId": "%5", "backendType": "tmux", "isActive": True}
    path = config / "teams" / name / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"name": name, "leadProcess": {"pid": dead.pid, "procStart": "1"}, "members": [member]}))
    return path


def _persons_folder(root: Path, files: int) -> dict[Path, bytes]:
    """A person's folder beside the config dir, and every file in it with its bytes (compared after)."""
    root.mkdir(parents=True)
    for i in range(files):
        (root / f"notes-{i:03d}.json").write_bytes(f"a person's note {i}\n".encode())
    return _contents(root)


def _contents(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _edits(marks: set[str] = frozenset(), archives: set[str] = frozenset()) -> Edits:
    return Edits(frozenset(marks), frozenset(), frozenset(), False, "now", Path("unused"), frozenset(archives))


def test_marking_never_writes_through_a_symlink_planted_at_a_temporary_name(tmp_path: Path):
    """An agent plants `.config.json.hc-<pid>` (every pid) as a symlink to a person's file: the mark writes a new
    temporary of its own (O_CREAT|O_EXCL|O_NOFOLLOW, a name nobody can guess) and the person's file stays as it was."""
    config, person = tmp_path / "claude", tmp_path / "person" / "thesis.txt"
    person.parent.mkdir()
    person.write_bytes(b"a person's thesis\n")
    path = _dead_lead_team(config, "session-p")
    planted = path.with_name(f".config.json.hc-{os.getpid()}")
    planted.symlink_to(person)
    written = writer.write(agent_teams.load(config, 1.0), _edits(marks={"m@session-p"}), 1.0)
    assert written.done == {"m@session-p": "isActive: false (config.json backed up first)"}, written.failed
    assert person.read_bytes() == b"a person's thesis\n"
    assert not path.is_symlink() and json.loads(path.read_text())["members"][0]["isActive"] is False
    assert planted.is_symlink() and os.readlink(planted) == str(person)  # left as it was, never followed
    assert sorted(p.name for p in path.parent.iterdir()) == [planted.name, "config.json"]  # no temporary left


def test_backups_are_this_tools_own_and_a_persons_files_are_never_pruned(tmp_path: Path):
    """The Agent Teams writer backs up through fixers/backups.py like every writer: its name pattern and marker,
    pruned only among its own; a symlinked backups folder refused in one line, nothing written."""
    from fixers import backups

    config = tmp_path / "claude"
    path = _dead_lead_team(config, "session-q")
    person = _persons_folder(tmp_path / "persons-files", 250)
    (config / "archive").mkdir()
    (config / "archive" / "backups").symlink_to(tmp_path / "persons-files")  # the old backups folder, linked away
    folder = backups.folder(config)
    folder.mkdir(parents=True)
    mine = folder / "teams__session-q__config.json.20200101-000000-000000000.bak"  # this tool's name, no marker
    mine.write_bytes(b"a person's copy\n")
    for _ in range(3):
        path.write_text(path.read_text().replace('"isActive": false', '"isActive": true'))
        written = writer.write(agent_teams.load(config, 1.0), _edits(marks={"m@session-q"}), 1.0)
        assert set(written.done) == {"m@session-q"}, written.failed
        assert _contents(tmp_path / "persons-files") == person
        backups.prune(config, 1, 30.0)  # the older of this tool's own go
    assert mine.read_bytes() == b"a person's copy\n"
    (kept,) = [p for p in folder.iterdir() if p != mine]
    assert backups.NAME.fullmatch(kept.name) and os.getxattr(kept, backups.MARKER) == backups.MARK_VALUE
    assert json.loads(kept.read_text())["members"][0]["isActive"] is True
    # a backups folder linked to a person's folder: refused in one line, config.json not written
    shutil.rmtree(folder)
    folder.symlink_to(tmp_path / "persons-files")
    before = path.read_bytes()
    path.write_text(before.decode().replace('"isActive": false', '"isActive": true'))
    before = path.read_bytes()
    records = agent_teams.load(config, 1.0)
    refused = writer.check(records, _edits(marks={"m@session-q"}), 1.0)
    assert refused and "\n" not in refused and "symlink" in refused
    (line,) = writer.write(records, _edits(marks={"m@session-q"}), 1.0).failed.values()
    assert "\n" not in line and "symlink" in line
    assert path.read_bytes() == before and _contents(tmp_path / "persons-files") == person


def test_archiving_a_stale_team_never_follows_a_symlinked_tasks_or_archive_folder(tmp_path: Path):
    """`tasks/` linked to a person's ~/projects: the team is archived, the person's ~/projects/webapp is not its
    belonging and stays (one line says so). `archive/` linked to ~/Documents: refused in one line, nothing moved."""
    config = tmp_path / "claude"
    path = _dead_lead_team(config, "webapp")
    projects = _persons_folder(tmp_path / "projects" / "webapp", 3)
    (config / "tasks").symlink_to(tmp_path / "projects")
    team = str(path.parent)
    written = writer.write(agent_teams.load(config, 1.0), _edits(archives={team}), 1.0)
    assert _contents(tmp_path / "projects") == projects
    detail = written.done[team]
    assert "\n" not in detail and "symlink" in detail and f"{config / 'tasks' / 'webapp'}" in detail
    (moved,) = (config / "archive").glob("teams-*/webapp")
    assert (moved / "config.json").is_file() and not path.exists()
    # tasks/<team> itself a symlink to a person's folder: not the team's either
    (config / "tasks").unlink()
    (config / "tasks").mkdir()
    (config / "tasks" / "webapp3").symlink_to(tmp_path / "projects" / "webapp")
    path = _dead_lead_team(config, "webapp3")
    written = writer.write(agent_teams.load(config, 1.0), _edits(archives={str(path.parent)}), 1.0)
    detail = written.done[str(path.parent)]
    assert "\n" not in detail and "not the team's" in detail and (config / "tasks" / "webapp3").is_symlink()
    assert _contents(tmp_path / "projects") == projects
    # archive/ linked to a person's Documents: nothing moved there, one line
    path = _dead_lead_team(config, "webapp2")
    shutil.move(config / "archive", tmp_path / "archived-before")
    documents = _persons_folder(tmp_path / "Documents", 2)
    (config / "archive").symlink_to(tmp_path / "Documents")
    records = agent_teams.load(config, 1.0)
    refused = writer.check(records, _edits(archives={str(path.parent)}), 1.0)
    assert refused and "\n" not in refused and "symlink" in refused
    (line,) = writer.write(records, _edits(archives={str(path.parent)}), 1.0).failed.values()
    assert "\n" not in line and "symlink" in line
    assert _contents(tmp_path / "Documents") == documents and path.is_file()


def test_duplicates_none_of_which_is_in_its_place_are_listed_for_a_person_never_dropped(team_world):
    """A fixer that finds nothing exact to act on (which of two carriers is the record's is for a person) hands the
    finding to the plan's "not fixed automatically" list: a failing finding is never silently left out of a plan."""
    live = team_world.team([Member("ok")])
    team_world.start()
    seen = observe(team_world.settings)
    agent = seen.analysis.records.agent(live.agent_id(live.members[0]))
    assert agent is not None
    finding = agent_finding(DUPLICATE_AGENTS, agent, "2 processes carry its id, none in its recorded place; for a "
                            "person", noun="member")
    plan = make_plan(seen.analysis, {DUPLICATE_AGENTS: CheckResult.judged_from(DUPLICATE_AGENTS, [finding])})
    assert plan.actions == [] and plan.manual == [finding]
