"""The real Codex, Gemini CLI, opencode and Aider (pinned, real_programs.py), each started interactively in a pane
of a private tmux server, as a fleet manager starts them: what /proc shows of them, and what tmux `kill-session`
leaves behind, must be what DOMAIN.md ("Other agent programs in the same fleets") measured.

Each talks only to the scripted API on 127.0.0.1: its prompt hangs (a busy agent), anything else gets a 500 (it
retries); every proxy is the refusing proxy, whose log must stay empty. Everything a test starts is found by its
private HOME (a marker no other process carries) and ended by pid at the end.

Skipped, saying why, where a program cannot be had (no npm, offline); CI sets HC_REAL_PROGRAMS=required, so there a
missing program fails instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from helpers import installed_program

from healthchecks.testing import real_programs
from healthchecks.testing.messages_api import MessagesAPI
from healthchecks.tmux import default_socket_path

pytestmark = pytest.mark.real_programs
LOOPBACK = {"127.0.0.1", "::1"}
# Requests a program makes with no switch found to stop them: the proxy refuses them (nothing leaves the machine).
KNOWN_REFUSED = {"codex": {("CONNECT", "raw.githubusercontent.com:443")},  # the TUI's announcement_tip.toml
                 "opencode": {("CONNECT", "registry.npmjs.org:443")}}  # at start, with every OPENCODE_DISABLE_* set
REMOTE_URL = re.compile(r"\b(?:https?|wss?)://(?!127\.0\.0\.1[:/])[^\s\"']+")
Procs = dict[str, psutil.Process]


@pytest.fixture
def api():
    server = MessagesAPI(default="error")
    yield server
    server.close()


def _wait(condition: Callable[[], object], timeout: float, what: str,
          shown: Callable[[], str] | None = None) -> None:
    """Until ``condition``, at most ``timeout`` s; then fail saying what was awaited (and what the pane shows)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not in {timeout:g}s: {what}" + (f"; the pane shows:\n{shown()}" if shown else ""))
        time.sleep(0.1)


def _started(home: Path) -> list[psutil.Process]:
    """Every process carrying this test's private HOME, but the tmux server (ended by its socket)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("HOME") == str(home) and proc.info["name"] != "tmux: server":
                found.append(proc)
    return found


def _one(procs: list[psutil.Process], test: Callable[[psutil.Process], bool]) -> psutil.Process | None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if test(proc):
                return proc
    return None


def _script(proc: psutil.Process, index: int = 1) -> str:
    argv = proc.cmdline()
    return os.path.realpath(argv[index]) if len(argv) > index else ""


def _codex(procs: list[psutil.Process]) -> Procs:
    """The node wrapper, its native child (CODEX_MANAGED_BY_NPM), and the two daemons if they started yet."""
    found: Procs = {}
    wrapper = _one(procs, lambda p: p.name() == "node" and _script(p).endswith("@openai/codex/bin/codex.js"))
    if wrapper is None:
        return found
    found["wrapper"] = wrapper
    native = _one(procs, lambda p: p.ppid() == wrapper.pid and p.name() == "codex" and "/codex-linux-x64/vendor/" in
                  p.exe() and "CODEX_MANAGED_BY_NPM" in p.environ())
    if native is not None:
        found["native"] = native
    for role, args in (("daemon", ["app-server", "--listen"]), ("pid-update-loop", ["app-server", "daemon"])):
        daemon = _one(procs, lambda p, a=args: p.cmdline()[1:3] == a and "/.codex/packages/app-server-daemon/" in
                      p.exe() and os.getsid(p.pid) == p.pid)
        if daemon is not None:
            found[role] = daemon
    return found


def _gemini(procs: list[psutil.Process]) -> Procs:
    """The launcher and the child it relaunches with a larger heap (GEMINI_CLI_NO_RELAUNCH=true)."""
    launcher = _one(procs, lambda p: p.name() == "node" and _script(p).endswith("@google/gemini-cli/bundle/gemini.js"))
    if launcher is None:
        return {}
    child = _one(procs, lambda p: p.ppid() == launcher.pid and p.name() == "node" and
                 p.cmdline()[1].startswith("--max-old-space-size=") and
                 _script(p, 2).endswith("@google/gemini-cli/bundle/gemini.js") and
                 p.environ().get("GEMINI_CLI_NO_RELAUNCH") == "true")
    return {"launcher": launcher} if child is None else {"launcher": launcher, "child": child}


def _opencode(procs: list[psutil.Process]) -> Procs:
    """One native process, the package's opencode.exe, run by its .bin/ name."""
    native = _one(procs, lambda p: p.name() == "opencode" and p.exe().endswith("/opencode-ai/bin/opencode.exe")
                  and p.cmdline()[0].endswith("/.bin/opencode"))
    return {} if native is None else {"native": native}


def _aider(procs: list[psutil.Process]) -> Procs:
    """The venv's python running its aider script; comm `aider`."""
    python = _one(procs, lambda p: p.name() == "aider" and re.fullmatch(r"python[0-9.]*", Path(p.exe()).name) is not
                  None and p.cmdline()[0].endswith("/bin/python3") and p.cmdline()[1].endswith("/aider/bin/aider"))
    return {} if python is None else {"python": python}


# program -> (its processes by role, the roles that must be up, the roles that must survive kill-session)
SHAPES: dict[str, tuple[Callable[[list[psutil.Process]], Procs], set[str], set[str]]] = {
    "codex": (_codex, {"wrapper", "native"}, {"daemon", "pid-update-loop"}),
    "gemini": (_gemini, {"launcher", "child"}, {"launcher", "child"}),
    "opencode": (_opencode, {"native"}, set()),
    "aider": (_aider, {"python"}, set()),
}


def _facts(procs: Procs) -> dict[str, dict[str, object]]:
    """What /proc shows of each: exe, comm, argv, parent, session, process group, and the markers."""
    facts: dict[str, dict[str, object]] = {}
    for role, proc in procs.items():
        with contextlib.suppress(psutil.Error):
            env = proc.environ()
            markers = {k: env[k] for k in ("CODEX_MANAGED_BY_NPM", "GEMINI_CLI_NO_RELAUNCH") if k in env}
            facts[role] = {"pid": proc.pid, "exe": proc.exe(), "comm": proc.name(), "argv": proc.cmdline(),
                           "ppid": proc.ppid(), "sid": os.getsid(proc.pid), "pgid": os.getpgid(proc.pid),
                           "markers": markers}
    return facts


def _remote_hosts(procs: list[psutil.Process]) -> set[str]:
    hosts: set[str] = set()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            hosts |= {c.raddr.ip for c in proc.net_connections(kind="inet") if c.raddr}
    return hosts


def _assert_offline(env: dict[str, str], home: Path, api: MessagesAPI) -> None:
    """Before the program runs: no variable or config file it gets names a URL off 127.0.0.1."""
    texts = [f"{k}={v}" for k, v in env.items()] + [p.read_text() for p in home.rglob("*") if p.is_file()]
    assert not [m.group(0) for t in texts for m in REMOTE_URL.finditer(t)]
    assert all(env[k] == api.proxy_url for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "https_proxy"))


def _tmux(socket: str, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", *args], capture_output=True, text=True,
                          check=True, env=env, stdin=subprocess.DEVNULL, timeout=30).stdout


def _launch(name: str, program: real_programs.Program, exe: Path, socket: str, work: Path,
            env: dict[str, str]) -> None:
    """Interactive, in a pane; a program that takes no prompt on its command line (Aider) gets it typed."""
    prompt = f"hc-script:hang hc-label:{name} say hi"
    argv = real_programs.command(program, exe, prompt)
    _tmux(socket, "new-session", "-d", "-s", "agent", "-x", "200", "-y", "50", "-c", str(work), shlex.join(argv),
          env=env)
    if not any("{prompt}" in a for a in program.interactive):
        _wait(lambda: re.search(r"^>( |$)", _tmux(socket, "capture-pane", "-p", "-t", "agent"), re.M), 60,
              f"{name}'s input prompt")
        _tmux(socket, "send-keys", "-t", "agent", "-l", prompt)
        _tmux(socket, "send-keys", "-t", "agent", "Enter")


def _running(procs: Procs, roles: set[str]) -> set[str]:
    """The roles whose process still runs: not exited, which a zombie (exited, not reaped yet) has, though psutil's
    is_running() is true of it (it checks the pid and start time only)."""
    found = set()
    for role in roles:
        with contextlib.suppress(psutil.NoSuchProcess):
            if procs[role].is_running() and procs[role].status() != psutil.STATUS_ZOMBIE:
                found.add(role)
    return found


def test_a_process_that_exited_unreaped_is_not_running():
    """A survivor counted by is_running() alone may have exited: psutil says so of a zombie too."""
    exited = subprocess.Popen(["true"], stdin=subprocess.DEVNULL)
    sleeping = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        procs = {"exited": psutil.Process(exited.pid), "sleeping": psutil.Process(sleeping.pid)}
        _wait(lambda: procs["exited"].status() == psutil.STATUS_ZOMBIE, 10, "true exited, not reaped")
        assert _running(procs, {"exited", "sleeping"}) == {"sleeping"}
    finally:
        sleeping.kill()
        for child in (exited, sleeping):
            child.wait(10)


@pytest.mark.parametrize("name", list(SHAPES))
def test_interactive_program_in_tmux_is_what_domain_measured_and_stays_on_loopback(name, api, tmp_path):
    program = real_programs.PROGRAMS[name]
    exe = installed_program(program)
    find, up, survivors = SHAPES[name]
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = real_programs.environment(program, home, api, work)
    _assert_offline(env, home, api)
    socket = f"hc-rp-{name}-{secrets.token_hex(4)}"
    try:
        _launch(name, program, exe, socket, work, env)
        _wait(lambda: name in api.labels(), 180, f"{name} asked the loopback API (requests: {api.seen.requests})",
              lambda: _tmux(socket, "capture-pane", "-p", "-t", "agent"))
        _wait(lambda: up <= set(find(_started(home))), 30, f"{name}'s processes {sorted(up)}")
        if survivors - up:  # Codex's daemons start a few seconds after the native child
            _wait(lambda: survivors <= set(find(_started(home))), 30, f"{name}'s {sorted(survivors - up)}")
        procs = find(_started(home))
        facts = _facts(procs)
        assert all(facts[role]["sid"] == facts[next(iter(sorted(up)))]["sid"] for role in up), facts
        hosts = _remote_hosts(_started(home))

        _tmux(socket, "kill-session", "-t", "agent")
        gone = set(procs) - survivors
        _wait(lambda: not _running(procs, gone), 15, f"{sorted(gone)} ended after kill-session ({facts})")
        time.sleep(2)
        assert _running(procs, survivors) == survivors, f"{sorted(survivors)} outlive kill-session: {facts}"
        assert hosts <= LOOPBACK
        assert set(api.refused.requests) <= {(m, p, "", "") for m, p in KNOWN_REFUSED.get(name, set())}
        assert {r[1].split("?")[0] for r in api.seen.requests}, api.seen.requests
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            _tmux(socket, "kill-server")
        left = _started(home)
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.kill()  # psutil checks the start time: never another process
        psutil.wait_procs(left, timeout=10)
        Path(default_socket_path(socket)).unlink(missing_ok=True)
