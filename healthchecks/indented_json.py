"""`json.dumps(data, indent=2)`, byte for byte, at the C encoder's speed.

Python's json module takes its pure-Python encoder whenever `indent` is set (before 3.14): a registry of 50,000
entries took seconds to write back. Here each container whose values are all plain scalars (a registry entry) is
encoded by the C encoder, with the indentation of its depth as the item separator, and only the containers that
hold containers are walked in Python. Strings, numbers and keys are thus encoded by the same C functions as ever;
anything this does not know (another type, a key that is not a string) is left to json.dumps itself, whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

INDENT = "  "
_SCALARS = frozenset({str, int, float, bool, type(None)})
_Encode = Callable[[Any, int], list[str]]


class _Unknown(Exception):
    """A value or key the fast path does not encode: json.dumps does the whole document."""


class _Indented:
    """One document's encoding: C encoders per depth, whose item separator is that depth's newline and indent."""

    def __init__(self, ensure_ascii: bool) -> None:
        self.string = encode_basestring_ascii if ensure_ascii else encode_basestring
        self.encoders: dict[int, _Encode] = {}

    def flat(self, depth: int) -> _Encode:
        """The C encoder of a container of scalars whose items sit at ``depth``."""
        encode = self.encoders.get(depth)
        if encode is None:
            # (markers, default, encoder, indent, key separator, item separator, sort_keys, skipkeys, allow_nan)
            encode = c_make_encoder(None, _unknown, self.string, None, ": ", ",\n" + INDENT * depth,
                                    False, False, True)
            self.encoders[depth] = encode
        return encode

    def value(self, o: Any, depth: int) -> str:
        """``o`` as json.dumps(indent=2) writes it at ``depth`` (its first line unindented, as a value is)."""
        if isinstance(o, dict):
            if not o:
                return "{}"
            if _SCALARS.issuperset(map(type, o.values())):
                return _wrap(["".join(self.flat(depth + 1)(o, 0))[1:-1]], depth, "{}")
            if not all(type(k) is str for k in o):
                raise _Unknown
            string = self.string
            return _wrap([string(k) + ": " + v for k, v in zip(o, self.values(list(o.values()), depth + 1),
                                                                 strict=True)], depth, "{}")
        if isinstance(o, (list, tuple)):
            if not o:
                return "[]"
            if _SCALARS.issuperset(map(type, o)):
                return _wrap(["".join(self.flat(depth + 1)(o, 0))[1:-1]], depth, "[]")
            return _wrap(self.values(list(o), depth + 1), depth, "[]")
        return "".join(self.flat(depth)(o, 0))

    def values(self, values: list[Any], depth: int) -> list[str]:
        """Each value at ``depth``: all of them in one C call when they are flat objects (registry entries)."""
        return self.entries(values, depth) or [self.value(v, depth) for v in values]

    def entries(self, values: list[Any], depth: int) -> list[str] | None:
        """Non-empty objects of scalars (registry entries) in one C call, as a list, cut apart where one ends and
        the next begins (a scalar never ends with "}" and a key never begins with "{"); None: they are not all
        such objects."""
        scalars = _SCALARS
        if not all(type(v) is dict and v and scalars.issuperset(map(type, v.values())) for v in values):
            return None
        item = ",\n" + INDENT * (depth + 1)
        inner = "".join(self.flat(depth + 1)(values, 0)).split("}" + item + "{")
        inner[0] = inner[0][2:]  # "[{"
        inner[-1] = inner[-1][:-2]  # "}]" (the same part when there is one entry)
        head, tail = "{\n" + INDENT * (depth + 1), "\n" + INDENT * depth + "}"
        return [head + fields + tail for fields in inner]


def _wrap(items: list[str], depth: int, brackets: str) -> str:
    """A non-empty container's items, each on its own line at depth + 1."""
    inner = "\n" + INDENT * (depth + 1)
    return brackets[0] + inner + ("," + inner).join(items) + "\n" + INDENT * depth + brackets[1]


def _unknown(o: Any) -> Any:
    raise _Unknown


def dumps(data: Any, *, ensure_ascii: bool = True) -> str:
    """The same text as ``json.dumps(data, indent=2, ensure_ascii=ensure_ascii)``; the same errors too."""
    if c_make_encoder is None:  # an interpreter without the C accelerator
        return json.dumps(data, indent=2, ensure_ascii=ensure_ascii)
    try:
        return _Indented(ensure_ascii).value(data, 0)
    except _Unknown:
        return json.dumps(data, indent=2, ensure_ascii=ensure_ascii)
