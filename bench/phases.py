"""A pytest plugin of the bench only (`-p phases`, with bench/ on PYTHONPATH): where the time of one
`pytest healthchecks` goes, as stamps of time.time() written to the JSON file named by HC_BENCH_PHASES.

The bench stamps the process's start and end itself; the snapshot and the judging are timed around the plugin's
own calls (healthchecks.observe's collect and judged), the rest at pytest's hooks."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Generator
from typing import Any

import pytest

STAMPS: dict[str, float] = {}


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.time()
        try:
            return fn(*args, **kwargs)
        finally:
            STAMPS[name] = STAMPS.get(name, 0.0) + time.time() - started
    return timed


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> Generator[None, object, object]:
    STAMPS["sessionstart"] = time.time()
    from healthchecks import observe  # loaded by the health-check run's own hooks by now, or here

    observe.collect = _timed("snapshot", observe.collect)  # type: ignore[assignment]
    observe.judged = _timed("judging", observe.judged)  # type: ignore[assignment]
    try:
        return (yield)
    finally:
        STAMPS["collection start"] = time.time()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    STAMPS["tests start"] = time.time()
    try:
        return (yield)
    finally:
        STAMPS["tests end"] = time.time()


def pytest_unconfigure(config: pytest.Config) -> None:
    STAMPS["unconfigure"] = time.time()
    if path := os.environ.get("HC_BENCH_PHASES"):
        with open(path, "w") as fh:
            json.dump(STAMPS, fh)
