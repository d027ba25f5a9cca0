"""The run's outputs, one module per format, each rendering the same judged run (goss's outputs/, in pytest's terms).

A machine-readable format is an `Output`: the option that turns it on (from the options table's type) and
`write(run, value, base)`, which renders the run's final state and returns the exit status it imposes, if any.
Adding one is a module defining `OUTPUT` and one line in `OUTPUTS`. The HTML report (pytest-html's hooks),
the terminal summary and the JUnit properties hook into pytest itself: `html.py`, `terminal.py`, `junit.py`.
"""

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


def _registered() -> tuple[Output, ...]:
    from . import findings_json, prometheus, status_line

    return (findings_json.OUTPUT, prometheus.OUTPUT, status_line.OUTPUT)


OUTPUTS = _registered()
OPTIONS = tuple(opt for o in OUTPUTS for opt in (o.option, *o.extra))
