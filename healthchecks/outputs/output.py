"""What a machine-readable output format is: its own module, so that the formats and the package listing them
import it without importing each other in a circle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..options import Option


@dataclass(frozen=True)
class Output:
    option: Option
    write: Callable[..., int | None]  # (run, the option's value, base dir, **extra values) -> exit status or None
    owns_stdout: bool = False  # its output is the whole output: pytest's terminal report is switched off
    extra: tuple[Option, ...] = ()  # options that tune it; their values reach write() by their dest
