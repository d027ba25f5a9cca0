"""The other real agent programs for tests: Codex, Gemini CLI, opencode (npm) and Aider (PyPI), pinned, installed
once, and kept on 127.0.0.1.

``install(program)`` installs into a cache (``.venv/agent-programs/`` by default, ``HC_PROGRAMS_CACHE`` to move
it) under a file lock, so parallel test workers install once: the npm packages together by one ``npm install``
into ``<cache>/npm/``, Aider into a venv of its own, ``<cache>/aider/``. A cache already holding the pinned
versions is reused. ``Unavailable`` (real_claude's) says why a program cannot be had, for the tests to skip.

``environment(program, home, api)`` keeps a program offline, as DOMAIN.md ("Other agent programs in the same
fleets") found to work: a private HOME with the program's config files written into it, a fake key, its API base
URL at the scripted loopback API (messages_api.py), every proxy at the refusing proxy, update checks and telemetry
off. Each program's table entry (``PROGRAMS``) holds all of it, with its launcher and command lines.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from .messages_api import MessagesAPI
from .real_claude import REPO, Unavailable, loopback_environment

OPENAI_KEY = "sk-test-0000-not-a-real-key-0000"
GEMINI_KEY = "AIza-test-0000-not-a-real-key-0000"
NPM = "npm"
PYPI = "pypi"


@dataclass(frozen=True)
class Program:
    """One agent program: where it comes from, where it lands in the cache, and what keeps it offline.

    ``variables`` and ``files`` (paths relative to HOME) may name ``{api}`` (the loopback API's URL) and
    ``{workdir}`` (the directory it runs in); ``interactive`` / ``headless`` are the arguments after the launcher,
    where ``{prompt}`` stands for the prompt."""

    name: str
    source: str  # NPM or PYPI
    package: str  # the npm package or the PyPI project
    version: str
    launcher: tuple[str, ...]  # its path in the cache
    variables: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    drop: tuple[str, ...] = ()  # this process's variables the program reads, never passed on
    interactive: tuple[str, ...] = ()
    headless: tuple[str, ...] = ()

    @property
    def requirement(self) -> str:
        return f"{self.package}@{self.version}" if self.source == NPM else f"{self.package}=={self.version}"


# The loopback API as a provider of its own: the built-in one first tries a websocket to it. Plugins and apps off:
# they sync a curated marketplace from github.com and chatgpt.com at start.
CODEX_CONFIG = """check_for_update_on_startup = false
openai_base_url = "{api}/v1"
model = "gpt-5-codex"
model_provider = "loopback"

[model_providers.loopback]
name = "loopback"
base_url = "{api}/v1"
env_key = "OPENAI_API_KEY"
wire_api = "responses"
supports_websockets = false

[features]
plugins = false
remote_plugin = false
apps = false
in_app_updates = false

[analytics]
enabled = false

[projects."{workdir}"]
trust_level = "trusted"
"""
GEMINI_SETTINGS = json.dumps({
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "privacy": {"usageStatisticsEnabled": False}, "telemetry": {"enabled": False},
    "security": {"auth": {"selectedType": "gemini-api-key"}}})
# Aider reads model prices from a day-old cache before fetching them from GitHub; an empty cache counts as none.
AIDER_MODELS = json.dumps({name: {"max_input_tokens": 128000, "max_output_tokens": 16384, "input_cost_per_token": 0,
                                  "output_cost_per_token": 0, "litellm_provider": "openai", "mode": "chat"}
                           for name in ("gpt-4o", "gpt-4o-mini")})
OPENCODE_CONFIG = json.dumps({"autoupdate": False, "share": "disabled", "model": "openai/gpt-4o-mini",
                              "provider": {"openai": {"options": {"baseURL": "{api}/v1"}}}})

PROGRAMS = {p.name: p for p in (
    Program("codex", NPM, "@openai/codex", "0.169.0", (NPM, "node_modules", ".bin", "codex"),
            variables={"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": "{api}/v1"},
            files={".codex/config.toml": CODEX_CONFIG,  # the fake auth.json gets past "Sign in with ChatGPT"
                   ".codex/auth.json": json.dumps({"auth_mode": "apikey", "OPENAI_API_KEY": OPENAI_KEY})},
            drop=("OPENAI_", "CODEX_"), interactive=("{prompt}",), headless=("exec", "--skip-git-repo-check",
                                                                             "{prompt}")),
    Program("gemini", NPM, "@google/gemini-cli", "0.61.0", (NPM, "node_modules", ".bin", "gemini"),
            variables={"GEMINI_API_KEY": GEMINI_KEY, "GOOGLE_GEMINI_BASE_URL": "{api}"},
            files={".gemini/settings.json": GEMINI_SETTINGS},
            drop=("GEMINI_", "GOOGLE_"), interactive=("-i", "{prompt}"), headless=("--skip-trust", "-p", "{prompt}")),
    Program("opencode", NPM, "opencode-ai", "1.18.33", (NPM, "node_modules", ".bin", "opencode"),
            variables={"OPENAI_API_KEY": OPENAI_KEY, "OPENCODE_DISABLE_AUTOUPDATE": "1",
                       "OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
                       "OPENCODE_DISABLE_LSP_DOWNLOAD": "1", "OPENCODE_DISABLE_SHARE": "1"},
            files={".config/opencode/opencode.json": OPENCODE_CONFIG},
            drop=("OPENAI_", "OPENCODE_"), interactive=("--prompt", "{prompt}"), headless=("run", "{prompt}")),
    Program("aider", PYPI, "aider-chat", "0.86.2", ("aider", "bin", "aider"),
            variables={"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_API_BASE": "{api}/v1", "AIDER_CHECK_UPDATE": "false",
                       "AIDER_ANALYTICS_DISABLE": "true", "AIDER_SHOW_RELEASE_NOTES": "false",
                       "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
            files={".aider/caches/model_prices_and_context_window.json": AIDER_MODELS},
            drop=("OPENAI_", "AIDER_", "LITELLM_"), interactive=("--no-git", "--yes-always"),
            headless=("--no-git", "--yes-always", "--message", "{prompt}")),
)}


def cache_dir() -> Path:
    return Path(os.environ.get("HC_PROGRAMS_CACHE") or REPO / ".venv" / "agent-programs")


def launcher(program: Program, cache: Path | None = None) -> Path:
    return (cache or cache_dir()).joinpath(*program.launcher)


def installed(program: Program, cache: Path) -> bool:
    """The pinned version is in the cache: its package.json (npm) or its dist-info (the venv) says so."""
    if not launcher(program, cache).exists():
        return False
    if program.source == NPM:
        try:
            meta = json.loads((cache / NPM / "node_modules" / program.package / "package.json").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(meta, dict) and meta.get("version") == program.version
    dist_info = f"{program.package.replace('-', '_')}-{program.version}.dist-info"
    return any((cache / program.launcher[0] / "lib").glob(f"python*/site-packages/{dist_info}"))


def _run(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{what} took over 15 minutes") from None
    except OSError as exc:
        raise Unavailable(f"{what} could not run: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise Unavailable(f"{what} failed (offline?): {last}")


def _install_npm(cache: Path) -> None:
    """Every npm program at once (one install, one node_modules)."""
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable("npm is not installed, so the npm agent programs cannot be installed")
    wanted = [p.requirement for p in PROGRAMS.values() if p.source == NPM]
    _run([npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(cache / NPM), *wanted],
         f"npm install {' '.join(wanted)}")


def _install_pypi(program: Program, cache: Path) -> None:
    """Into a venv of the program's own: its many dependencies never meet the project's."""
    python = shutil.which("python3")
    if python is None:
        raise Unavailable(f"python3 is not installed, so {program.requirement} cannot be installed")
    venv = cache / program.launcher[0]
    _run([python, "-m", "venv", str(venv)], f"python3 -m venv {venv}")
    _run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", program.requirement],
         f"pip install {program.requirement}")


def install(program: Program, cache: Path | None = None) -> Path:
    """The program's launcher, installed into the cache on first use; raises Unavailable with the reason."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / ".install.lock"), timeout=1800):
        if not installed(program, cache) and program.source == NPM:
            _install_npm(cache)
        elif not installed(program, cache):
            _install_pypi(program, cache)
        if not installed(program, cache):
            raise Unavailable(f"{program.requirement} installed, but {launcher(program, cache)} is not there")
        return launcher(program, cache)


def _fill(template: str, api: MessagesAPI, workdir: Path) -> str:
    return template.replace("{api}", api.url).replace("{workdir}", str(workdir))


def environment(program: Program, home: Path, api: MessagesAPI, workdir: Path | None = None) -> dict[str, str]:
    """The program's environment in a test, its config files written into ``home``: nothing reachable but
    127.0.0.1 (the API at ``api``, any other host at its refusing proxy)."""
    workdir = workdir or home
    for relative, template in program.files.items():
        path = home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(template, api, workdir))
    env = loopback_environment(api.proxy_url, home, drop=program.drop)
    env.update({name: _fill(value, api, workdir) for name, value in program.variables.items()})
    return env


def command(program: Program, exe: Path, prompt: str, headless: bool = False) -> list[str]:
    """The argv of an interactive (or headless) run with this prompt."""
    args = program.headless if headless else program.interactive
    return [str(exe), *(a.replace("{prompt}", prompt) for a in args)]


CURSOR_LAUNCHER = """#!/usr/bin/env bash
# A stand-in of cursor-agent's launcher (the real program cannot be installed here), shaped as its docs describe:
# ~/.local/bin/cursor-agent links to this script, which runs the node bundled beside it.
DIR="$(dirname "$(readlink -f "$0")")"
"$DIR/node" "$DIR/index.js" "$@"
"""


def cursor_agent_standin(home: Path, version: str = "2026.01.01-hc0000") -> Path:
    """A cursor-agent of its documented shape under ``home``: ``~/.local/share/cursor-agent/versions/<v>/`` holding
    the launcher script and a bundled ``node`` (a copy of python running ``index.js``, which waits), and
    ``~/.local/bin/cursor-agent`` linking to the launcher. Not the real program: say so wherever it stands in."""
    versions = home / ".local" / "share" / "cursor-agent" / "versions" / version
    versions.mkdir(parents=True)
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else os.path.realpath(sys.executable)
    shutil.copy2(python, versions / "node")  # a copy: /proc/<pid>/exe names the copy, as it names a bundled node
    (versions / "index.js").write_text("import time\nwhile True:\n    time.sleep(60)\n")
    launcher = versions / "cursor-agent"
    launcher.write_text(CURSOR_LAUNCHER)
    launcher.chmod(0o755)
    link = home / ".local" / "bin" / "cursor-agent"
    link.parent.mkdir(parents=True)
    link.symlink_to(launcher)
    return link
