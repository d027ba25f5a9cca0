"""What judging gives: findings about entities, and one typed result per check.

A check that cannot be judged (its facts are missing) has no findings at all, only the reason: it
is never "passed" on missing facts. Gas Town's doctor has the same shape (status, message, details).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from .programs import CLAUDE
from .targets import Target

CLAUDE_NAME = CLAUDE.name

Severity = Literal["fail", "info", "waived"]
Status = Literal["pass", "fail", "skip", "error"]


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or worth knowing) about one entity.

    ``target`` identifies the entity precisely enough for a fixer to re-verify it (healthchecks.targets).
    """

    check: str
    entity: str
    reason: str
    severity: Severity = "fail"
    target: Target = None
    waiver: str = ""  # why a person waived it (severity "waived"), or why a waiver no longer applies
    manager: str = ""  # whose records it was judged against (healthchecks.sources.manager_name)
    # the agent program it concerns (programs.py's name: "Gemini CLI"), as its record names it or its process runs
    # it; "" when none is known
    program: str = ""

    @property
    def label(self) -> str:
        """The entity as people read it: with its program when that is another than Claude Code, the default
        (`agent X (Gemini CLI)`)."""
        return f"{self.entity} ({self.program})" if self.program and self.program != CLAUDE_NAME else self.entity

    def line(self) -> str:
        return f"{self.label}: {self.reason}" + (f" [{self.waiver}]" if self.waiver else "")

    @property
    def kind_id(self) -> tuple[str, str]:
        """What the finding is about, as (kind, id): agent, session, process, counter or file, from its typed
        target (a finding a plugin made without one is identified by its entity text)."""
        return self.target.subject if self.target is not None else ("entity", self.entity)

    @property
    def finding_id(self) -> str:
        """Stable across runs for the same check and entity: for tracking, deduplicating, waiving."""
        kind, ident = self.kind_id
        # surrogatepass: an id read from JSON may hold half a surrogate pair, and still needs its own id
        return hashlib.sha256(f"{self.check}\0{kind}\0{ident}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True)
class CheckResult:
    """One check on one snapshot: pass or fail with its findings, or skip/error with the reason it was not judged."""

    check: str
    status: Status
    reason: str = ""
    findings: tuple[Finding, ...] = ()

    @classmethod
    def judged_from(cls, check: str, findings: list[Finding]) -> CheckResult:
        failed = any(f.severity == "fail" for f in findings)
        return cls(check, "fail" if failed else "pass", "", tuple(findings))

    @property
    def judged(self) -> bool:
        return self.status in ("pass", "fail")

    @property
    def failing(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "fail")

    @property
    def info(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "info")

    @property
    def waived(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "waived")


Results = dict[str, CheckResult]
