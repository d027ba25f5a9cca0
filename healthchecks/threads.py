"""The threads the tool starts leave the terminal's signals to the main thread.

A process-directed signal (Ctrl-C's SIGINT, a SIGTERM, pytest-timeout's SIGALRM) goes to any one thread that does
not block it. Python runs its handler only in the main thread, between bytecodes: a signal a helper thread took
does not interrupt the main thread's blocking call, and Ctrl-C seems lost until that call returns.
"""

from __future__ import annotations

import signal
import threading

MAIN_THREADS_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGALRM})


def leave_signals_to_main() -> None:
    """Block the main thread's signals in the calling thread: the first thing every helper thread does
    (a ThreadPoolExecutor's initializer)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREADS_SIGNALS)


class Timer(threading.Timer):
    """threading.Timer whose thread leaves the main thread's signals to it."""

    def run(self) -> None:
        leave_signals_to_main()
        super().run()
