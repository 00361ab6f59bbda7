"""Progress on stderr: rich's bar on a terminal, and in a log (nohup, CI, a file) one plain line every few seconds.

rich draws nothing on a non-terminal until the work ends, so a log would show no progress at all; separators such as
demucs do show it there, so stemclean writes its own lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

# Seconds between two progress lines in a log.
LOG_INTERVAL_S = 5.0


class LogLines:
    """The part of rich's ``Progress`` that the CLI uses (``add_task``, ``update``, ``advance``), written as lines:
    ``cleaning vocals.wav: 45% after 5 s, about 6 s left``, at most one per :data:`LOG_INTERVAL_S`."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.clock = clock
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def add_task(self, description: str, total: float | None = None) -> int:
        now = self.clock()
        self.tasks[len(self.tasks)] = {"description": description, "total": total, "completed": 0, "start": now,
                                       "printed": now}
        return len(self.tasks) - 1

    def update(self, task: int, completed: float | None = None, total: float | None = None) -> None:
        state = self.tasks[task]
        if total is not None:
            state["total"] = total
        if completed is not None:
            state["completed"] = completed
        self._report(state)

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, completed=self.tasks[task]["completed"] + advance)

    def _report(self, state: dict) -> None:
        now = self.clock()
        if now - state["printed"] < LOG_INTERVAL_S or not state["total"]:
            return
        state["printed"] = now
        done, elapsed = state["completed"] / state["total"], now - state["start"]
        left = f", about {elapsed * (1 - done) / done:.0f} s left" if done else ""
        self.console.print(f"{state['description']}: {done:.0%} after {elapsed:.0f} s{left}", markup=False)


def display(console: Console, quiet: bool) -> Progress | LogLines:
    """What shows progress on ``console``: nothing with ``--quiet``, a bar on a terminal, else :class:`LogLines`."""
    if not quiet and not console.is_terminal:
        return LogLines(console)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet,
    )
