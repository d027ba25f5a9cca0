"""Read claude-squad's records (`<dir>/state.json`, smtg-ai/claude-squad, format stable since e852651).

Its instances are the one record (`instances[]`); a record's session is `claudesquad_` + its title with all
whitespace removed and `.` turned into `_`; a record's worktree is its own directory (a process working inside it is
that instance's) only as claude-squad makes one: `<dir>/worktrees/<branch>_<hex>`, a `git worktree add` of the
instance's repository. Any other worktree_path (a home, `.`, a relative path, a folder that is no worktree of that
repository) would hand whatever works below it to the instance: a problem line. claude-squad writes this file
without a lock and last writer wins, so it is only ever read here, once, boundedly: never written (no writer).
Every problem names the file, the path inside it and what is wrong (healthchecks.records.Problem).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ... import safe_files
from ...dialect import ScopeKind
from ...records import AgentRecord, Fingerprint, HomeRecord, Problem, Records, RegistryError, Scope, is_path
from ...safe_files import file_fingerprint, open_top, read_below, read_bytes, read_stamped
from ...strict_json import parse
from .dialect import CLAUDE_SQUAD

NAME = "claude-squad"  # its line in healthchecks.sources.SOURCES
STATE = "state.json"
DEFAULT_DIR = "~/.claude-squad"
WORKTREES = "worktrees"  # where it makes every instance's worktree (session/git/worktree.go)
GITFILE_BYTES = 4096  # a worktree's `.git` file holds one line: `gitdir: <the repository's .git/worktrees/<name>>`
# Its store's own options: (flag, help, default); `locate` turns their values into the store's directory.
OPTIONS = (("--claude-squad-dir", f"claude-squad's directory, holding state.json and worktrees/ (default "
                                  f"{DEFAULT_DIR})", DEFAULT_DIR),)


def locate(values: Mapping[str, str]) -> Path:
    return Path(values.get("--claude-squad-dir") or DEFAULT_DIR).expanduser().absolute()


def session_name(title: str) -> str:
    """claude-squad's session name for a title (session/tmux/tmux.go at 434ca25)."""
    # str.split() splits on what re's \s matches (every code point checked): all whitespace gone, no regex a record
    return "claudesquad_" + "".join(title.split()).replace(".", "_")


def present(workspace: Path) -> bool:
    return safe_files.present(workspace / STATE)


def flocked(workspace: Path, records: Records | None) -> set[Path]:
    """claude-squad writes state.json with no lock at all: nothing to hold (an unstable read is reported)."""
    return set()


def fingerprint(workspace: Path, before: Fingerprint = ()) -> Fingerprint:
    """state.json's stamp (safe_files.stamp): exact even for a rewrite in place within one tick of the file clock."""
    return file_fingerprint(workspace / STATE, workspace, before)


def _where(i: int, field: str = "") -> str:
    """An instance's place in the file, made only for a problem (six a record, 1,000 records: a millisecond)."""
    return f"$.instances[{i}]" + (f".{field}" if field else "")


def _not_text(path: Path, i: int, field: str) -> RegistryError:
    """The line for a field that must be a string (non-empty where required); each field is checked inline where it
    is read: a checking call a field was a fifth of a record's time."""
    return RegistryError(Problem(str(path), _where(i, field), "expected a non-empty string"))


def _not_a_worktree(name: str, worktrees: _Worktrees, repo: Any) -> str | None:
    """Why ``name`` in the worktrees folder is not a git worktree of ``repo``: its `.git` must be a file (read
    bounded, through no symlink) whose gitdir lies in `<repo>/.git/worktrees/`."""
    if not is_path(repo) or not os.path.isabs(repo):
        return "has no absolute repo_path to be a worktree of"
    try:
        raw = worktrees.gitfile(name)
    except RegistryError as exc:
        return f"is not a git worktree (.git: {exc.problem.what})"
    text = raw.decode("utf-8", "replace").rstrip("\r\n")
    if not text.startswith("gitdir: ") or "\0" in text or "\n" in text:
        return "is not a git worktree (its .git file names no gitdir)"
    home = os.path.join(worktrees.folder, name)
    gitdir = os.path.normpath(os.path.join(home, text[len("gitdir: "):]))  # a relative one is the worktree's
    real = worktrees.real
    if real(os.path.dirname(gitdir)) != real(os.path.join(repo, ".git", "worktrees")):
        return f"is not a worktree of its repo_path {repo!r:.120} (its .git names {gitdir!r:.120})"
    return None


class _Worktrees:
    """claude-squad's worktrees folder, as one load asks of it for every record: whether a name stands in it (one
    listing, made when first asked; where it cannot be listed, an lexists a name: an lexists each cost 1,000 lstats
    for 1,000 instances, half the reader's time), whether a path names a folder right inside it, and a worktree's
    `.git` (read from the folder opened once a load; close it after)."""

    def __init__(self, folder: Path, real: Callable[[str], str]) -> None:
        self.folder, self.real = folder, real
        self.text = str(folder)
        self.real_text = real(self.text)
        # a clean absolute folder: `<folder>/<name>` of a plain name is then clean and right inside it, told by
        # one prefix comparison (the checks a path at a time were a third of a record's time)
        clean = os.path.isabs(self.text) and os.path.normpath(self.text) == self.text and self.text != "/" \
            and "\0" not in self.text
        self.prefix = self.text + "/" if clean else None
        self.listed: list[frozenset[str] | None] = []
        self.fd: int | None = None

    def plain_name(self, value: str) -> str | None:
        """The name of ``value`` when it is `<folder>/<name>` of a plain name (so clean, and right inside)."""
        if self.prefix is None or not value.startswith(self.prefix):
            return None
        name = value[len(self.prefix):]
        return name if name not in ("", ".", "..") and "/" not in name and "\0" not in name else None

    def present(self, name: str) -> bool:
        if not self.listed:
            try:
                self.listed.append(frozenset(os.listdir(self.folder)))
            except OSError:
                self.listed.append(None)
        names = self.listed[0]
        return name in names if names is not None else os.path.lexists(self.folder / name)

    def gitfile(self, name: str) -> bytes:
        """The `.git` of the folder ``name`` in it, bounded, through no symlink: from the folder opened when first
        asked, as read_bytes reads it from the folder opened each time (100 live worktrees: 0.55x its time)."""
        if not name:  # `<folder>/` itself (a worktrees folder at `/`): no name to read below it
            return read_bytes(self.folder / name / ".git", self.folder, GITFILE_BYTES)
        if self.fd is None:  # unopenable: the same line for each record that asks, as read_bytes gives it
            self.fd = open_top(self.folder, os.path.join(self.folder, name, ".git"))
        return read_below(self.fd, self.folder, (name, ".git"), GITFILE_BYTES)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _why_not_home(value: str, worktrees: _Worktrees) -> str | None:
    """Why ``value`` is no worktree path claude-squad made (None: it is one, or it is gone: see _home)."""
    real = worktrees.real
    if (name := worktrees.plain_name(value)) is None:
        if "\0" in value or not os.path.isabs(value) or os.path.normpath(value) != value:
            return "is not a clean absolute path"
        if real(os.path.dirname(value)) != worktrees.real_text:
            return f"is not right inside claude-squad's {worktrees.folder}"
        name = os.path.basename(value)
    return "" if not worktrees.present(name) else None


def _home(path: Path, i: int, worktree: dict[str, Any], worktrees: _Worktrees) -> str | None:
    """The instance's worktree when claude-squad made it, else RegistryError (one line); None when it has none
    (Pause removed it). A home or `.` (resolved against this run's directory) would make every Claude below it
    the instance's: only a clean absolute path right inside its worktrees folder, a real git worktree of the
    instance's repository, counts."""
    value = worktree.get("worktree_path")
    if value is not None and not isinstance(value, str):
        raise _not_text(path, i, "worktree.worktree_path")
    if not value:
        return None
    why = _why_not_home(value, worktrees)
    if why == "":
        return None  # Pause or Kill removed it: nothing works there
    if why is None:
        why = _not_a_worktree(os.path.basename(value), worktrees, worktree.get("repo_path"))
    if why:
        raise RegistryError(Problem(str(path), _where(i, "worktree.worktree_path"),
                                    f"{value!r:.120} {why}; it attributes nothing"))
    return value


def _record(path: Path, i: int, item: Any, worktrees: _Worktrees) -> AgentRecord:
    if not isinstance(item, dict):
        raise RegistryError(Problem(str(path), _where(i), "expected an object"))
    title = item.get("title")
    if not isinstance(title, str) or not title:
        raise _not_text(path, i, "title")
    status = item.get("status")
    if type(status) is not int:  # `true` must not read as Ready (1): a JSON int is an int, a bool is not
        raise RegistryError(Problem(str(path), _where(i, "status"), "expected an integer"))
    worktree = item.get("worktree") or {}
    if not isinstance(worktree, dict):
        raise RegistryError(Problem(str(path), _where(i, "worktree"), "expected an object"))
    home = _home(path, i, worktree, worktrees)
    created = item.get("created_at")
    if created is not None and not isinstance(created, str):
        raise _not_text(path, i, "created_at")
    program = item.get("program")  # the command it launched
    if program is not None and not isinstance(program, str):
        raise _not_text(path, i, "program")
    return AgentRecord(title, None, status, session_name(title), ScopeKind.STATE, (created,),
                       CLAUDE_SQUAD.status_class(status), HomeRecord(home) if home else None,
                       (program,) if program else ())


def _broken(workspace: Path, path: Path, problem: Problem, before: Fingerprint) -> Records:
    return Records(workspace, Scope(path, ScopeKind.STATE, errors=(problem,)), (), CLAUDE_SQUAD, NAME,
                   fingerprint=before)


def load(workspace: Path, timeout: float = 0.0) -> Records:
    path = workspace / STATE
    try:
        raw, stamp, mtime = read_stamped(path, workspace)
    except RegistryError as exc:
        return _broken(workspace, path, exc.problem, ((str(path), None),))
    before = ((str(path), stamp),)
    try:
        data = parse(path, raw)
        if not isinstance(data, dict):
            raise RegistryError(Problem(str(path), "$", "expected an object"))
        items = data.get("instances") or []
        if not isinstance(items, list):
            raise RegistryError(Problem(str(path), "$.instances", "expected an array"))
        # one load's real paths, each resolved once: every record's worktrees folder and most records' repository
        # are the same few folders (resolving them again for each of 1,000 records cost 20x the file's parse)
        real = functools.cache(os.path.realpath)
        worktrees = _Worktrees(workspace / WORKTREES, real)
        try:
            agents = tuple(_record(path, i, item, worktrees) for i, item in enumerate(items))
        finally:
            worktrees.close()
        seen: set[str] = set()
        for i, rec in enumerate(agents):
            if rec.id in seen:
                raise RegistryError(Problem(str(path), f"$.instances[{i}].title", f"{rec.id!r} appears twice"))
            seen.add(rec.id)
    except RegistryError as exc:
        return _broken(workspace, path, exc.problem, before)
    state = Scope(path, ScopeKind.STATE, stamp, mtime, (), {}, agents, keys=frozenset(data), stamp=stamp)
    return Records(workspace, state, (), CLAUDE_SQUAD, NAME, fingerprint=before)
