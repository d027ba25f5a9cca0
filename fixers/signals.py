"""End process trees, proving each root's identity (PID + start time) right before the first signal."""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import psutil

from healthchecks import processes
from healthchecks.processes import Proc, start_ticks


@dataclass(frozen=True)
class Ended:
    status: str  # "done", "already gone", "skipped", "failed"
    detail: str = ""


def _uid(proc: psutil.Process) -> int | None:
    try:
        return proc.uids().real
    except psutil.Error:
        return None


def _bound(pid: int, ticks: int) -> psutil.Process | None:
    """A psutil handle on exactly this process, or None. Made first, identity checked after: a PID
    reused before that is caught here, one reused later by psutil's own check at signal time."""
    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None
    return process if start_ticks(pid) == ticks else None


def identity_lost(pid: int, ticks: int) -> Ended | None:
    """Why ``pid`` is no longer the process identified by ``ticks`` (gone, or its PID reused), or None."""
    now = start_ticks(pid)
    if now is None:
        return Ended("already gone")
    if now != ticks:
        return Ended("skipped", f"pid {pid} now belongs to another process (start time differs); not signalled")
    return None


def _tree(
    pid: int, ticks: int, protected: frozenset[int], table: dict[int, Proc], children: dict[int, list[int]]
) -> list[psutil.Process] | Ended:
    """The root and its descendants that may be signalled: same user as this tool, never the suite itself."""
    me = os.geteuid()
    root = _bound(pid, ticks)
    if root is None:
        return identity_lost(pid, ticks) or Ended("already gone")
    try:
        if root.status() == psutil.STATUS_ZOMBIE:
            return Ended("already gone", "defunct; its parent has to reap it")
        if (uid := _uid(root)) != me:
            return Ended("skipped", f"owned by uid {uid}, not by this user (uid {me}); not signalled")
    except psutil.NoSuchProcess:
        return Ended("already gone")
    except psutil.AccessDenied:
        return Ended("failed", f"access denied reading pid {pid}")
    tree = [root]
    for child in processes.descendants(children, pid)[1:]:
        process = _bound(child, table[child].start_ticks)
        if process is not None and child not in protected and _uid(process) == me:
            tree.append(process)
    return tree


def end_trees(
    roots: Iterable[tuple[Hashable, int, float]], protected: frozenset[int], timeout: float = 5.0
) -> dict[Hashable, Ended]:
    """SIGTERM every tree, wait for all of them together (bounded), SIGKILL what is left.

    ``roots`` are (key, pid, start ticks); the result maps each key to how its root ended.
    ``protected`` PIDs (this suite and its ancestors) are never signalled.
    """
    result: dict[Hashable, Ended] = {}
    trees: dict[Hashable, list[psutil.Process]] = {}
    table = {p.pid: p for p in processes.scan(lambda name, argv: False)}  # one read for every tree, just now
    children = processes.children_of(table.values())
    for key, pid, ticks in roots:
        if pid in protected:
            result[key] = Ended("skipped", "this suite or one of its ancestors; never signalled")
            continue
        tree = _tree(pid, ticks, protected, table, children)
        if isinstance(tree, Ended):
            result[key] = tree
        else:
            trees[key] = tree
    denied: set[int] = set()
    signalled: list[psutil.Process] = []
    for tree in trees.values():
        for proc in tree:
            try:
                proc.terminate()  # psutil refuses to signal a PID that was reused since this object was made
                signalled.append(proc)
            except psutil.NoSuchProcess:
                pass
            except psutil.AccessDenied:
                denied.add(proc.pid)
    _, alive = psutil.wait_procs(signalled, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
        except psutil.AccessDenied:
            denied.add(proc.pid)
    _, still = psutil.wait_procs(alive, timeout=2.0)
    killed = {p.pid for p in alive}
    survivors = {p.pid for p in still}
    for key, tree in trees.items():
        root = tree[0] if tree else None
        if root is None:
            result[key] = Ended("skipped", "nothing to signal")
        elif root.pid in denied:
            result[key] = Ended("failed", f"access denied signalling pid {root.pid}")
        elif root.pid in survivors:
            result[key] = Ended("failed", f"pid {root.pid} survived SIGKILL")
        elif root.pid not in {p.pid for p in signalled}:
            result[key] = Ended("already gone")
        else:
            how = f"SIGKILL after {timeout:g}s" if root.pid in killed else "SIGTERM"
            result[key] = Ended("done", f"{len(tree)} process(es) ended ({how})")
    return result
