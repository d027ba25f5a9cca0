"""The run's outputs, one module per format, each rendering the same judged run (goss's outputs/, in pytest's terms).

A machine-readable format is an `Output`: the option that turns it on (from the options table's type) and
`write(run, value, base)`, which renders the run's final state and returns the exit status it imposes, if any.
Adding one is a module defining `OUTPUT` and one line in `OUTPUTS`. The HTML report (pytest-html's hooks),
the terminal summary and the JUnit properties hook into pytest itself: `html.py`, `terminal.py`, `junit.py`.
"""

from __future__ import annotations

from . import findings_json, prometheus, status_line
from .output import Output

OUTPUTS: tuple[Output, ...] = (findings_json.OUTPUT, prometheus.OUTPUT, status_line.OUTPUT)
OPTIONS = tuple(opt for o in OUTPUTS for opt in (o.option, *o.extra))
