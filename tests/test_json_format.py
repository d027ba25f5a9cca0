"""The registry writes keep the manager's own formatting, byte for byte (Python's `json.dumps(indent=2)`), through the
fast encoder (healthchecks.indented_json): over the example registries and the tests' data, over generated JSON
(non-ASCII, escapes, control characters, lone surrogates, big numbers), and a writer never takes the pure-Python
encoder."""

from __future__ import annotations

import json
import math
from json import encoder
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthchecks.indented_json import dumps
from healthchecks.sources.orchestrator.json_writer import serialize

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = [*sorted((REPO / "tests" / "data").rglob("*.json")), *sorted(Path("/work/shared/examples").rglob("*.json"))]


def _same(data: object) -> None:
    for ascii_only in (True, False):
        try:
            expected: str | type[Exception] = json.dumps(data, indent=2, ensure_ascii=ascii_only)
        except (TypeError, ValueError) as exc:
            expected = type(exc)
        if isinstance(expected, str):
            assert dumps(data, ensure_ascii=ascii_only) == expected
        else:
            with pytest.raises(expected):
                dumps(data, ensure_ascii=ascii_only)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p).replace(str(REPO), "."))
def test_the_example_registries_are_written_back_byte_for_byte(path):
    raw = path.read_bytes()
    data = json.loads(raw)
    _same(data)
    if raw.rstrip(b"\n") == json.dumps(data, indent=2).encode():  # a file in the manager's own format
        assert serialize(data, raw) == raw


def test_a_registry_with_every_kind_of_text_is_written_back_byte_for_byte():
    entry = {"id": "a-é-☃-\U0001f600", "prompt": 'quote " backslash \\ tab \t newline \n nul \x00 del \x7f \u2028',
             "progress": 40, "ratio": 0.1, "big": 10**30, "tiny": 1e-7, "huge": 1e16, "neg": -0.0, "ok": True,
             "none": None, "tags": [], "meta": {}, "nested": {"list": [1, {"a": [[]]}], "empty": [{}]}}
    registry = {"agents": {f"agent-{i}": dict(entry, id=f"agent-{i}") for i in range(3)},
                "list": [dict(entry), {"a": 1}, {}], "one": [{"a": 1}], "surrogate": "\ud800"}
    _same(registry)
    for data in (registry, {"agents": [entry]}):
        for raw in (json.dumps(data, indent=2).encode() + b"\n", json.dumps(data, indent=2, ensure_ascii=False)
                    .encode("utf-8", "surrogatepass")):
            old = (json.dumps(data, indent=2, ensure_ascii=not _utf8(raw)) + ("\n" if raw.endswith(b"\n") else ""))
            assert serialize(data, raw) == old.encode("utf-8" if _utf8(raw) else "ascii")


def _utf8(raw: bytes) -> bool:
    """Whether serialize writes UTF-8 for a file read as ``raw`` (not ASCII, and nothing UTF-8 cannot hold)."""
    if raw.isascii():
        return False
    try:
        json.dumps(json.loads(raw.decode("utf-8", "surrogatepass")), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(st.characters(codec=None), max_size=12))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_generated_json_is_written_as_json_dumps_writes_it(data):
    _same(data)
    _same({"agents": {"x": data, "y": {"k": data}}, "list": [data, {"k": 1}, {"k": data}]})


def test_nan_and_keys_that_are_not_strings_are_written_as_json_dumps_writes_them():
    _same({"nan": math.nan, "inf": [math.inf], "keys": {1: "a", None: "b", 1.5: "c", False: "d"},
           "deep": {"x": {2: [3]}}})
    _same({"x": object()})
    _same({"x": {(1,): 2}})


def test_a_registry_write_never_takes_the_pure_python_encoder(monkeypatch):
    """The pure-Python encoder (what json.dumps takes with indent=2) spent most of a big fix round's writes."""
    calls = []
    made = encoder._make_iterencode

    def counted(*args, **kwargs):
        calls.append(1)
        return made(*args, **kwargs)

    monkeypatch.setattr(encoder, "_make_iterencode", counted)
    data = {"agents": {f"a{i}": {"status": "working", "é": i} for i in range(100)}, "active_agents": 100}
    for raw in (b"{}\n", "{\"é\": 1}".encode()):
        assert json.loads(serialize(data, raw)) == data
    assert not calls


def test_a_big_registry_is_read_as_a_small_one_with_its_repeated_values_kept_once(tmp_path):
    """Past strict_json.SHARE_FROM a registry's repeated values (status, task id) are one object each, and its
    entries are taken out of the parsed document as their records are made: the same records, less memory (the
    200,000-entry registry's peak, bench/RESULTS.md)."""
    from healthchecks.dialect import ScopeKind
    from healthchecks.sources.orchestrator import json_registry
    from healthchecks.strict_json import SHARE_FROM

    entry = {"task_id": "TASK-1", "type": "worker", "parent": "orchestrator", "status": "completed",
             "started_at": "2025-10-29T23:25:23.118402", "completed_at": "2025-10-29T23:35:23.118402",
             "prompt": "x" * 200}
    count = SHARE_FROM // 300 + 10
    data = {"created_at": "2025-10-15T18:39:58.210818", "total_tasks": 1, "active_tasks": 1,
            "total_agents_spawned": count, "active_agents": 0, "max_concurrent_agents": 20,
            "tasks": {"TASK-1": {"description": "d", "created_at": "2025-10-29T22:53:19.000000",
                                 "status": "INITIALIZED"}},
            "agents": {f"agent-{i}": dict(entry, tmux_session=f"agent_{i}") for i in range(count)}}
    path = tmp_path / "registry" / "GLOBAL_REGISTRY.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data, indent=2))
    assert path.stat().st_size >= SHARE_FROM

    scope = json_registry.load_file(path, ScopeKind.GLOBAL, tmp_path)

    assert not scope.errors
    expected, _ = json_registry.records(ScopeKind.GLOBAL, json.loads(path.read_bytes()))
    assert scope.agents == expected  # the same records, in the same order
    first, last = scope.agents[0], scope.agents[-1]
    assert first.status is last.status and first.task_id is last.task_id
