"""SIGINT, SIGTERM and SIGHUP as one exception, so that every way of stopping stemclean runs the same cleanup.

Python turns only SIGINT into an exception; SIGTERM and SIGHUP would kill the process on the spot and leave temporary
files and worker processes behind. Here all three raise :class:`Interrupted`, so ``finally`` blocks and context managers
remove scratch files, and batch mode stops its workers.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

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


def ignore_further() -> None:
    """Ignore stop signals from now on, so that the cleanup of the first one and the exit after it run to their end
    (a second Ctrl-C used to cut them short and print tracebacks). The cleanup is bounded in time: workers get a few
    seconds, then SIGKILL."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _interrupt(signum: int, _frame) -> None:
    ignore_further()
    raise Interrupted(signum)


def install() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in this process."""
    for signum in SIGNALS:
        signal.signal(signum, _interrupt)


@contextmanager
def _held(signals: set[int]) -> Iterator[None]:
    """Block ``signals`` and hold back their Python handlers until the block ends, then deliver the first that came.

    The mask alone is not enough: it covers only this thread, and a signal that the kernel hands to another thread
    (a progress display's) still runs the main thread's Python handler at its next bytecode. A batch interrupted that
    way inside ``Process.start`` closed the pipe before the new worker had read its start-up data, and the worker
    printed an EOFError traceback.
    """
    caught: list[int] = []
    # Python handlers run in the main thread only, and only it may set them; elsewhere (the library called from a
    # thread) the mask is all there is to hold.
    in_main = threading.current_thread() is threading.main_thread()
    handlers = {signum: signal.signal(signum, lambda signum, _frame: caught.append(signum))
                for signum in signals} if in_main else {}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        for signum, handler in handlers.items():  # None: a handler not set from Python; the default stands in
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        if caught:
            signal.raise_signal(caught[0])


def terminal_signals_blocked() -> AbstractContextManager[None]:
    """Block the terminal's SIGINT and SIGHUP while starting a worker, which inherits the mask and so never sees them.

    A Ctrl-C reaches every process in the terminal's group; the workers leave it to the parent, which stops them in
    order, instead of each printing its own traceback mid-import. A signal that arrives meanwhile waits, then is
    delivered to the parent as soon as the block ends.
    """
    return _held({s for s in SIGNALS if s != signal.SIGTERM})


def deferred() -> AbstractContextManager[None]:
    """Hold stop signals back for a short step that must not be cut in half: creating a scratch folder and taking note
    of it, or removing it. A signal that arrives meanwhile is delivered when the step is done."""
    return _held(set(SIGNALS))
