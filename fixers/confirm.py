"""Ask once, on the terminal itself: pytest captures stdin and stdout, but not /dev/tty."""

from __future__ import annotations

import contextlib
import os
import select
import termios
from collections.abc import Iterator

from healthchecks.text import for_people

NO_TERMINAL = (
    "no terminal to ask for confirmation on, and no --yes: nothing was changed "
    "(pass --yes to apply the plan without asking, or --dry-run to only print it)"
)
# The longest a Ctrl-C another thread took waits to be acted on: Python runs signal handlers in the main thread
# only, between bytecodes, and a signal one of the run's other threads (pytest-xdist's, a timer) took never wakes
# the main thread from a blocking read().
WAKE = 0.2
MAX_ANSWER = 4096  # bytes of an answer kept: `yes` needs four


def ask(plan_lines: list[str], count: int, tty_path: str = "/dev/tty") -> tuple[bool, str]:
    """Show the whole plan and ask for a typed `yes`; (confirmed, what happened).

    The plan's lines carry the registry's and the processes' text: shown escaped, so no escape sequence can
    rewrite what the person reads. What was typed before the question is on the screen (say, during a slow
    snapshot) is discarded: only an answer to this plan confirms it. Ctrl-C ends the wait at once
    (KeyboardInterrupt), whichever thread the signal went to.
    """
    question = [
        "",
        "agent-healthchecks remediation plan:",
        *(for_people(line) for line in plan_lines),
        "",
        f"Apply these {count} actions? Type yes to proceed: ",
    ]
    try:  # two streams: a text stream opened "r+" needs a seekable file, and a terminal is not one
        with (
            open(tty_path, "w", encoding="utf-8") as out,
            open(tty_path, "rb", buffering=0) as inp,
            _line_mode(inp.fileno()),  # before the question shows: no answer is lost
        ):
            out.write("\n".join(question))
            out.flush()
            answer = _read_line(inp.fileno()).decode(errors="replace").strip()
    except OSError:
        return False, NO_TERMINAL
    if answer == "yes":
        return True, "confirmed on the terminal"
    return False, f"not confirmed (answered {answer!r}): nothing was changed"


@contextlib.contextmanager
def _line_mode(fd: int) -> Iterator[None]:
    """Typed lines, echoed, Enter ending them and Ctrl-C a signal while the person answers (a program that crashed
    in raw mode may have left these off); typeahead discarded; the terminal's own modes back afterwards."""
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:  # not a terminal (a test's file): no mode to set, nothing pending
        saved = None
    if saved is not None:
        wanted = list(saved)
        wanted[0] |= termios.ICRNL  # iflag
        wanted[3] |= termios.ICANON | termios.ECHO | termios.ISIG  # lflag
        termios.tcsetattr(fd, termios.TCSAFLUSH, wanted)  # TCSAFLUSH: what was typed before is discarded
    try:
        yield
    finally:
        if saved is not None:
            with contextlib.suppress(termios.error):  # the terminal hung up meanwhile
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_line(fd: int) -> bytes:
    """The first line typed (at most MAX_ANSWER bytes), waiting in poll() at most WAKE at a time so the main thread
    runs between waits: a Ctrl-C caught by any thread raises KeyboardInterrupt here within WAKE."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    line = b""
    while b"\n" not in line and len(line) < MAX_ANSWER:
        if not poller.poll(WAKE * 1000):
            continue
        chunk = os.read(fd, MAX_ANSWER)
        if not chunk:  # end of file: a test's file read to its end
            break
        line += chunk
    return line.split(b"\n", 1)[0]
