"""Ask once, on the terminal itself: pytest captures stdin and stdout, but not /dev/tty."""

from __future__ import annotations

import contextlib
import termios

from healthchecks.text import for_people

NO_TERMINAL = (
    "no terminal to ask for confirmation on, and no --yes: nothing was changed "
    "(pass --yes to apply the plan without asking, or --dry-run to only print it)"
)


def ask(plan_lines: list[str], count: int, tty_path: str = "/dev/tty") -> tuple[bool, str]:
    """Show the whole plan and ask for a typed `yes`; (confirmed, what happened).

    The plan's lines carry the registry's and the processes' text: shown escaped, so no escape sequence can
    rewrite what the person reads. What was typed before the question is on the screen (say, during a slow
    snapshot) is discarded: only an answer to this plan confirms it.
    """
    question = [
        "",
        "agent-healthchecks remediation plan:",
        *(for_people(line) for line in plan_lines),
        "",
        f"Apply these {count} actions? Type yes to proceed: ",
    ]
    try:  # two streams: a text stream opened "r+" needs a seekable file, and a terminal is not one
        with open(tty_path, "w", encoding="utf-8") as out, open(tty_path, encoding="utf-8") as inp:
            with contextlib.suppress(termios.error):  # not a terminal (a test's file): nothing is pending
                termios.tcflush(inp.fileno(), termios.TCIFLUSH)  # before the question shows: no answer is lost
            out.write("\n".join(question))
            out.flush()
            answer = inp.readline().strip()
    except OSError:
        return False, NO_TERMINAL
    if answer == "yes":
        return True, "confirmed on the terminal"
    return False, f"not confirmed (answered {answer!r}): nothing was changed"
