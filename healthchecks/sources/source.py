"""What one line of the sources table (healthchecks.sources.SOURCES) says of a manager's store, typed.

A manager's package (healthchecks/sources/<manager>/) holds its reader, its dialects, its writer where its protocol
allows one, its world for tests, its demo and its bench world, and defines its line(s) here: a Source. Its writer,
its demo and its bench world are named by module path, never imported by the checks (readers never import writers;
the checks never import tests' worlds): the fix imports the writer (fixers.writers.by_source), --demo the demo
(healthchecks.testing.demo), bench/run.py the bench world (healthchecks.testing.bench); each package checks them
against their protocols for the type checker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..dialect import Dialect
from ..records import Fingerprint, Records


class Reader(Protocol):
    """A reader module (positional parameters: each names them its own way). It provides:

    - ``present(workspace) -> bool``: whether its store is there (`auto` tries the sources in table order);
    - ``load(workspace, timeout) -> Records``: the neutral model (healthchecks.records), with its Dialect;
    - ``fingerprint(workspace, before) -> Fingerprint``: cheap, changes whenever a record does (compared after the
      live reads with ``before``, the fingerprint ``load`` read: a file it digested is digested again);
    - ``flocked(workspace, records | None) -> set[Path]``: the files its manager flocks to write them, held still
      under a shared flock while a snapshot reads (healthchecks.holding); empty when it locks otherwise.
    """

    def present(self, workspace: Path, /) -> bool: ...
    def load(self, workspace: Path, timeout: float, /) -> Records: ...
    def fingerprint(self, workspace: Path, before: Fingerprint, /) -> Fingerprint: ...
    def flocked(self, workspace: Path, records: Records | None, /) -> set[Path]: ...


@dataclass(frozen=True)
class Place:
    """A store in a place of its own (a manager's home directory) rather than in the workspace: its options
    ((flag, help, default), ...) and ``locate``, which finds the place from their values. The place becomes the
    run's workspace (what is locked, owned and looked inside), see healthchecks.sources.resolve; the values given
    travel with the run's settings to ``load`` when its reader needs more of them than the place."""

    options: tuple[tuple[str, str, str], ...]
    locate: Callable[[Mapping[str, str]], Path]
    # Its reader's load when the same values name more than the place (the tmux server its agents live on, which no
    # directory says: Gas Town's --gt-socket): load(place, timeout, given), ``given`` this run's values of its
    # options (Settings.place_options), never state kept between runs. None: its reader's load(place, timeout).
    load: Callable[[Path, float, Mapping[str, str]], Records] | None = None


@dataclass(frozen=True)
class Source:
    name: str  # --source NAME, --demo-source NAME, settings.source in every output, the records_source gauge
    reader: Reader
    dialects: tuple[Dialect, ...]  # every dialect its records may be read in
    about: str  # one line for --help
    place: Place | None = None  # None: its store is in the workspace
    writer: str | None = None  # the module of its fixers.writers.Writer (None: its records are never written)
    demo: str | None = None  # "module:function" building its demo world (healthchecks.testing.demo.Builder)
    bench: str | None = None  # "module:function" building its bench round's world (healthchecks.testing.bench.
    # BenchBuilder); None: no round of its own
    # The processes its manager's own files prove its own, read once per snapshot in EVERY source's run (the
    # attribution asks it first: such a process is information naming this manager, never another's orphan):
    # managed(option values) -> pid -> (start ticks, what proves it). None: it proves none.
    managed: Callable[[Mapping[str, str]], dict[int, tuple[int, str]]] | None = None
