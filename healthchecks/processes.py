"""One scan of every process, keeping what the judges and fixers need to prove identity.

The scan reads /proc directly: two small reads and a readlink a process (stat, cmdline, exe), where psutil's
process_iter takes four and much more Python, which doubled the snapshot of a busy machine
(bench/RESULTS.md). Everything that acts on a process (details, signals) goes through psutil.

Identity is PID + start time in clock ticks since boot (field 22 of /proc/<pid>/stat): an exact
integer, unchanged by clock adjustments, read the same way by the scan and every re-verification.
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, fields, replace
from typing import TYPE_CHECKING, NamedTuple

from .programs import CLAUDE, TABLE, AgentProgram, Programs

if TYPE_CHECKING:
    import psutil

PROC = "/proc"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class OpenFile:
    fd: int
    path: str


@dataclass(frozen=True)
class Proc:
    """A process at scan time. Identity is (pid, start_ticks): a PID alone can be reused."""

    pid: int
    ppid: int
    pgid: int
    sid: int  # the session: the pane's shell for a process started in a tmux pane
    tty: int  # controlling terminal (tty_nr); 0 when it has none, or it was hung up
    name: str
    argv: tuple[str, ...]
    start_ticks: int
    state: str  # the kernel's one-letter state: R, S, D, Z (defunct), T, ...
    is_claude: bool = False  # the programs table's Claude entry, as Settings.is_claude decides it
    exe: str = ""  # /proc/<pid>/exe: the binary it runs, whatever it was named ("" when unreadable)
    # Read only for the processes that need proof of ownership (see with_details):
    cwd: str | None = None
    files: tuple[OpenFile, ...] = ()
    # The working directory as the kernel sees it: (st_dev, st_ino) of it and of each folder above it. A path is
    # a string in the process's own mount namespace; only these say which directory it is.
    cwd_ids: tuple[tuple[int, int], ...] = ()
    own_mounts: bool = True  # False: another mount namespace (a sandbox, a container): its paths name other things
    env: tuple[tuple[str, str], ...] = ()  # only the variables a dialect asked for (its id variable)
    # The kernel's word (a link count of 0) that its working directory was removed, and that the terminal on its
    # standard streams was (the pane it ran in closed); and its CPU seconds (user + system)
    cwd_deleted: bool = False
    terminal_gone: bool = False
    cpu: float | None = None
    program: AgentProgram | None = None  # the agent program it runs (programs.py): CLAUDE exactly when is_claude

    @property
    def agent(self) -> bool:
        """It runs an agent program, Claude Code or another, and has not exited."""
        return self.program is not None and not self.defunct

    def getenv(self, name: str) -> str | None:
        return next((v for k, v in self.env if k == name), None)

    @property
    def headless(self) -> bool:
        """A run without a person at a prompt, by its own program's flags or subcommand (Claude's `-p`, Codex's
        `exec`, opencode's `run`, Aider's `--message`); no agent program's process is never one."""
        return self.program is not None and self.program.headless(self.argv)

    @property
    def defunct(self) -> bool:
        return self.state == "Z"


_OPEN = os.O_RDONLY | os.O_CLOEXEC
READ_CHUNK = 64 * 1024  # a /proc file is read whole, in chunks of this size (a stat line is one)


def _read(path: str, limit: int | None = None) -> bytes:
    """The whole file (its first ``limit`` bytes), by descriptor: open, read until end, close. Python's buffered file
    object added an fstat, an isatty ioctl and two lseeks a file, and its own objects: a quarter of the scan's
    reading time (bench/RESULTS.md). A /proc file hands over all it holds to one read asked for more: a shorter
    first read is the end, not asked again (the scan's two files a process: two reads of four syscalls less)."""
    fd = os.open(path, _OPEN)
    try:
        chunk = os.read(fd, READ_CHUNK)
        if len(chunk) < READ_CHUNK:
            return chunk if limit is None else chunk[:limit]
        chunks, got = [chunk], len(chunk)
        while (limit is None or got < limit) and (chunk := os.read(fd, READ_CHUNK)):
            chunks.append(chunk)
            got += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return data if limit is None else data[:limit]


class Stat(NamedTuple):
    """Made for every process of every scan: a named tuple is made in a third of a frozen dataclass's time."""

    name: str
    state: str
    ppid: int
    pgid: int
    sid: int
    tty: int
    start_ticks: int


def _parse_stat(raw: bytes) -> Stat:
    """The fields of /proc/<pid>/stat we use; the name sits in parentheses and may hold anything."""
    left, right = raw.index(b"("), raw.rindex(b")")
    f = raw[right + 2 :].split(None, 20)  # up to start_ticks (f[19]): the 30-odd fields after it are never read
    name = os.fsdecode(raw[left + 1 : right])
    return Stat(name, f[0].decode(), int(f[1]), int(f[2]), int(f[3]), int(f[4]), int(f[19]))


def _argv(raw: bytes) -> tuple[str, ...]:
    """As psutil splits it: by NUL, or by spaces when a process rewrote its title (setproctitle).

    A title written over the argument area (node's ``process.title``, libuv) leaves the rest of the
    area NUL: ``claude\\0\\0\\0...``, one argument, not dozens of empty ones.
    """
    data = os.fsdecode(raw)
    if not data.strip("\0"):
        return ()
    sep = "\0" if data.endswith("\0") else " "
    args = data.rstrip(sep).split(sep)
    if sep == "\0" and len(args) == 1 and " " in args[0]:
        args = args[0].split(" ")
    return tuple(args)


def start_ticks(pid: int) -> int | None:
    """The identity half that a PID lacks; None when no process has this PID now."""
    try:
        return _parse_stat(_read(f"{PROC}/{pid}/stat")).start_ticks
    except (OSError, ValueError, IndexError):
        return None


def _exe(entry: str) -> str:
    try:
        return os.readlink(f"{PROC}/{entry}/exe").removesuffix(" (deleted)")
    except OSError:  # a kernel thread, another user's process, another namespace: judged by name and argv
        return ""


def scan(
    is_claude: Callable[[str, tuple[str, ...], str], bool], exe: bool = True, uid: int | None = None,
    programs: Programs = TABLE,
) -> tuple[Proc, ...]:
    """Every process on the machine, read once: identity, parent, group, name, argv, binary, state.

    The binary (``exe``) is what tells an installed Claude Code whatever its name; a kernel thread or a defunct
    process (no argv) has none, so it is not asked. Re-verification, which only needs identities, skips it.

    With ``uid``, only that user's processes may be Claude: the fleet's user runs its agents, and another user's
    process can name itself anything (prctl), `claude` included. ``programs`` recognises the others (the run's
    Settings.programs: the built-in table and the configured programs).
    """
    procs = []
    for entry in os.listdir(PROC):
        if not entry.isdigit():
            continue
        try:  # a process may exit between the listing and the reads
            st = _parse_stat(_read(f"{PROC}/{entry}/stat"))
            argv = _argv(_read(f"{PROC}/{entry}/cmdline"))
        except (OSError, ValueError, IndexError):
            continue
        binary = _exe(entry) if exe and argv else ""
        claude = is_claude(st.name, argv, binary) and (uid is None or owner(entry) == uid)
        program = CLAUDE if claude else _other(programs, entry, argv, binary, uid)
        procs.append(_scanned(int(entry), st, argv, claude, binary, program))
    return tuple(procs)


_UNREAD = {f.name: f.default for f in fields(Proc) if f.default is not MISSING}  # what the scan leaves at its default


def _scanned(pid: int, st: Stat, argv: tuple[str, ...], claude: bool, binary: str,
             program: AgentProgram | None) -> Proc:
    """Proc(pid, st..., argv, claude, binary, program=program), made without the frozen dataclass's __init__ (one
    object.__setattr__ a field, 21 of them): its every field set in one dict update (2.9 -> 0.6 us a process; the
    same object: equal, same hash and repr, replace and pickle alike; Proc has no __post_init__)."""
    proc = object.__new__(Proc)
    proc.__dict__.update(_UNREAD, pid=pid, ppid=st.ppid, pgid=st.pgid, sid=st.sid, tty=st.tty, name=st.name, argv=argv,
                         start_ticks=st.start_ticks, state=st.state, is_claude=claude, exe=binary, program=program)
    return proc


def _other(programs: Programs, entry: str, argv: tuple[str, ...], binary: str, uid: int | None) -> AgentProgram | None:
    """Another agent program (Programs.recognise: one search for a process none can be), of the fleet's user."""
    program = programs.recognise(binary, argv) if binary else None
    return program if program is not None and (uid is None or owner(entry) == uid) else None


def binary(pid: int) -> tuple[str, tuple[int, int]] | None:
    """The file a process runs: its path (as its own mounts name it) and, through /proc/<pid>/exe, the file itself
    as the kernel identifies it (st_dev, st_ino: a replaced or deleted binary too); None when unreadable (another
    user's process, a non-dumpable one, gone)."""
    try:
        st = os.stat(f"{PROC}/{pid}/exe")
        path = os.readlink(f"{PROC}/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return None
    return path, (st.st_dev, st.st_ino)


def owner(pid: int | str) -> int | None:
    """Who runs a process (one stat; the scan asks only for those that look like Claude)."""
    try:
        return os.stat(f"{PROC}/{pid}").st_uid
    except OSError:
        return None


def children_of(procs: Iterable[Proc]) -> dict[int, list[int]]:
    result: dict[int, list[int]] = defaultdict(list)
    for proc in procs:
        if proc.pid != proc.ppid:
            result[proc.ppid].append(proc.pid)
    return result


def descendants(children: dict[int, list[int]], root: int) -> list[int]:
    """``root`` and every process below it."""
    found, stack, seen = [], [root], set()
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            found.append(pid)
            stack.extend(children.get(pid, ()))
    return found


def with_details(procs: tuple[Proc, ...], pids: set[int], env_names: frozenset[str] = frozenset()) -> tuple[Proc, ...]:
    """Add cwd and open files to the processes in ``pids``: the evidence of who owns them.

    Read only where a judge needs it (Claude outside every pane, and its process group): on a
    busy machine that is a handful of processes, not thousands. A PID reused since the scan gets
    no details, so the evidence always belongs to the process that was scanned.
    """
    result = []
    for proc in procs:
        if proc.pid in pids:
            proc = _detailed(proc, env_names)
        result.append(proc)
    return tuple(result)


def _detailed(proc: Proc, env_names: frozenset[str]) -> Proc:
    import psutil  # on first use: the sources table, loaded by every pytest run, imports this module

    try:
        process = psutil.Process(proc.pid)
        cwd = process.cwd()
    except psutil.NoSuchProcess:
        return proc
    except (psutil.Error, OSError):
        cwd = None
    files = open_files(proc.pid)
    env = environ(proc.pid, env_names) if env_names else ()
    ids, own = directory_ids(f"{PROC}/{proc.pid}/cwd"), same_mounts(proc.pid)
    removed, hung_up, cpu = _removed(f"{PROC}/{proc.pid}/cwd"), terminal_gone(proc.pid), _cpu(process)
    if start_ticks(proc.pid) != proc.start_ticks:  # the PID was reused while we read: not this process's
        return proc
    return replace(proc, cwd=cwd, files=files, cwd_ids=ids, own_mounts=own, env=env, cwd_deleted=removed,
                   terminal_gone=hung_up, cpu=cpu)


def _removed(path: str) -> bool:
    """Whether the file or directory behind a /proc link was removed: its link count is 0 (no name can fake it)."""
    try:
        return os.stat(path).st_nlink == 0
    except OSError:
        return False


def terminal_gone(pid: int) -> bool:
    """Its controlling terminal is no more: none (tty_nr 0) and a standard stream on a removed pseudo-terminal, as
    a process of a killed tmux pane is left (its pty freed); a process that never had a terminal is not."""
    try:
        if _parse_stat(_read(f"{PROC}/{pid}/stat")).tty != 0:
            return False
    except (OSError, ValueError, IndexError):
        return False
    for fd in (0, 1, 2):
        try:
            target = os.readlink(f"{PROC}/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/dev/pts/") and _removed(f"{PROC}/{pid}/fd/{fd}"):
            return True
    return False


def _cpu(process: psutil.Process) -> float | None:
    import psutil

    try:
        times = process.cpu_times()
    except (psutil.Error, OSError):
        return None
    return float(times.user + times.system)


def cwds(pids: Iterable[int]) -> dict[int, str]:
    """pid -> its working directory, for those that can be read (one readlink each)."""
    found = {}
    for pid in set(pids):
        try:
            found[pid] = os.readlink(f"{PROC}/{pid}/cwd")
        except OSError:
            continue
    return found


MAX_DEPTH = 64  # folders above a working directory that are looked at


def directory_ids(path: str) -> tuple[tuple[int, int], ...]:
    """(st_dev, st_ino) of a directory and of each one above it, up to its root (bounded); () if unreadable.

    Through /proc/<pid>/cwd the walk starts at the very directory the process is in, in its own mounts."""
    found: list[tuple[int, int]] = []
    for depth in range(MAX_DEPTH):
        try:
            st = os.stat(path + "/.." * depth)
        except OSError:
            return tuple(found)
        if found and found[-1] == (st.st_dev, st.st_ino):  # `..` of the root is the root
            break
        found.append((st.st_dev, st.st_ino))
    return tuple(found)


def same_mounts(pid: int) -> bool:
    """Whether a process sees this process's mounts (same mount namespace and root); True when it cannot be told."""
    try:
        if os.readlink(f"{PROC}/{pid}/ns/mnt") != os.readlink(f"{PROC}/self/ns/mnt"):
            return False
        theirs, mine = os.stat(f"{PROC}/{pid}/root"), os.stat(f"{PROC}/self/root")
        return (theirs.st_dev, theirs.st_ino) == (mine.st_dev, mine.st_ino)
    except OSError:
        return True


ENVIRON_LIMIT = 256 * 1024  # an environment is rarely above a few KiB; what lies past this is not read


def environ(pid: int, names: frozenset[str]) -> tuple[tuple[str, str], ...]:
    """The wanted variables of a process's initial environment (bounded read; unreadable: none)."""
    return environ_read(pid, names) or ()


def environ_read(pid: int, names: frozenset[str]) -> tuple[tuple[str, str], ...] | None:
    """As ``environ``, but None when it cannot be read (the process gone, another user's): a reader that falls back
    to another source of the same facts tells that from an environment without them."""
    try:
        raw = _read(f"{PROC}/{pid}/environ", ENVIRON_LIMIT)
    except OSError:
        return None
    return variables(raw, names)


@functools.lru_cache(maxsize=64)
def _keys(names: frozenset[str]) -> tuple[tuple[bytes, str], ...]:
    """What marks each wanted variable in `\\0` + an environment; a name holding `=` or NUL is never set."""
    return tuple((b"\0" + name.encode() + b"=", name) for name in names if "=" not in name and "\0" not in name)


def variables(raw: bytes, names: frozenset[str]) -> tuple[tuple[str, str], ...]:
    """The wanted variables of a NUL-separated environment, in its order (a name set twice: each, in turn). Each
    name is searched for in C, not every variable split and compared in Python: an environment holds dozens, a
    reader wants a few (Gas Town's five of a pane's 80: 0.6x the time, bench/RESULTS.md)."""
    text = b"\0" + raw
    found = []
    for key, name in _keys(names):
        at = text.find(key)
        while at >= 0:
            start = at + len(key)
            end = text.find(b"\0", start)
            found.append((at, name, (text[start:end] if end >= 0 else text[start:]).decode("utf-8", "replace")[:200]))
            at = text.find(key, end) if end >= 0 else -1
    found.sort()
    return tuple((name, value) for _, name, value in found)


def open_files(pid: int) -> tuple[OpenFile, ...]:
    """The paths a process holds open (fd -> path); sockets, pipes and the like are left out."""
    found = []
    base = f"{PROC}/{pid}/fd"
    try:
        fds = os.listdir(base)
    except OSError:
        return ()
    for fd in fds:
        try:
            target = os.readlink(f"{base}/{fd}")
        except OSError:
            continue
        if target.startswith("/"):
            found.append(OpenFile(int(fd), target.removesuffix(" (deleted)")))
    return tuple(sorted(found, key=lambda f: f.fd))


def started_at(proc: Proc, boot_time: float) -> float:
    """When a process started, in seconds since the epoch (the machine's boot time + its start ticks)."""
    return boot_time + proc.start_ticks / CLOCK_TICKS


def lineage(pid: int) -> frozenset[int]:
    """A process and its ancestors: the suite must never judge or signal the tree it runs in."""
    import psutil

    try:
        me = psutil.Process(pid)
        return frozenset([pid, *(p.pid for p in me.parents())])
    except psutil.Error:
        return frozenset([pid])
