"""Waivers: a person's acknowledgement of a finding, with a reason and an end date (InSpec's waivers, pytest's way).

A waiver names a check, a pattern matched against a finding's entity (`agent worker-*`, shell-style), a reason
and the date it expires. Until then a matching finding is "waived": shown with its reason in every output, never
failing a check and never acted on by `--fix`. From the expiry date on it no longer applies, and the finding it
covered is reported together with the expired waiver.

Waivers come from `[[tool.agent-healthchecks.waiver]]` in the rootdir's pyproject.toml and from `[[waiver]]`
in `<workspace>/healthchecks-waivers.toml`.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

WORKSPACE_FILE = "healthchecks-waivers.toml"
FIELDS = ("check", "entity", "reason", "expires")


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


def _parse(entries: object, where: str) -> tuple[Waiver, ...]:
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
        waivers.append(Waiver(entry["check"], entry["entity"], entry["reason"], expires, f"{where} #{i}"))
    return tuple(waivers)


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise WaiverError(f"{path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise WaiverError(f"{path}: not valid TOML ({exc})") from None


def load(pyproject: Path | None, workspace: Path) -> tuple[Waiver, ...]:
    """Every waiver of this run; WaiverError (one line) when a file is wrong."""
    found: tuple[Waiver, ...] = ()
    if pyproject is not None and pyproject.is_file():
        section = _read(pyproject).get("tool", {}).get("agent-healthchecks", {})
        if "waiver" in section:
            found += _parse(section["waiver"], str(pyproject))
    ws_file = workspace / WORKSPACE_FILE
    if ws_file.is_file():
        found += _parse(_read(ws_file).get("waiver", []), str(ws_file))
    return found
