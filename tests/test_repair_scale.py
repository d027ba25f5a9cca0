"""Repairs stay linear and their backups bounded: each phase builds its indexes once (counted, never timed), and
only this tool's backups beyond the newest N of a file or older than D days are removed, never a file's last."""

from __future__ import annotations

import os
import time
from functools import cached_property
from pathlib import Path

from helpers import fix_in_process

from fixers import apply, backups, effects
from fixers.plan import Options, Phase
from fixers.run import fix
from fixers.writers import Edits
from healthchecks import holding
from healthchecks.dialect import ScopeKind
from healthchecks.observe import observe
from healthchecks.sources.orchestrator import json_writer
from healthchecks.sources.orchestrator.json_writer import rewrite


def _counting(calls: dict[str, int], name: str, fn):
    def counted(*args, **kwargs):
        calls[name] = calls.get(name, 0) + 1
        return fn(*args, **kwargs)

    return counted


def test_each_repair_phase_builds_its_indexes_once(world, monkeypatch):
    """Orphans, a zombie session and ghosts in several task files: per phase one verification index, one process
    table (signalling phases), and in the record phase one set of edited ids and one class index, whatever the
    number of actions (the record phase once rebuilt `marks | prunes` per action: quadratic)."""
    tasks = [world.task() for _ in range(3)]
    for i in range(12):
        world.agent("working", None, task_id=tasks[i % 3])
    for i in range(2):
        world.agent("completed", "orphan", task_id=tasks[i % 3])
    world.agent("running", "shell", task_id=tasks[0])
    world.agent("running", "claude", task_id=tasks[1])
    world.start()
    per_phase: list[tuple[str, dict[str, int]]] = []
    calls: dict[str, int] = {}
    monkeypatch.setattr(apply, "failing_targets", _counting(calls, "targets", apply.failing_targets))
    monkeypatch.setattr(effects.Table, "read", classmethod(_counting(calls, "process table",
                                                                      effects.Table.read.__func__)))
    monkeypatch.setattr(json_writer, "_classes", _counting(calls, "class index", json_writer._classes))
    ids = cached_property(_counting(calls, "edited ids", Edits.ids.func))
    ids.__set_name__(Edits, "ids")
    monkeypatch.setattr(Edits, "ids", ids)
    def watched(phase: Phase):
        fn = apply.PHASES[phase]

        def run(*args):
            before = dict(calls)
            try:
                return fn(*args)
            finally:
                spent = {k: v - before.get(k, 0) for k, v in calls.items() if v - before.get(k, 0)}
                per_phase.append((fn.__name__, spent))

        return run

    for phase in (Phase.PROCESSES, Phase.SESSIONS, Phase.RECORDS):
        monkeypatch.setitem(apply.PHASES, phase, watched(phase))

    report = fix_in_process(world.settings)

    assert report.ok, report.remaining
    assert [name for name, _ in per_phase] == ["_processes", "_sessions", "_records"]
    done = [o for o in report.outcomes if o.status == "done"]
    assert len(done) >= 12 + 2 + 1  # every ghost, orphan and the zombie: many actions per phase
    assert dict(per_phase) == {
        "_processes": {"targets": 1, "process table": 1},
        "_sessions": {"targets": 1, "process table": 1},
        "_records": {"targets": 1, "edited ids": 1, "class index": 1},
    }
    assert calls["targets"] == 3  # one verification index per phase, none per action


def _backup(workspace: Path, name: str, stamp: str, age_days: float, marked: bool = True) -> Path:
    path = workspace / "registry" / "backups" / f"{name}.{stamp}.bak"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    moment = time.time() - age_days * 86400
    os.utime(path, (moment, moment))
    if marked:
        backups.mark(path)
    return path


def test_backups_keep_the_newest_per_file_and_never_a_files_last(tmp_path):
    ws = tmp_path / "ws"
    many = [_backup(ws, "TASK-1__AGENT_REGISTRY.json", f"20260101-00000{i}-000000000", 1) for i in range(5)]
    old_but_last = _backup(ws, "registry__GLOBAL_REGISTRY.json", "20250101-000000-000000000", 400)
    old = _backup(ws, "registry__state.sqlite3", "20250101-000000-000000000", 40)
    recent = _backup(ws, "registry__state.sqlite3", "20260101-000000-000000000", 1)
    strangers = [
        _backup(ws, "TASK-1__AGENT_REGISTRY.json", "20200101-000000-000000000", 900, marked=False),  # no mark
        _backup(ws, "notes", "x", 900),  # marked, but not a name this tool gives
    ]
    journal = ws / "registry" / "backups" / "registry__GLOBAL_REGISTRY.json.20240101-000000-000000000.journal"
    journal.write_text("set aside")

    removed = backups.prune(ws, keep=2, days=30)

    assert sorted(removed) == sorted([*many[:3], old])
    assert all(p.exists() for p in [*many[3:], old_but_last, recent, *strangers, journal])


def test_a_backup_a_write_makes_is_marked_so_it_can_be_pruned(world):
    world.agent("working", None)
    world.write_registries()
    path = world.global_path
    result = rewrite(path, ScopeKind.GLOBAL, lambda data: data.update(note=1) or ["noted"],
                     workspace=world.workspace, lock_timeout=5)
    assert result.backup is not None and result.backup == backups.path_for(world.workspace, path,
                                                                       result.backup.name.split(".")[-2])
    assert os.getxattr(result.backup, backups.MARKER) == backups.MARK_VALUE
    assert backups.NAME.fullmatch(result.backup.name)


def _ghosts_in_three_files(world) -> int:
    """Ghosts spread over three task files (and the global registry): the registry files a fix round writes."""
    tasks = [world.task() for _ in range(3)]
    for i in range(6):
        world.agent("working", None, task_id=tasks[i % 3])
    world.agent("running", "claude", task_id=tasks[0])  # its server runs: the marks need no --allow-server-down
    world.start()
    return 1 + len(tasks)


def test_a_fix_round_dry_runs_its_writes_once(world, monkeypatch):
    """The plan's writes are made once without writing before the person is asked, and not again when the round
    starts (it once was: before the prompt, then at the round's start); each file is still written once, checked
    under its lock at that moment."""
    files = _ghosts_in_three_files(world)
    calls: dict[str, int] = {}
    monkeypatch.setattr(json_writer, "dry_run", _counting(calls, "dry run", json_writer.dry_run))
    monkeypatch.setattr(json_writer, "prepare", _counting(calls, "prepare", json_writer.prepare))
    monkeypatch.setattr(holding, "load", _counting(calls, "records read again", holding.load))

    report = fix_in_process(world.settings)

    assert report.ok, report.remaining
    assert calls["dry run"] == files  # one per file written, for the whole round
    assert calls["prepare"] == 2 * files  # that dry run, and the write's own under the file's lock
    assert "records read again" not in calls  # the dry run took the records the plan was made from (unchanged)


def test_a_dry_run_is_made_again_when_the_records_changed_since(world, monkeypatch):
    """The guard stays: when a registry changes between the dry run and the round (here while the person is asked),
    the round makes its dry run again on what is there now."""
    files = _ghosts_in_three_files(world)
    calls: dict[str, int] = {}
    monkeypatch.setattr(json_writer, "dry_run", _counting(calls, "dry run", json_writer.dry_run))
    monkeypatch.setattr(holding, "load", _counting(calls, "records read again", holding.load))

    def confirm(plan):
        path = world.global_path
        path.write_bytes(path.read_bytes().replace(b'"created_at"', b'"created_at" ', 1))  # same JSON, new bytes
        return True, "test"

    report = fix(observe(world.settings), world.settings, Options(), dry_run=False, confirm=confirm,
                 show=lambda lines: None)

    assert report.ok, report.remaining
    assert calls["dry run"] == 2 * files
    assert calls["records read again"] == 1  # by the round's dry run: the records had changed
