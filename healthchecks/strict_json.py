"""Strict JSON, as every manager's JSON store is read (and written back): plain UTF-8, no duplicate keys, no
NaN or Infinity, bounded nesting. Anything else is damage, reported as a Problem of the file, never guessed at.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from .records import Problem, RegistryError

MAX_NESTING = 200  # levels of JSON nesting a record file may have (a real one has 4); deeper is damage


_JSON_NAMES: dict[type, str] = {str: "string", list: "array", dict: "object"}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "integer" if isinstance(value, int) else "number"
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # rare: find which key, only then
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return result


@contextlib.contextmanager
def nesting_budget(levels: int) -> Iterator[None]:
    """Python's recursion limit set to the frames in use now plus ``levels``, for the duration.

    JSON is decoded and encoded recursively: how deep a document can be then depends on how deep
    the stack already is, so the checks (inside pytest) and the fix (deeper still) would disagree
    about the same file. With a budget counted from the current frame, each reads the same limit.
    """
    frame: FrameType | None = sys._getframe()
    depth = 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + levels)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def decode(path: Path, raw: bytes) -> str:
    """A record file's text: managers write plain UTF-8, so anything else is damage."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raise RegistryError(Problem(str(path), "$", "starts with a UTF-8 byte order mark"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(Problem(str(path), "$", f"invalid UTF-8 at byte {exc.start}")) from None


# A file this big has its repeated values shared while it is parsed (see parse): 8 MB is about 20,000 registry entries
SHARE_FROM = 8 << 20


def _sharing(keys: frozenset[str]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """_no_duplicate_keys, with the string values of ``keys`` made one object per distinct value."""
    seen: dict[str, str] = {}

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = _no_duplicate_keys(pairs)
        for key in keys.intersection(result):
            if type(value := result[key]) is str:
                result[key] = seen.setdefault(value, value)
        return result

    return hook


def parse(path: Path, raw: bytes | str, shared: frozenset[str] = frozenset(), *, unique_keys: bool = False) -> Any:
    """Decode strictly (``raw``: the file's bytes, or its text from decode): managers write plain UTF-8 JSON, so
    anything else is damage. ``shared``: keys whose values repeat (a status, a task id); in a file past SHARE_FROM
    each distinct value is kept once (200,000 entries: about 50 MB less), in a smaller one parsing stays all C.

    ``unique_keys``: the caller knows no key repeats in ``raw`` (the same bytes, by digest, passed this parse
    before; or they were made by encoding a parsed document, whose keys a dict holds once): the per-object check,
    a Python call for every object and most of a big file's parse, is left out. All else is checked the same."""
    text = raw if isinstance(raw, str) else decode(path, raw)
    if not text.strip():
        raise RegistryError(Problem(str(path), "$", "file is empty"))
    try:
        with nesting_budget(MAX_NESTING + 3):  # json.loads and the key hook take a few frames of their own
            if unique_keys:
                return json.loads(text, parse_constant=_reject_constant)
            hook = _sharing(shared) if shared and len(text) >= SHARE_FROM else _no_duplicate_keys
            return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=hook)
    except RecursionError:
        raise RegistryError(Problem(str(path), "$", f"nested deeper than {MAX_NESTING} levels")) from None
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        where = "truncated" if cut else "invalid JSON"
        place = f"line {exc.lineno} column {exc.colno}"
        raise RegistryError(Problem(str(path), place, f"{where} ({exc.msg})")) from None
    except ValueError as exc:
        raise RegistryError(Problem(str(path), "$", str(exc))) from None
