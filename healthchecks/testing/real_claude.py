"""The real Claude Code for tests: the pinned npm package, installed once, and the three install layouts made from it.

``install()`` runs ``npm install`` into a cache (``.venv/claude-code/`` by default, ``HC_CLAUDE_CACHE`` to move it),
under a file lock, so parallel test workers install it once; a cache already holding the pinned version is reused.
The binary is ~400 MB: every layout links to it (symlink or hardlink), never copies it when a link can be made.

Layouts, as /proc shows them (DOMAIN.md, "The real Claude Code"):
- ``npm-local``: ``<cache>/node_modules/@anthropic-ai/claude-code/bin/claude.exe`` exec'd by its real path
  (the orchestrator runs ``realpath(which('claude'))``): comm ``claude.exe``;
- ``npm-global``: a ``bin/claude`` symlink to it, exec'd by the link's name: comm ``claude``;
- ``native``: ``<home>/.local/share/claude/versions/<X.Y.Z>``, a hardlink: comm ``<X.Y.Z>``.

``environment()`` keeps Claude on 127.0.0.1: the scripted API as its base URL, every proxy variable at the
refusing proxy, telemetry, error reports, non-essential traffic and the auto-updater off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from filelock import FileLock

VERSION = "2.1.332"
PACKAGE = f"@anthropic-ai/claude-code@{VERSION}"
LAYOUTS = ("npm-local", "npm-global", "native")
REPO = Path(__file__).resolve().parents[2]
API_KEY = "sk-ant-test-0000-not-a-real-key-0000"


class Unavailable(Exception):
    """The pinned binary cannot be had here (no npm, offline): the tests that need it skip, saying why."""


def cache_dir() -> Path:
    return Path(os.environ.get("HC_CLAUDE_CACHE") or REPO / ".venv" / "claude-code")


def binary(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "node_modules" / "@anthropic-ai" / "claude-code" / "bin" / "claude.exe"


def installed_version(exe: Path) -> str | None:
    try:
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL, env={**os.environ, "DISABLE_AUTOUPDATER": "1"})
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.split()[0] if out.returncode == 0 and out.stdout.strip() else None


def install(cache: Path | None = None) -> Path:
    """The pinned binary, installed into the cache on first use; raises Unavailable with the reason."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / ".install.lock"), timeout=600):
        exe = binary(cache)
        if exe.is_file() and installed_version(exe) == VERSION:
            return exe
        npm = shutil.which("npm")
        if npm is None:
            raise Unavailable(f"npm is not installed, so {PACKAGE} cannot be installed")
        try:
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(cache), PACKAGE],
                capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise Unavailable(f"npm install {PACKAGE} took over 10 minutes") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise Unavailable(f"npm install {PACKAGE} failed (offline?): {last}")
        if installed_version(exe) != VERSION:
            raise Unavailable(f"npm installed {PACKAGE}, but {exe} does not run here")
        return exe


def _link(source: Path, target: Path) -> None:
    """A hardlink (the binary is 400 MB), a copy only across file systems."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def layout(kind: str, exe: Path, root: Path, home: Path) -> Path:
    """The path to exec for one install layout (see the module's docstring), made under ``root`` / ``home``."""
    if kind == "npm-local":
        return exe.resolve()
    if kind == "npm-global":
        link = root / "npm-global" / "bin" / "claude"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(exe.resolve())
        return link
    if kind == "native":
        target = home / ".local" / "share" / "claude" / "versions" / VERSION
        if not target.exists():
            _link(exe.resolve(), target)
        return target
    raise ValueError(f"unknown layout {kind!r} (known: {', '.join(LAYOUTS)})")


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                   "no_proxy")


def loopback_environment(proxy_url: str, home: Path, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment for an agent program in a test: outside any tmux, a private HOME (and no XDG
    directory elsewhere), every proxy variable at the refusing proxy but for 127.0.0.1, the update notifier off;
    without the variables starting with ``drop`` (the program's own: keys, base URLs, settings)."""
    # A CI run's markers (CI, CONTINUOUS_INTEGRATION, CI_*) go too: the programs run as in a person's terminal, and
    # Gemini CLI taken to be in CI quits its interactive screen at once (CI sets CI=true)
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE", "CI", "CONTINUOUS_INTEGRATION")
           and not k.startswith((*PROXY_VARIABLES, "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
                                 "XDG_CACHE_HOME", "CI_", *drop))}
    proxies = {name: proxy_url for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}
    env.update(proxies)
    env.update({name.lower(): value for name, value in proxies.items()})
    env.update(HOME=str(home), NO_PROXY="127.0.0.1", no_proxy="127.0.0.1", NO_UPDATE_NOTIFIER="1")
    return env


def environment(base_url: str, proxy_url: str, home: Path) -> dict[str, str]:
    """Claude's environment in a test: a private HOME and config dir, a fake key, nothing reachable but 127.0.0.1."""
    env = loopback_environment(proxy_url, home, drop=("ANTHROPIC_", "CLAUDE"))
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    # An interactive Claude on a fresh config checks api.anthropic.com during onboarding and exits when it cannot
    # reach it: the config says onboarding is done and the fake key is approved.
    config = json.dumps({"hasCompletedOnboarding": True, "theme": "dark", "bypassPermissionsModeAccepted": True,
                         "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []}})
    for path in (home / ".claude.json", home / ".claude" / ".claude.json"):
        path.write_text(config)
    env.update(
        CLAUDE_CONFIG_DIR=str(home / ".claude"),
        ANTHROPIC_BASE_URL=base_url,
        ANTHROPIC_API_KEY=API_KEY,
        DISABLE_AUTOUPDATER="1",
        DISABLE_TELEMETRY="1",
        DISABLE_ERROR_REPORTING="1",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        IS_SANDBOX="1",  # --dangerously-skip-permissions as root
    )
    return env
