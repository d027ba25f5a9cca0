"""What became of one action of a plan: a typed status, never a word parsed back."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    DONE = "done"
    ALREADY_GONE = "already gone"
    SKIPPED = "skipped"  # nothing to do: its target is no longer a failing finding, or not ours to signal
    REFUSED = "refused"  # must not be done now (a check cannot be judged, a person is attached, ...)
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


OK_STATUSES = frozenset({Status.DONE, Status.ALREADY_GONE, Status.SKIPPED})  # anything else: the fix did not succeed
