"""End process trees, proving each root's identity (PID + start time) right before the first signal."""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import psutil

from healthchecks.processes import start_ticks


@dataclass(frozen=True)
class Ended:
    status: str  # "done", "already gone", "skipped", "failed"
    detail: str = ""


def _uid(proc: psutil.Process) -> int | None:
    try:
        return proc.uids().real
    except psutil.Error:
        return None


def _tree(pid: int, ticks: int, protected: frozenset[int]) -> list[psutil.Process] | Ended:
    """The root and its descendants that may be signalled: same user as this tool, never the suite itself.

    The psutil object is made first and the identity checked after: a PID reused before that is
    caught here, one reused later by psutil's own check at signal time.
    """
    me = os.geteuid()
    try:
        root = psutil.Process(pid)
        now = start_ticks(pid)
        if now is None:
            return Ended("already gone")
        if now != ticks:
            return Ended("skipped", f"pid {pid} now belongs to another process (start time differs); not signalled")
        if root.status() == psutil.STATUS_ZOMBIE:
            return Ended("already gone", "defunct; its parent has to reap it")
        if (uid := _uid(root)) != me:
            return Ended("skipped", f"owned by uid {uid}, not by this user (uid {me}); not signalled")
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return Ended("already gone")
    except psutil.AccessDenied:
        return Ended("failed", f"access denied reading pid {pid}")
    return [p for p in tree if p.pid not in protected and _uid(p) == me]


def end_trees(
    roots: Iterable[tuple[Hashable, int, float]], protected: frozenset[int], timeout: float = 5.0
) -> dict[Hashable, Ended]:
    """SIGTERM every tree, wait for all of them together (bounded), SIGKILL what is left.

    ``roots`` are (key, pid, start ticks); the result maps each key to how its root ended.
    ``protected`` PIDs (this suite and its ancestors) are never signalled.
    """
    result: dict[Hashable, Ended] = {}
    trees: dict[Hashable, list[psutil.Process]] = {}
    for key, pid, ticks in roots:
        if pid in protected:
            result[key] = Ended("skipped", "this suite or one of its ancestors; never signalled")
            continue
        tree = _tree(pid, ticks, protected)
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
