"""SIGINT, SIGTERM and SIGHUP as one exception, so that every way of stopping stemclean runs the same cleanup.

Python turns only SIGINT into an exception; SIGTERM and SIGHUP would kill the process on the spot and leave temporary
files and worker processes behind. Here all three raise :class:`Interrupted`, so ``finally`` blocks and context managers
remove scratch files, and batch mode stops its workers.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(BaseException):
    """A stop signal arrived. A BaseException, like KeyboardInterrupt, so ``except Exception`` does not swallow it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (130 for Ctrl-C)."""
        return 128 + self.signum


def _interrupt(signum: int, _frame) -> None:
    # Further signals are ignored from here on, so the cleanup of the first one runs to its end (a second Ctrl-C used
    # to cut it short and print tracebacks). The cleanup is bounded in time: workers get a few seconds, then SIGKILL.
    for other in SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


def install() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in this process."""
    for signum in SIGNALS:
        signal.signal(signum, _interrupt)


@contextmanager
def terminal_signals_blocked() -> Iterator[None]:
    """Block the terminal's SIGINT and SIGHUP while starting a worker, which inherits the mask and so never sees them.

    A Ctrl-C reaches every process in the terminal's group; the workers leave it to the parent, which stops them in
    order, instead of each printing its own traceback mid-import. A signal that arrives meanwhile waits, then is
    delivered to the parent as soon as the block ends.
    """
    terminal = {s for s in SIGNALS if s != signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, terminal)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold stop signals back for a short step that must not be cut in half: creating a scratch folder and taking note
    of it, or removing it. A signal that arrives meanwhile is delivered when the step is done."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
