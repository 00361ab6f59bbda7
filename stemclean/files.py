"""Atomic file writes: every output appears whole or not at all, so an interrupted run never leaves half a file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    """The process's umask; the OS only reports it by setting a new one, so it is put straight back."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(final: Path) -> Iterator[str]:
    """A temporary path beside ``final`` that replaces it only if the block finishes; never a partial output."""
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    # mkstemp makes the file private (0600); the output gets the mode any new file would get under the user's umask.
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    try:
        yield name
        os.replace(name, final)
    finally:
        if os.path.exists(name):
            os.unlink(name)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
