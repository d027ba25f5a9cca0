"""Helpers for the project's own tests: judge real worlds in-process or through `pytest healthchecks`."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from healthchecks import checks
from healthchecks.analysis import Analysis
from healthchecks.settings import Settings
from healthchecks.snapshot import collect

REPO = Path(__file__).resolve().parents[1]


def judge(settings: Settings) -> dict:
    return checks.judge(Analysis(collect(settings)))


def failing(results: dict) -> set[tuple[str, str]]:
    """(check, entity) for every failing finding; unmet checks show as (check, 'skip'|'error')."""
    out = set()
    for check_id, result in results.items():
        if isinstance(result, tuple):
            out.add((check_id, result[0]))
        else:
            out |= {(check_id, f.entity) for f in result if f.severity == "fail"}
    return out


def info(results: dict) -> set[tuple[str, str]]:
    return {(c, f.entity) for c, r in results.items() if isinstance(r, list) for f in r if f.severity == "info"}


def absent_socket() -> str:
    """A private tmux socket name with no server behind it."""
    return f"hc-absent-{secrets.token_hex(4)}"


def settings_args(settings: Settings) -> list[str]:
    args = [
        "--workspace",
        str(settings.workspace),
        "--claude-match",
        settings.claude_match,
        "--grace",
        str(settings.grace),
        "--tmux-timeout",
        str(settings.tmux_timeout),
    ]
    for socket in settings.tmux_sockets:
        args += ["--tmux-socket", socket]
    return args


def run_health(
    tmp_path: Path, *args: str, env: dict | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `pytest healthchecks` as an operator would, in its own session (no controlling terminal).

    Bytecode writing is allowed so pytest caches its assertion rewriting (0.8 s a run instead of 2.5 s),
    and hypothesis's plugin, which an operator's install does not have, is left out.
    """
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "PYTEST_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "healthchecks",
            "-p",
            "no:hypothesispytest",
            "--report-dir",
            str(tmp_path / "reports"),
            *args,
        ],
        cwd=REPO,
        env={**base_env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def junit_outcomes(path: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """test name -> (outcome, finding lines) from a JUnit XML file."""
    result = {}
    for case in ET.parse(path).iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = tag
        props = tuple(sorted(p.get("value") for p in case.iter("property") if p.get("name") == "finding"))
        result[case.get("name")] = (outcome, props)
    return result


def registry_bytes(workspace: Path) -> dict[str, bytes]:
    """Every registry file's exact bytes, to prove a run changed nothing."""
    paths = [workspace / "registry" / "GLOBAL_REGISTRY.json", *sorted(workspace.glob("TASK-*/AGENT_REGISTRY.json"))]
    return {str(p): p.read_bytes() for p in paths if p.exists()}


def section(output: str, title: str) -> list[str]:
    """The lines of one `==== title ====` / `---- title ----` section of pytest's terminal output."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if f" {title} " in line and line.strip("=- ") == title)
    header = re.compile(r"^([-=])\1+ \w.* \1+$|^- Generated")
    end = next((i for i in range(start + 1, len(lines)) if header.match(lines[i])), len(lines))
    return lines[start + 1 : end]
