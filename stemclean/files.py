"""Files on disk: atomic and no-replace publishing, scratch folders, per-output locks, and OS errors in plain words.

Every output is built in a private scratch folder beside it (same filesystem, so publishing is a link or a rename) and
appears whole or not at all. The scratch folder and the lock are named after the output, so a later run that holds the
lock can recognise and remove what a killed run left behind.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stemclean import interrupts

SCRATCH_SUFFIX = ".stemclean.tmp"


class OutputExists(FileExistsError):
    """An output that appeared while it was being made; it is kept, and the new one is not published."""


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


def _scratch_prefix(final: Path) -> str:
    return f".{final.name}."


@contextmanager
def scratch_dir(final: Path | None) -> Iterator[Path]:
    """A private folder for ``final``'s temporary files, removed on every exit path.

    It sits beside ``final`` (so :func:`publish` never copies across filesystems), or in ``$TMPDIR`` when the output
    goes to stdout (``final`` is ``None``).
    """
    where, prefix = (final.parent, _scratch_prefix(final)) if final is not None else (None, "stemclean-")
    with interrupts.deferred():  # a signal between creating the folder and noting its name would leak it
        try:
            path = Path(tempfile.mkdtemp(prefix=prefix, suffix=SCRATCH_SUFFIX, dir=where))
        except OSError as err:
            raise type(err)(err.errno, err.strerror, str(where or tempfile.gettempdir())) from None
        _live_scratch.add(path)
    try:
        yield path
    finally:
        _remove_scratch(path)


# Scratch folders not yet removed. A signal can land between a context manager's __enter__ and its block, where no
# finally runs; the process still exits normally (stop signals are exceptions here), so atexit removes those.
_live_scratch: set[Path] = set()


def _remove_scratch(path: Path) -> None:
    with interrupts.deferred():
        shutil.rmtree(path, ignore_errors=True)
        _live_scratch.discard(path)


@atexit.register
def _remove_abandoned_scratch() -> None:
    for path in list(_live_scratch):
        _remove_scratch(path)


def remove_stale_scratch(final: Path) -> None:
    """Remove scratch folders that killed runs left beside ``final``. Call it only while holding ``final``'s lock."""
    prefix = _scratch_prefix(final)
    for entry in os.scandir(final.parent):
        if entry.name.startswith(prefix) and entry.name.endswith(SCRATCH_SUFFIX):
            shutil.rmtree(entry.path, ignore_errors=True)


# Filesystems without hard links (FAT, exFAT, some network shares) answer os.link with one of these.
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS}


def publish(built: Path, final: Path, overwrite: bool) -> None:
    """Move ``built`` to ``final`` in one step. Without ``overwrite``, a file already at ``final`` is never replaced,
    even one that appeared a moment ago: ``os.link`` fails on an existing name, where ``os.replace`` would not."""
    if overwrite:
        os.replace(built, final)
        return
    try:
        os.link(built, final)
    except FileExistsError:
        raise OutputExists(f"{final} appeared while cleaning and was kept; pass --overwrite to replace it") from None
    except OSError as err:
        if err.errno not in _NO_HARD_LINKS:
            raise
        _publish_exclusive(built, final)
        return
    os.unlink(built)


def _publish_exclusive(built: Path, final: Path) -> None:
    """Without hard links: claim the name with O_EXCL (which also fails on an existing file), then rename over it."""
    try:
        os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise OutputExists(f"{final} appeared while cleaning and was kept; pass --overwrite to replace it") from None
    os.replace(built, final)


def _lock_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.lock")


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive lock on ``path``, or ``None`` when another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed the lock file between our open and our lock: try the new one


@contextmanager
def output_lock(final: Path) -> Iterator[bool]:
    """Hold ``.<name>.lock`` beside ``final`` so that two stemclean processes never make the same output at once.

    Yields ``False`` when another process holds it. The lock is released by the kernel if the holder dies, so a killed
    run never blocks a later one; the file itself is removed by the holder on the way out.
    """
    path = _lock_name(final)
    with interrupts.deferred():  # as in scratch_dir: a lock file taken is always a lock file removed
        try:
            fd = _try_lock(path)
        except OSError as err:  # name the folder, not the hidden lock file
            raise type(err)(err.errno, err.strerror, str(final.parent)) from None
        if fd is not None:
            _held_locks[path] = fd
    try:
        yield fd is not None
    finally:
        if fd is not None:
            _release(path)


_held_locks: dict[Path, int] = {}


def _release(path: Path) -> None:
    with interrupts.deferred():
        path.unlink(missing_ok=True)
        os.close(_held_locks.pop(path))


@atexit.register
def _release_abandoned_locks() -> None:
    for path in list(_held_locks):
        _release(path)


_PLAIN_WORDS = {
    errno.ENOSPC: "no space left on the device holding {}",
    errno.EDQUOT: "disk quota exceeded on the device holding {}",
    errno.EACCES: "permission denied: {}",
    errno.EPERM: "permission denied: {}",
    errno.EROFS: "read-only file system: {}",
    errno.ELOOP: "symlink loop at {}",
    errno.ENOENT: "{}: no such file",
    errno.ENOTDIR: "{}: a part of the path is not a folder",
    errno.EISDIR: "{} is a folder",
    errno.ENAMETOOLONG: "file name too long: {}",
    errno.EIO: "input/output error on {}",
    errno.EFBIG: "file too large: {}",
    errno.EPIPE: "{} was closed before the output was written",
}


def plain_os_error(err: OSError, subject: str | os.PathLike | None = None) -> str:
    """``err`` as one line that names the file and the cause: "no space left on ...", "permission denied: ..."."""
    if isinstance(err, OutputExists) or err.errno is None:
        return str(err)
    subject = subject if subject is not None else err.filename
    if subject is None:
        return err.strerror or str(err)
    wording = _PLAIN_WORDS.get(err.errno)
    return wording.format(subject) if wording else f"{subject}: {err.strerror or err}"
