"""claude-squad's records (state.json) judged and repaired on real worlds: a private tmux server standing in for
the default server it uses, stand-ins run as its `program`, bystanders. state.json is never written."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable

import psutil
import pytest
from helpers import run_health

from fixers.apply import Options
from fixers.run import fix
from healthchecks.observe import observe
from healthchecks.records import HomeRecord
from healthchecks.sources.claude_squad import reader as claude_squad
from healthchecks.sources.claude_squad.world import PAUSED, READY, RUNNING, SquadWorld, squad_demo
from healthchecks.text import MAX_LINE


def _fix(world: SquadWorld):
    return fix(observe(world.settings), world.settings, Options(), dry_run=False,
               confirm=lambda plan: (True, "test"), show=lambda lines: None)


def _failing(obs) -> dict[str, set[str]]:
    return {cid: {f.entity for f in r.failing} for cid, r in obs.results.items() if r.failing}


@pytest.fixture
def healthy(tmp_path):
    world = SquadWorld(tmp_path)
    world.instance("fix auth", READY)
    world.instance("add.tests now", RUNNING)
    world.instance("paused one", PAUSED)  # its session kept for Resume (v1.0.10+): normal
    world.user_session("work", world.project)
    world.persons_claude(world.project)
    yield world.start()
    world.teardown()


def test_healthy_fleet_has_no_failing_finding_and_fix_changes_nothing(healthy):
    before = healthy.state_path.read_bytes()
    sessions, pids = healthy.live_sessions(), {p.pid for p in healthy.standins()}
    obs = observe(healthy.settings)
    assert obs.snapshot.registries.source == claude_squad.NAME
    assert _failing(obs) == {}
    assert "claudesquad_pausedone" in sessions and "claudesquad_add_testsnow" in sessions
    _fix(healthy)
    assert healthy.state_path.read_bytes() == before
    assert healthy.live_sessions() == sessions
    assert {p.pid for p in healthy.standins()} == pids


def test_faults_found_and_each_repair_ends_exactly_its_target(tmp_path):
    world = squad_demo(tmp_path)
    try:
        before = world.state_path.read_bytes()
        obs = observe(world.settings)
        failing = _failing(obs)
        assert failing["ghost_agents"] == {"agent docs pass", "agent perf"}
        assert failing["zombie_sessions"] == {"session claudesquad_lint"}
        (orphan,) = failing["orphan_processes"]
        lost = [f for f in obs.info if "lost record" in f.reason]
        assert [f.entity for f in lost] == ["session claudesquad_migrate"] and "hc-migrate_" in lost[0].reason
        assert "leaked_sessions" not in failing  # the paused instance's live session is normal
        sessions = world.live_sessions()
        others = {p.pid for p in world.standins()} - {int(orphan.split()[1])}  # the person's Claude among them
        _fix(world)
        assert world.state_path.read_bytes() == before  # never written
        assert world.live_sessions() == sessions - {"claudesquad_lint"}  # the lost record's session stays
        pid = int(orphan.split()[1])
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert {p.pid for p in world.standins()} >= others
        after = _failing(observe(world.settings))
        assert set(after) == {"ghost_agents"}  # records are a person's (or claude-squad's) to change
    finally:
        world.teardown()


def test_hostile_state_is_one_line_error(tmp_path):
    world = SquadWorld(tmp_path)
    try:
        world.state_path.write_text('{"instances": [{"title": "x", "status": true}]}')
        records = claude_squad.load(world.workspace)
        expected = f"{world.state_path}: $.instances[0].status: expected an integer"
        assert tuple(map(str, records.all_errors)) == (expected,)
    finally:
        world.teardown()


@pytest.mark.parametrize("recorded", ["home", ".", "relative"])
def test_a_worktree_claude_squad_did_not_make_attributes_nothing(tmp_path, monkeypatch, recorded):
    """An instance whose worktree_path is the person's home, `.` or a relative path (both resolved against the
    monitor's working directory, here the home): the person's interactive Claude in ~/other-project outside tmux
    is theirs, and the record is one problem line."""
    world = SquadWorld(tmp_path)
    other = world.home / "other-project"
    other.mkdir()
    path = {"home": str(world.home), ".": ".", "relative": "other-project"}[recorded]
    world.instance("fix auth", READY)
    world.instance("odd", READY, worktree_path=path)
    world.persons_claude(other)
    monkeypatch.chdir(world.home)
    try:
        world.start()
        pids, sessions = {p.pid for p in world.standins()}, world.live_sessions()
        obs = observe(world.settings)
        (line,) = map(str, obs.snapshot.registries.all_errors)
        assert line.startswith(f"{world.state_path}: $.instances[1].worktree.worktree_path: ") and "\n" not in line
        assert "orphan_processes" not in _failing(obs)
        _fix(world)
        assert {p.pid for p in world.standins()} == pids  # the person's Claude among them
        assert world.live_sessions() == sessions
    finally:
        world.teardown()


def _worktree(world: SquadWorld, how: str) -> str:
    """A path inside claude-squad's worktrees folder that is not a git worktree of the instance's repository."""
    folder = world.workspace / "worktrees"
    made = folder / (f"hc: $: {how}_0123456789abcdef" if how.startswith("colon") else f"hc-{how}_0123456789abcdef")
    if how == "symlink":
        made.symlink_to(world.home, target_is_directory=True)
        return str(made)
    made.mkdir()
    if how == "git-symlink":
        (world.home / "gitfile").write_text(f"gitdir: {world.project}/.git/worktrees/x\n")
        (made / ".git").symlink_to(world.home / "gitfile")
    elif how == "other-repo":
        (made / ".git").write_text(f"gitdir: {world.home}/.git/worktrees/x\n")
    elif how in ("git-folder", "colon-git-folder"):
        (made / ".git").mkdir()
    elif how == "dotdot":
        return f"{folder}/../{made.name}"
    return str(made)


@pytest.mark.parametrize("how, problem", [
    ("plain", "not a git worktree (.git: file is missing)"),
    ("symlink", "a symlink"),
    ("git-symlink", "a symlink"),
    ("git-folder", "is a directory"),
    # a name holding ": $: " is still one name: the problem is the .git's own, not the rest of its path
    ("colon-git-folder", "is not a git worktree (.git: is a directory, not a file); it attributes nothing"),
    ("other-repo", "not a worktree of its repo_path"),
    ("dotdot", "not a clean absolute path"),
])
def test_a_worktree_that_is_not_a_git_worktree_of_its_repository_is_one_line(tmp_path, how, problem):
    world = SquadWorld(tmp_path)
    try:
        world.instance("odd", READY, None, worktree_path=_worktree(world, how))
        world.instance("resting", PAUSED, None)  # its worktree removed by Pause: no problem, no directory
        world.write_registries()
        (line,) = map(str, claude_squad.load(world.workspace).all_errors)
        assert line.startswith(f"{world.state_path}: $.instances[0].worktree.worktree_path: "), line
        assert problem in line and "\n" not in line
    finally:
        world.teardown()


def test_worktrees_claude_squad_made_are_read_without_a_problem(tmp_path):
    world = SquadWorld(tmp_path)
    try:
        made = world.instance("fix auth", READY, None)
        world.instance("resting", PAUSED, None)
        world.write_registries()
        records = claude_squad.load(world.workspace)
        assert records.ok, records.all_errors
        program = str(world.standin)  # the command it launched, kept beside the worktree (a paused one has none)
        assert [r.extra for r in records.authority.agents] == [HomeRecord(made["worktree"]["worktree_path"]), None]
        assert [r.program for r in records.authority.agents] == [(program,), (program,)]
    finally:
        world.teardown()


def test_a_10_mb_title_is_cut_in_every_line_a_person_reads_and_whole_in_the_findings_json(tmp_path):
    """An instance titled with 10 MB (its session name too): the terminal (checks, plan, -rA, status line) and the
    HTML report show a bounded line saying how much was left out; the findings JSON keeps the title whole."""
    world = SquadWorld(tmp_path / "world")
    try:
        world.instance("fix auth", READY)
        title = "T" * 10_000_000
        ghost = world.instance("big", RUNNING, None)  # its session gone: a ghost named by its title
        ghost["title"] = ghost["worktree"]["session_name"] = title
        world.start()
        s, doc, reports = world.settings, tmp_path / "f.json", tmp_path / "reports"
        args = ["--source", "claude-squad", "--claude-squad-dir", str(world.workspace), "--claude-match",
                s.claude_match, "--grace", str(s.grace), "--tmux-socket", world.socket_name]
        checked = run_health(tmp_path, *args, "--findings-json", str(doc), "-rA", "--fix", "--dry-run")
        status = run_health(tmp_path, *args, "--status-line")
    finally:
        world.teardown()
    assert checked.returncode == 1, checked.stdout[-3000:] + checked.stderr[-3000:]
    (finding,) = [f for f in json.loads(doc.read_text())["findings"] if f["check"] == "ghost_agents"]
    assert finding["entity"]["id"] == title  # whole where machines read it
    for proc in (checked, status):
        assert len(proc.stdout) + len(proc.stderr) < 30_000, (len(proc.stdout), len(proc.stderr))
        left_out = [int(n.replace(",", "")) for n in re.findall(r"… \(([\d,]+) more characters\)", proc.stdout)]
        assert left_out and all(n > len(title) - MAX_LINE for n in left_out), left_out
        assert max(map(len, proc.stdout.splitlines())) < MAX_LINE + 100
    assert "not fixed automatically: ghost_agents: agent TTT" in checked.stdout  # the plan's line, cut too
    assert (reports / "latest.html").stat().st_size < 1_000_000


def test_a_file_read_below_a_folder_opened_once_reads_and_refuses_as_read_bytes(tmp_path):
    """safe_files.read_below (claude-squad's 100 `.git` files from one descriptor of their folder) gives the bytes
    read_bytes gives, and for every file it must refuse the same one line; the folder stays open for the next."""
    from healthchecks.records import RegistryError
    from healthchecks.safe_files import open_top, read_below, read_bytes

    folder = tmp_path / "worktrees"
    (outside := tmp_path / "outside").mkdir()
    (outside / ".git").write_text("gitdir: /elsewhere\n")
    shapes = {"plain": "gitdir: /repo/.git/worktrees/plain\n", "big": "x" * 5000, "missing": None}
    for name, text in shapes.items():
        (folder / name).mkdir(parents=True)
        if text is not None:
            (folder / name / ".git").write_text(text)
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    (folder / "git-linked").mkdir()
    (folder / "git-linked" / ".git").symlink_to(outside / ".git")
    (folder / "git-folder" / ".git").mkdir(parents=True)
    (folder / "fifo").mkdir()
    os.mkfifo(folder / "fifo" / ".git")
    (folder / "a-file").write_text("not a folder")

    def outcome(read: Callable[..., bytes], *args: object) -> bytes | str:
        try:
            return read(*args)
        except RegistryError as exc:
            return f"{type(exc).__name__}: {exc.problem}"  # Missing too: a listing may skip it

    fd = open_top(folder, folder / "plain" / ".git")
    try:
        for name in sorted(os.listdir(folder)):
            expected = outcome(read_bytes, folder / name / ".git", folder, 4096)
            assert outcome(read_below, fd, folder, (name, ".git"), 4096) == expected, name
        assert outcome(read_below, fd, folder, ("plain", ".git")) == shapes["plain"].encode()
        with pytest.raises(ValueError):
            read_below(fd, folder, ("..", "outside", ".git"))
    finally:
        os.close(fd)
