"""Worker processes for batch mode that survive crashes and stop promptly.

Each worker holds one task at a time, so a worker that dies (a codec that segfaults, the OOM killer) fails only its own
task, and a fresh worker takes the next one. It is written here, on multiprocessing's Process and Pipe, because the
standard pools cannot do either: ``concurrent.futures.ProcessPoolExecutor`` fails every pending task when one worker
dies, ``multiprocessing.Pool`` waits forever for a task whose worker died, and neither stops its running workers on
Ctrl-C without private attributes (an interrupted batch once hung in waitpid for good).
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from typing import Any

from stemclean import interrupts

# How long stopped workers get to remove their temporary files before they are killed.
STOP_GRACE_S = 5.0


def _serve(conn: Connection, init: Callable[..., None], initargs: tuple, work: Callable[[Any], Any]) -> None:
    """A worker's life: set up once, then answer one task at a time until told to stop (``None``) or signalled."""
    interrupts.install()  # SIGTERM from the parent unwinds the task, so its finally blocks remove its scratch files
    try:
        init(*initargs)
        while (task := conn.recv()) is not None:
            conn.send(work(task))
    except (interrupts.Interrupted, EOFError, BrokenPipeError):
        pass


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    task: Any = None


def _death(process: multiprocessing.process.BaseProcess) -> str:
    """How a worker ended, in words: "killed by SIGSEGV" or "exited with status 1"."""
    process.join(1.0)
    code = process.exitcode
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def run(
    tasks: list,
    work: Callable[[Any], Any],
    init: Callable[..., None],
    initargs: tuple,
    workers: int,
    on_result: Callable[[Any], None],
    on_crash: Callable[[Any, str], Any],
    tidy: Callable[[Any], None],
) -> None:
    """Run ``work(task)`` for every task in up to ``workers`` processes, calling ``on_result`` with each result.

    ``work`` and ``init`` must be importable functions (the workers are spawned). A task whose worker dies gives
    ``on_crash(task, how)``'s result instead. On any exception here (Ctrl-C, SIGTERM) the workers get SIGTERM and
    :data:`STOP_GRACE_S` seconds, then SIGKILL, so this returns or raises within that time. ``tidy(task)`` is called
    for every task whose worker ended without finishing it, once that worker is gone, to remove what it left.
    """
    context = multiprocessing.get_context("spawn")
    # Spawned workers share multiprocessing's resource tracker, which is started on the first spawn; starting it then
    # unblocks SIGINT on the way out, and the first worker would see the terminal's Ctrl-C after all. Start it first.
    resource_tracker.ensure_running()
    pending = deque(tasks)
    busy: list[_Worker] = []

    def start() -> None:
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child, init, initargs, work), daemon=True)
        with interrupts.terminal_signals_blocked():
            process.start()
        child.close()
        busy.append(_Worker(process, parent))
        give(busy[-1])

    def give(worker: _Worker) -> None:
        """Hand the worker the next task, or tell it to stop. If it has died, the loop below sees that and reports the
        task as crashed."""
        worker.task = pending.popleft() if pending else None
        try:
            worker.conn.send(worker.task)
        except OSError:
            pass
        if worker.task is None:
            busy.remove(worker)
            worker.process.join(STOP_GRACE_S)

    try:
        while pending or busy:
            while pending and len(busy) < workers:
                start()
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for worker in [w for w in busy if w.conn in ready or w.process.sentinel in ready]:
                try:
                    result = worker.conn.recv()
                except (EOFError, OSError):
                    busy.remove(worker)
                    how = _death(worker.process)
                    tidy(worker.task)
                    result = on_crash(worker.task, how)
                else:
                    give(worker)
                on_result(result)
    finally:
        _stop([w.process for w in busy])
        for worker in busy:
            tidy(worker.task)


def _stop(processes: list) -> None:
    """SIGTERM to every live worker, a grace period to clean up, then SIGKILL to any that is still there."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
