"""Untrusted text made safe to show a person: every character a terminal or a reader would not show as itself.

Agent ids, session names, paths, reasons and process names come from files and processes the monitored agents (or
other users) can write. Shown raw, an escape sequence can erase a line of the plan a person confirms, a bidi
control can reverse what a line says, and a lone surrogate stops an output being written at all. So each such
character is written as its escape (`\\x1b`, `\\u202e`, `\\udc80`): visible, and never acted on by a terminal.
Machine formats (JSON, XML, Prometheus, HTML) keep their own escaping; the HTML report uses this as well, so a
person reading it sees the same escapes.

Each call makes one line, and a line is cut at MAX_LINE characters with a visible count of the rest: a record
holding a 10 MB title must not put 10 MB on a terminal or into every place the HTML report names it. The
machine formats keep the text whole.
"""

from __future__ import annotations

import html
import re
import unicodedata

# Bidi embeddings, overrides and isolates, and the marks (ALM, LRM, RLM): they reorder what is shown.
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Controls (C0, DEL, C1), bidi controls, line and paragraph separators, and surrogates (only lone ones survive
# in a str: a pair is one character).
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{BIDI}\u2028\u2029\ud800-\udfff]")
# Where one line of a monitoring plugin's output must not let text start perfdata (Nagios reads after `|`).
_UNSAFE_IN_STATUS = re.compile(f"[|\x00-\x1f\x7f-\x9f{BIDI}\u2028\u2029\ud800-\udfff]")
MAX_LINE = 1000  # characters of a line shown to a person; beyond, the line says how many more there were


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _bounded(unsafe: re.Pattern[str], text: str) -> str:
    """At most MAX_LINE characters of ``text``, escaped (cut before escaping: an escape is never cut in half), and
    how many were left out."""
    if len(text) <= MAX_LINE:
        return unsafe.sub(_escape, text)
    return unsafe.sub(_escape, text[:MAX_LINE]) + f"… ({len(text) - MAX_LINE:,} more characters)"


def for_people(text: str) -> str:
    """``text`` as one bounded line: every control, bidi control, line separator and lone surrogate written as a
    visible escape, cut at MAX_LINE characters."""
    return _bounded(_UNSAFE, text)


def for_status_line(text: str) -> str:
    """As for_people, and `|` too: a line of a monitoring plugin's output where `|` would begin performance data."""
    return _bounded(_UNSAFE_IN_STATUS, text)


def is_printable_name(name: str) -> bool:
    """Whether a name (a process's comm) holds only characters shown as themselves: no control, no format char."""
    if name.isprintable():  # in C, for every process of a scan: no Cc, Cf, Cs, Zl or Zp (nor Co, Cn, other Zs)
        return True
    return not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name)


def for_html(text: str) -> str:
    """HTML-escaped, with the same visible escapes as for_people: a report's reader sees what a terminal shows."""
    return html.escape(for_people(text))
