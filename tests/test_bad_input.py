"""Malformed registries: one clear line each (file, JSON path, problem), no traceback, no write even under --fix."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from helpers import absent_socket, junit_outcomes, run_health
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthchecks.checks import CHECKS
from healthchecks.dialect import ScopeKind
from healthchecks.sources.orchestrator import json_registry as registry

GOOD_AGENT = {"task_id": "TASK-1", "type": "w", "parent": "orchestrator",
              "started_at": "2025-10-29T23:25:23.118402", "tmux_session": "agent_w-232523-be4f03"}


def good_global(**overrides) -> dict:
    data = {"created_at": "2025-10-15T18:39:58.210818", "total_tasks": 0, "active_tasks": 0,
            "total_agents_spawned": 1, "active_agents": 1, "max_concurrent_agents": 20, "tasks": {},
            "agents": {"w-232523-be4f03": dict(GOOD_AGENT)}}
    data.update(overrides)
    return data


def agent_with(**fields) -> dict:
    return good_global(agents={"w-232523-be4f03": {**GOOD_AGENT, **fields}})


def text(data) -> bytes:
    return json.dumps(data).encode()


# name -> (bytes of GLOBAL_REGISTRY.json or a setup function, expected problem after "<file>: ")
CASES: dict[str, tuple[object, str]] = {
    "truncated": (b'{"agents": {"w-1": {"task_id": "T', r"line 1 column \d+: truncated \(.*\)"),
    "empty": (b"", r"\$: file is empty"),
    "only whitespace": (b"  \n\t\n", r"\$: file is empty"),
    "UTF-8 BOM": (b"\xef\xbb\xbf" + text(good_global()), r"\$: starts with a UTF-8 byte order mark"),
    "invalid UTF-8": (b'{"tasks": {}, "agents": {"w\xff": {}}}', r"\$: invalid UTF-8 at byte 27"),
    "NaN": (b'{"tasks": {}, "agents": {}, "active_agents": NaN}', r"\$: NaN is not valid JSON"),
    "Infinity": (b'{"tasks": {}, "agents": {}, "active_agents": -Infinity}', r"\$: -Infinity is not valid JSON"),
    "duplicate keys": (b'{"tasks": {}, "agents": {}, "agents": {}}', r"\$: duplicate key 'agents'"),
    "trailing garbage": (text(good_global()) + b" }", r"line 1 column \d+: invalid JSON \(Extra data\)"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, r"\$: nested deeper than 200 levels"),
    "top-level array": (b"[]", r"\$: expected object, got array"),
    "top-level string": (b'"registry"', r"\$: expected object, got string"),
    "agents as a list": (text(good_global(agents=[GOOD_AGENT])), r"\$\.agents: expected object, got array"),
    "agent is a string": (text(good_global(agents={"w-1": "running"})),
                          r"\$\.agents\['w-1'\]: expected object, got string"),
    "wrong field type": (text(agent_with(tmux_session=5)),
                         r"\$\.agents\['w-232523-be4f03'\]\.tmux_session: expected string, got integer"),
    "status not a string": (text(agent_with(status=["running"])),
                            r"\$\.agents\['w-232523-be4f03'\]\.status: expected string, got array"),
    "missing tmux_session": (text(good_global(agents={"w-1": {"task_id": "T"}})),
                             r"\$\.agents\['w-1'\]: 'tmux_session' is a required property \(or, for a cursor "
                             r"backend entry, backend \"cursor\" and cursor_pid\)"),
    "bad timestamp": (text(agent_with(started_at="yesterday")),
                      r"\$\.agents\['w-232523-be4f03'\]\.started_at: 'yesterday' does not match .*"),
    "negative counter": (text(good_global(active_agents=-3)), r"\$\.active_agents: -3 is less than the minimum of 0"),
    "huge counter": (text(good_global(total_agents_spawned=10**12)),
                     r"\$\.total_agents_spawned: 1000000000000 is greater than the maximum of 1000000000"),
    "fractional counter": (text(good_global(active_agents=1.5)), r"\$\.active_agents: expected integer, got number"),
    "tasks missing": (text({k: v for k, v in good_global().items() if k != "tasks"}),
                      r"\$: 'tasks' is a required property"),
}


def _setup_huge(path: Path) -> str:
    path.write_bytes(b'{"tasks": {}, "agents": {}, "pad": "')
    os.truncate(path, 140_000_000)  # sparse: refused by its size, before a byte is read
    return r"\$: file is 140\.0 MB, over the 128 MiB limit"


def _setup_directory(path: Path) -> str:
    path.mkdir()
    return r"\$: is a directory, not a file"


def _setup_fifo(path: Path) -> str:
    os.mkfifo(path)  # a careless reader blocks here forever
    return r"\$: is not a regular file"


def _setup_symlink(path: Path) -> str:
    elsewhere = path.parent.parent.parent / "elsewhere.json"
    elsewhere.write_bytes(text(good_global()))
    path.symlink_to(elsewhere)
    return rf"\$: is a symlink to {re.escape(str(elsewhere))}; refusing to follow it out of the workspace"


def _setup_missing(path: Path) -> str:
    return r"\$: file is missing"


def _setup_bad_task(path: Path) -> tuple[Path, str]:
    path.write_bytes(text(good_global()))
    task = path.parent.parent / "TASK-1" / "AGENT_REGISTRY.json"
    task.parent.mkdir()
    task.write_bytes(text({"task_id": "TASK-1", "agents": {"w-232523-be4f03": {}}}))
    return task, r"\$\.agents: expected array, got object"


def _setup_bad_task_entry(path: Path) -> tuple[Path, str]:
    path.write_bytes(text(good_global()))
    task = path.parent.parent / "TASK-1" / "AGENT_REGISTRY.json"
    task.parent.mkdir()
    task.write_bytes(text({"task_id": "TASK-1", "agents": [{"id": 5, "tmux_session": "agent_x"}]}))
    return task, r"\$\.agents\[0\]\.id: expected string, got integer"


SETUPS = {"140 MB registry": _setup_huge, "directory instead of file": _setup_directory, "FIFO": _setup_fifo,
          "symlink to elsewhere": _setup_symlink, "missing file": _setup_missing,
          "malformed task registry": _setup_bad_task, "task agent id not a string": _setup_bad_task_entry}


def tree(root: Path) -> dict[str, object]:
    """Every path under root with its bytes (or what it is), without following links: proof nothing was written."""
    result: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                result[rel] = f"-> {os.readlink(p)}"
            elif p.is_dir():
                result[rel] = "dir"
            elif p.is_file():
                result[rel] = p.read_bytes()
            else:
                result[rel] = "special"
    return result


@pytest.mark.parametrize("case", [*CASES, *SETUPS])
def test_malformed_registry(case, tmp_path):
    workspace = tmp_path / "ws"
    path = workspace / "registry" / "GLOBAL_REGISTRY.json"
    path.parent.mkdir(parents=True)
    if case in CASES:
        content, expected = CASES[case]
        path.write_bytes(content)
        broken = path
    else:
        made = SETUPS[case](path)
        broken, expected = made if isinstance(made, tuple) else (path, made)
    before = tree(tmp_path)
    proc = run_health(tmp_path, "--workspace", str(workspace), "--tmux-socket", absent_socket(),
                      "--fix", "--yes", "--junitxml", str(tmp_path / "j.xml"), timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "Traceback" not in out
    outcomes = junit_outcomes(tmp_path / "j.xml")
    lines = outcomes["test_registry_files_match_schema"][1]
    assert len(lines) == 1 and re.fullmatch(rf"{re.escape(str(broken))}: {expected}", lines[0]), lines
    assert lines[0] in proc.stdout
    skipped = {n for n, (o, _) in outcomes.items() if o == "skipped"}
    assert len(skipped) == len([c for c in CHECKS.values() if "registry" in c.needs])  # every registry-dependent one
    after = tree(tmp_path)
    for key in [k for k in after if k.startswith(("reports", "j.xml"))]:
        after.pop(key)
    assert after == before  # nothing written: no backup, no archive, no registry change


def test_missing_workspace(tmp_path):
    proc = run_health(tmp_path, "--workspace", str(tmp_path / "nope"), "--tmux-socket", absent_socket(),
                      "--fix", "--yes")
    assert proc.returncode == 1 and "Traceback" not in proc.stdout
    assert f"{tmp_path / 'nope'}: $: workspace directory does not exist" in proc.stdout
    assert not (tmp_path / "nope").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to read as another user")
def test_unreadable_registry(tmp_path):
    """Root reads everything, so the loader reads as `nobody` a file that only root may read."""
    shared = Path(tempfile.mkdtemp(prefix="hc-unreadable-"))  # a folder `nobody` can enter
    try:
        shared.chmod(0o755)
        path = shared / "GLOBAL_REGISTRY.json"
        path.write_bytes(text(good_global()))
        path.chmod(0o600)
        os.seteuid(65534)
        try:
            loaded = registry.load_file(path, ScopeKind.GLOBAL)
        finally:
            os.seteuid(0)
        assert tuple(map(str, loaded.errors)) == (f"{path}: $: not readable (permission denied)",)
    finally:
        shutil.rmtree(shared)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_mutations_never_crash_the_loader(tmp_path, data):
    """Byte-level damage and JSON-level nonsense: the loader always answers with a RegistryFile, never raises."""
    valid = text(good_global(agents={f"w-{i:06d}-abcdef": {**GOOD_AGENT, "status": s}
                                     for i, s in enumerate(["running", "completed", "odd", None])}))
    mutation = data.draw(st.sampled_from(["truncate", "flip", "insert", "replace_value"]))
    raw = bytearray(valid)
    if mutation == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    elif mutation == "flip":
        for _ in range(data.draw(st.integers(1, 5))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    elif mutation == "insert":
        at = data.draw(st.integers(0, len(raw)))
        raw[at:at] = data.draw(st.binary(min_size=1, max_size=20))
    else:
        doc = json.loads(valid)
        junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(), c, max_size=3),
                            max_leaves=8)
        agent = data.draw(st.sampled_from(sorted(doc["agents"])))
        field = data.draw(st.sampled_from([*GOOD_AGENT, "status", "completed_at"]))
        doc["agents"][agent][field] = data.draw(junk)
        raw = bytearray(json.dumps(doc).encode())
    path = tmp_path / "GLOBAL_REGISTRY.json"
    path.write_bytes(bytes(raw))
    loaded = registry.load_file(path, ScopeKind.GLOBAL)
    assert loaded.errors or loaded.agents is not None
    assert all("\n" not in e and e.startswith(f"{path}: ") for e in map(str, loaded.errors))


@settings(max_examples=400, deadline=None)
@given(value=st.recursive(st.none() | st.booleans() | st.integers(-5, 2 * 10**9) | st.floats(allow_nan=False)
                          | st.text(max_size=30) | st.sampled_from(["2025-10-29T23:25:23", "running", ""]),
                          lambda c: st.lists(c, max_size=3) | st.dictionaries(
                              st.sampled_from(["agents", "tasks", "task_id", "tmux_session", "status", "id",
                                               "active_agents", "started_at", "progress", "w-1"]), c, max_size=4),
                          max_leaves=12),
       kind=st.sampled_from([ScopeKind.GLOBAL, ScopeKind.TASK]))
def test_fast_validator_never_accepts_what_jsonschema_rejects(value, kind):
    """The compiled fast path may only say "valid" where jsonschema, the reference, says so too."""
    fast, reference = registry.validators(kind)
    try:
        valid = fast(value)
    except Exception:
        return
    assert not valid or reference.is_valid(value)
