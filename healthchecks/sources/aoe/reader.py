"""Read agent-of-empires' records (`<app dir>/profiles/<profile>/sessions.json`; read at 2c3f897b).

The file is a JSON array of `Instance`s that aoe writes under a flock and renames into place (a temporary file in
the same folder, fsync, rename). The lock's name changed between releases (`.storage.lock` at 2c3f897b,
`sessions.json.lock` in another), so the renamed file is read whole, without any lock: a rename is never seen half
done, and the snapshot reads it again when its stamp changes meanwhile. A record's tmux session is not recorded:
it is `aoe_` + its title (every character but a letter, a digit, `-` and `_` made `_`, 20 at most) + `_` + the
first 8 characters of its id, on the default server. aoe's own poller marks dead agents `error`, so nothing here is
ever written (the source has no writer). Every problem names the file, the path inside it and what is wrong.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ... import safe_files
from ...dialect import ScopeKind, StatusClass
from ...records import AgentRecord, ConversationRecord, Fingerprint, Problem, Records, RegistryError, Scope
from ...safe_files import file_fingerprint, read_bytes, read_stamped
from ...strict_json import parse
from .dialect import AOE

NAME = "agent-of-empires"  # its line in healthchecks.sources.SOURCES
SESSIONS = "sessions.json"
CONFIG = "config.toml"  # in the app dir: `default_profile` names the profile used when none is given
BOOTSTRAP_PROFILE = "main"  # what aoe creates on a first run, when no profile exists
CONFIG_BYTES = 1024 * 1024
# `default_profile = "<name>"` as aoe writes it (toml::to_string_pretty: top-level keys before any table); a basic
# string without escapes (a profile is a folder name). tomllib is not in every Python this runs on.
_DEFAULT_PROFILE = re.compile(r'default_profile\s*=\s*"([^"\\]*)"\s*(?:#.*)?')
TITLE_CHARS = 20  # sanitize_session_name keeps this many characters (src/tmux/session.rs)
ID_CHARS = 8
_UNSAFE = re.compile(r"[^\w-]")  # what it replaces with `_`: neither alphanumeric (str.isalnum) nor `-` nor `_`
OPTIONS = (
    ("--aoe-dir", "agent-of-empires' app directory (default as aoe finds it: ${XDG_CONFIG_HOME:-~/.config}/"
                  "agent-of-empires on Linux, ~/.agent-of-empires elsewhere)", ""),
    ("--aoe-profile", "aoe profile whose sessions.json is read (default as aoe picks it: config.toml's "
                      "default_profile, else the first profile folder, else main)", ""),
)


def app_dir() -> Path:
    """aoe's app directory as it resolves it (src/session/mod.rs: dirs::config_dir() on Linux, home elsewhere)."""
    if not sys.platform.startswith("linux"):
        return Path.home() / ".agent-of-empires"
    config = os.environ.get("XDG_CONFIG_HOME", "")
    return (Path(config) if os.path.isabs(config) else Path.home() / ".config") / "agent-of-empires"


def _profile_name(name: Any) -> bool:
    return isinstance(name, str) and bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")


def default_profile(app: Path) -> str:
    """The profile aoe uses when none is given (config.rs resolve_default_profile): config.toml's default_profile,
    else the first profile folder by name (symlinks skipped: account-switcher aliases), else `main`. An unreadable
    config.toml is aoe's default configuration, as for aoe."""
    try:
        text = read_bytes(app / CONFIG, app, CONFIG_BYTES).decode("utf-8", "replace")
    except RegistryError:
        text = ""
    for line in text.splitlines():
        if line.lstrip().startswith("["):
            break  # a table: top-level keys are over
        if (found := _DEFAULT_PROFILE.fullmatch(line.strip())) and _profile_name(found.group(1)):
            return found.group(1)
    try:
        with os.scandir(app / "profiles") as entries:
            names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        names = []
    return names[0] if names else BOOTSTRAP_PROFILE


def locate(values: Mapping[str, str]) -> Path:
    """The profile's directory: the run's workspace (sessions.json is inside it)."""
    app = Path(values.get("--aoe-dir") or app_dir()).expanduser().absolute()
    profile = values.get("--aoe-profile") or default_profile(app)
    if not _profile_name(profile):
        raise ValueError(f"--aoe-profile {profile!r:.80} is not a profile name")
    return app / "profiles" / profile


def session_name(title: str, rid: str) -> str:
    """aoe's tmux session name for a record (Session::generate_name at 2c3f897b)."""
    return f"aoe_{_UNSAFE.sub('_', title[:TITLE_CHARS])}_{rid[:ID_CHARS]}"


def present(workspace: Path) -> bool:
    return safe_files.present(workspace / SESSIONS)


def flocked(workspace: Path, records: Records | None) -> set[Path]:
    """Nothing to hold: aoe renames the file into place (never half written), and its lock's name is not stable."""
    return set()


def fingerprint(workspace: Path, before: Fingerprint = ()) -> Fingerprint:
    """sessions.json's stamp (safe_files.stamp): a rename gives another file, a rewrite other bytes."""
    return file_fingerprint(workspace / SESSIONS, workspace, before)


def _text(item: dict[str, Any], key: str, i: int, path: Path, required: bool = True) -> str | None:
    """Item ``i``'s text at ``key`` (its place `$[i].key` is made only for a problem: thousands are read per run)."""
    value = item.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or "\0" in value:
        raise RegistryError(Problem(str(path), f"$[{i}].{key}", "expected a string"))
    return value


def _record(path: Path, i: int, item: Any) -> AgentRecord:
    if not isinstance(item, dict):
        raise RegistryError(Problem(str(path), f"$[{i}]", "expected an object"))
    rid, title = _text(item, "id", i, path), _text(item, "title", i, path)
    status = _text(item, "status", i, path)
    created = _text(item, "created_at", i, path, required=False)
    conversation = _text(item, "agent_session_id", i, path, required=False)
    # what it launched, most specific first: a custom command, the agent's name, the built-in agent it is detected as
    program = tuple(p for key in ("command", "tool", "detect_as") if (p := _text(item, key, i, path, False)))
    assert rid is not None and title is not None
    if not rid:
        raise RegistryError(Problem(str(path), f"$[{i}].id", "expected a non-empty string"))
    status_class = AOE.status_class(status)
    if item.get("cockpit_mode") is True:
        status_class = StatusClass.PAUSED  # an ACP "cockpit" session: not tmux-backed, never judged by a session
    return AgentRecord(rid, None, status, session_name(title, rid), ScopeKind.STATE, (created,), status_class,
                       ConversationRecord(None, conversation or None) if conversation else None, program)


def _broken(workspace: Path, path: Path, problem: Problem, before: Fingerprint) -> Records:
    return Records(workspace, Scope(path, ScopeKind.STATE, errors=(problem,)), (), AOE, NAME, fingerprint=before)


def load(workspace: Path, timeout: float = 0.0) -> Records:
    path = workspace / SESSIONS
    try:
        raw, stamp, mtime = read_stamped(path, workspace)
    except RegistryError as exc:
        return _broken(workspace, path, exc.problem, ((str(path), None),))
    before = ((str(path), stamp),)
    try:
        data = parse(path, raw)
        if not isinstance(data, list):
            raise RegistryError(Problem(str(path), "$", "expected an array"))
        agents = tuple(_record(path, i, item) for i, item in enumerate(data))
        seen: set[str] = set()
        for i, rec in enumerate(agents):
            if rec.id in seen:
                raise RegistryError(Problem(str(path), f"$[{i}].id", f"{rec.id!r:.40} appears twice"))
            seen.add(rec.id)
    except RegistryError as exc:
        return _broken(workspace, path, exc.problem, before)
    state = Scope(path, ScopeKind.STATE, stamp, mtime, (), {}, agents, stamp=stamp)
    return Records(workspace, state, (), AOE, NAME, fingerprint=before)
