"""Waivers: a person's acknowledgement of a finding, with a reason and an end date (InSpec's waivers, pytest's way).

A waiver names a check, a pattern matched against a finding's entity (`agent worker-*`, shell-style), a reason
and the date it expires. Until then a matching finding is "waived": shown with its reason in every output, never
failing a check and never acted on by `--fix`. From the expiry date on it no longer applies, and the finding it
covered is reported together with the expired waiver.

Waivers come only from places the operator controls: `[[tool.agent-healthchecks.waiver]]` in the rootdir's
pyproject.toml, and `[[waiver]]` in a file named by `--waivers FILE`. Never from the workspace: the agents being
judged write there, and a waiver they wrote would hide their own faults. For the same reason a file inside the
workspace is refused, a pattern that is only wildcards (it would waive everything of a check) is refused, and a
waiver naming a check nobody registered is an error (a typo would otherwise waive nothing, silently).
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import sys
from collections.abc import Collection
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FIELDS = ("check", "entity", "reason", "expires")
MAX_BYTES = 1 << 20  # a waiver file is a few lines; a pyproject.toml a few kilobytes
WILDCARDS = set("*?[]! \t")


class WaiverError(ValueError):
    """A waiver file that cannot be used; the message is one line: file, which waiver, what is wrong."""


@dataclass(frozen=True)
class Waiver:
    check: str
    entity: str  # a shell-style pattern matched against the finding's entity ("agent worker-*")
    reason: str
    expires: dt.date
    source: str  # where it was written, for the report

    def matches(self, check: str, entity: str) -> bool:
        return check == self.check and fnmatchcase(entity, self.entity)

    def expired(self, on: dt.date) -> bool:
        return on >= self.expires


def _parse(entries: object, where: str, known: Collection[str]) -> tuple[Waiver, ...]:
    if not isinstance(entries, list):
        raise WaiverError(f"{where}: waivers must be an array of tables ([[waiver]])")
    waivers = []
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise WaiverError(f"{where}: waiver {i}: must be a table")
        if missing := [f for f in FIELDS if f not in entry]:
            raise WaiverError(f"{where}: waiver {i}: missing {', '.join(missing)}")
        if unknown := sorted(set(entry) - set(FIELDS)):
            raise WaiverError(f"{where}: waiver {i}: unknown field {', '.join(unknown)}")
        expires = entry["expires"]
        if isinstance(expires, dt.datetime) or not isinstance(expires, dt.date):
            raise WaiverError(f"{where}: waiver {i}: expires must be a date (expires = 2026-12-31)")
        if not all(isinstance(entry[f], str) and entry[f].strip() for f in ("check", "entity", "reason")):
            raise WaiverError(f"{where}: waiver {i}: check, entity and reason must be non-empty strings")
        if entry["check"] not in known:
            raise WaiverError(f"{where}: waiver {i}: no check {entry['check']!r} (known: {', '.join(sorted(known))})")
        if set(entry["entity"]) <= WILDCARDS:
            raise WaiverError(f"{where}: waiver {i}: entity {entry['entity']!r} is only wildcards: name what is "
                              "waived (entity = \"agent worker-*\")")
        waivers.append(Waiver(entry["check"], entry["entity"], entry["reason"], expires, f"{where} #{i}"))
    return tuple(waivers)


def read_bounded(path: Path) -> str:
    """A regular file's text, refused when over MAX_BYTES (never read whole: it may be a sparse 1.5 GB file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO must not block the run
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise WaiverError(f"{path}: not a regular file")
            if st.st_size > MAX_BYTES:
                raise WaiverError(f"{path}: {st.st_size} bytes, over the {MAX_BYTES} bytes a waiver file may have")
            raw = fh.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:  # it grew after the size was read
            raise WaiverError(f"{path}: over the {MAX_BYTES} bytes a waiver file may have")
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WaiverError(f"{path}: cannot read ({exc})") from None


def _outside(path: Path, workspace: Path) -> None:
    if path.resolve().is_relative_to(workspace.resolve()):
        raise WaiverError(f"{path}: lies inside the workspace {workspace}, which the agents being judged can write; "
                          "waivers are read only from the rootdir's pyproject.toml or a file outside it (--waivers)")


def _read(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = tomllib.loads(read_bounded(path))  # (checked as 3.10: tomli, not installed here)
        return data
    except tomllib.TOMLDecodeError as exc:
        raise WaiverError(f"{path}: not valid TOML ({exc})") from None


def load(pyproject: Path | None, named: Path | None, workspace: Path, known: Collection[str]) -> tuple[Waiver, ...]:
    """Every waiver of this run: the rootdir's pyproject.toml, then the file named on the command line (``named``);
    ``known`` are the registered checks' ids. WaiverError (one line) when a file is wrong."""
    found: tuple[Waiver, ...] = ()
    if pyproject is not None and pyproject.is_file():
        section = _read(pyproject).get("tool", {}).get("agent-healthchecks", {})
        if "waiver" in section:
            _outside(pyproject, workspace)
            found += _parse(section["waiver"], str(pyproject), known)
    if named is not None:
        _outside(named, workspace)
        found += _parse(_read(named).get("waiver", []), str(named), known)
    return found
