"""The other managers' stores through the command line: their options, `auto`'s choice, every output naming them."""

from __future__ import annotations

import json

from helpers import run_health

from healthchecks.sources.agent_deck.world import DeckWorld
from healthchecks.sources.claude_squad.world import PAUSED, READY, SquadWorld


def _args(world, tmp_path) -> list[str]:
    s = world.settings
    return ["--claude-match", s.claude_match, "--grace", str(s.grace), "--tmux-socket", world.socket_name,
            "--findings-json", str(tmp_path / "f.json")]


def test_auto_picks_claude_squad_only_without_an_orchestrator_workspace(tmp_path):
    world = SquadWorld(tmp_path)
    try:
        world.instance("one", READY)
        world.instance("resting", PAUSED)
        world.start()
        before = world.state_path.read_bytes()
        args = _args(world, tmp_path)
        done = run_health(tmp_path, *args, "--workspace", str(tmp_path / "none"), "--claude-squad-dir",
                          str(world.workspace), "--fix", "--yes")
        assert done.returncode == 0, done.stdout[-2000:]
        doc = json.loads((tmp_path / "f.json").read_text())
        assert doc["settings"]["source"] == "claude-squad" and doc["settings"]["session_prefix"] == "claudesquad_"
        assert "records: claude-squad" in done.stdout
        assert world.state_path.read_bytes() == before
        assert {"claudesquad_one", "claudesquad_resting"} <= world.live_sessions()
        # an orchestrator workspace present: auto stays with the orchestrator's sources
        world.workspace.joinpath("..", "ws").mkdir(exist_ok=True)
        done = run_health(tmp_path, *args, "--workspace", str(tmp_path / "ws"), "--claude-squad-dir",
                          str(world.workspace))
        assert json.loads((tmp_path / "f.json").read_text())["settings"]["source"] != "claude-squad"
    finally:
        world.teardown()


def test_a_claude_squad_worktree_at_the_persons_home_ends_nothing_of_theirs(tmp_path):
    """`--fix --yes` on a record whose worktree_path is the person's home: their interactive Claude in a project
    there, outside tmux, runs on; the record is one problem line."""
    world = SquadWorld(tmp_path)
    try:
        other = world.home / "other-project"
        other.mkdir()
        world.instance("one", READY)
        world.instance("odd", READY, worktree_path=str(world.home))
        world.persons_claude(other)
        world.start()
        pids = {p.pid for p in world.standins()}
        done = run_health(tmp_path, *_args(world, tmp_path), "--source", "claude-squad", "--claude-squad-dir",
                          str(world.workspace), "--fix", "--yes")
        assert {p.pid for p in world.standins()} == pids, done.stdout[-2000:]
        doc = json.loads((tmp_path / "f.json").read_text())
        (problem,) = [f for f in doc["findings"] if f["check"] == "registry_schema"]
        assert problem["reason"].startswith("$.instances[1].worktree.worktree_path: ")
        assert not [f for f in doc["findings"] if f["check"] == "orphan_processes"]
    finally:
        world.teardown()


def test_agent_deck_by_its_database_option(tmp_path):
    world = DeckWorld(tmp_path)
    try:
        world.row("api", "running")
        world.row("later", "stopped")
        world.start()
        done = run_health(tmp_path, *_args(world, tmp_path), "--source", "agent-deck", "--agent-deck-db",
                          str(world.db_path))
        assert done.returncode == 0, done.stdout[-2000:]
        doc = json.loads((tmp_path / "f.json").read_text())
        assert doc["settings"]["source"] == "agent-deck" and doc["settings"]["workspace"] == str(world.workspace)
        bad = run_health(tmp_path, "--source", "agent-deck", "--agent-deck-db", str(tmp_path / "x.db"))
        assert bad.returncode != 0 and "must name a state.db file" in bad.stderr + bad.stdout
    finally:
        world.teardown()
