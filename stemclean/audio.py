"""Audio in and out, in blocks: checked reading, resampling, channel and length matching, atomic writing.

Everything here streams ``(channels, samples)`` float32 blocks so that memory does not grow with the file's length.
Sources are re-readable (``Source.read()`` starts a fresh stream) because the engine reads its inputs twice: once to
estimate the start level, once to clean.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from stemclean.files import atomic_path

# Frames per block read from disk: large enough to keep Python overhead low, small enough to keep memory flat.
BLOCK_FRAMES = 1 << 16
CLIP_MODES = ("rescale", "clamp", "none")


class AudioError(ValueError):
    """A problem with an input or output file, worded for the user in one line."""


Blocks = Iterator[np.ndarray]


@dataclass(frozen=True)
class Source:
    """A re-readable audio stream: ``read()`` yields float32 ``(channels, n)`` blocks, ``frames`` samples in all."""

    name: str
    rate: int
    channels: int
    frames: int
    read: Callable[[], Blocks]
    format: str = "WAV"
    subtype: str = "FLOAT"

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


def file_source(path: str | Path, name: str | None = None) -> Source:
    """Open ``path`` as a :class:`Source`, refusing missing, unreadable and empty files with one clear line.

    ``name`` is what messages call the file (e.g. ``<stdin>`` for a buffered pipe); it defaults to the path.
    """
    path = Path(path)
    name = name or str(path)
    if not path.exists():
        raise AudioError(f"{name}: no such file")
    if not path.is_file():
        raise AudioError(f"{name}: not a file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AudioError(f"{name}: not a readable audio file ({reason})") from None
    if info.frames <= 0:
        raise AudioError(f"{name}: contains no audio (0 samples)")

    def read() -> Blocks:
        with sf.SoundFile(str(path)) as f:
            for block in f.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
                yield _finite(block.T, name)

    return Source(name, info.samplerate, info.channels, info.frames, read, info.format, info.subtype)


def array_source(audio: np.ndarray, rate: int, name: str = "array") -> Source:
    """A :class:`Source` over an in-memory ``(channels, samples)`` array, checked like a file."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise AudioError(f"{name}: contains no audio (0 samples)")
    _finite(audio, name)

    def read() -> Blocks:
        for start in range(0, audio.shape[1], BLOCK_FRAMES):
            yield audio[:, start : start + BLOCK_FRAMES]

    return Source(name, int(rate), audio.shape[0], audio.shape[1], read)


def channels_first(audio_array: np.ndarray) -> np.ndarray:
    """soundfile's ``(samples,)`` or ``(samples, channels)`` -> the package's ``(channels, samples)``."""
    if audio_array.ndim not in (1, 2):
        raise AudioError(f"audio must be shaped (samples,) or (samples, channels), got {audio_array.shape}")
    return audio_array[None] if audio_array.ndim == 1 else audio_array.T


def sum_source(sources: list[Source], name: str) -> Source:
    """The sample-wise sum of several sources of one rate and channel count (a mixture rebuilt from its stems)."""
    first = sources[0]
    for other in sources[1:]:
        if (other.rate, other.channels) != (first.rate, first.channels):
            raise AudioError(
                f"{other.name}: rate or channel count differs from {first.name}; cannot sum them into a mix"
            )
    frames = max(s.frames for s in sources)

    def read() -> Blocks:
        streams = [rebuffer(fixed_length(s.read(), frames), BLOCK_FRAMES) for s in sources]
        for blocks in zip(*streams):
            yield np.sum(blocks, axis=0, dtype=np.float32)

    return Source(name, first.rate, first.channels, frames, read, first.format, first.subtype)


def _finite(block: np.ndarray, name: str | Path) -> np.ndarray:
    if not np.isfinite(block).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    return block


def rebuffer(blocks: Iterable[np.ndarray], size: int) -> Blocks:
    """Regroup a stream into blocks of exactly ``size`` samples (the last one may be shorter)."""
    pending: list[np.ndarray] = []
    held = 0
    for block in blocks:
        pending.append(block)
        held += block.shape[1]
        if held < size:
            continue
        joined = np.concatenate(pending, axis=1)
        cut = held - held % size
        yield from (joined[:, i : i + size] for i in range(0, cut, size))
        pending, held = [joined[:, cut:]], held - cut
    if held:
        yield np.concatenate(pending, axis=1)


def fixed_length(blocks: Iterable[np.ndarray], length: int) -> Blocks:
    """Trim or zero-pad a stream to exactly ``length`` samples."""
    remaining = length
    channels = None
    for block in blocks:
        channels = block.shape[0]
        if remaining <= 0:
            continue  # drain the source so files close
        yield block[:, :remaining]
        remaining -= block.shape[1]
    while remaining > 0 and channels is not None:
        n = min(remaining, BLOCK_FRAMES)
        yield np.zeros((channels, n), dtype=np.float32)
        remaining -= n


def resampled(blocks: Iterable[np.ndarray], rate_in: int, rate_out: int, channels: int) -> Blocks:
    """Stream ``blocks`` through soxr from ``rate_in`` to ``rate_out``; a no-op when the rates agree."""
    if rate_in == rate_out:
        yield from blocks
        return
    stream = soxr.ResampleStream(rate_in, rate_out, channels, dtype="float32")
    for block in blocks:
        out = stream.resample_chunk(np.ascontiguousarray(block.T))
        if len(out):
            yield out.T
    tail = stream.resample_chunk(np.zeros((0, channels), dtype=np.float32), last=True)
    if len(tail):
        yield tail.T


def resampled_length(frames: int, rate_in: int, rate_out: int) -> int:
    """Length of ``frames`` samples after resampling, the one rounding every stage agrees on."""
    return frames if rate_in == rate_out else int(round(frames * rate_out / rate_in))


def conformed(source: Source, rate: int, channels: int, frames: int) -> Blocks:
    """A fresh stream of ``source`` at ``rate`` with ``channels`` and exactly ``frames`` samples (a mix matched to its
    stem: resampled, up- or downmixed, and trimmed or padded)."""
    blocks = with_channels(source.read(), channels)
    return fixed_length(resampled(blocks, source.rate, rate, channels), frames)


def with_channels(blocks: Iterable[np.ndarray], channels: int) -> Blocks:
    """Match a stream's channel count: average down to mono, or copy mono out to every channel.

    Other combinations (e.g. 6 channels against 2) are refused before streaming starts, by ``engine.check_pair``.
    """
    for block in blocks:
        if block.shape[0] == channels:
            yield block
        elif channels == 1:
            yield block.mean(axis=0, keepdims=True)
        else:
            yield np.repeat(block, channels, axis=0)


def stdin_to_file() -> Path:
    """Copy the audio stream on stdin to a temporary file, since soundfile needs to seek. The caller deletes it."""
    fd, name = tempfile.mkstemp(prefix="stemclean-stdin-", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        shutil.copyfileobj(sys.stdin.buffer, f)
    return Path(name)


def output_format(requested: str | None, path: Path | None, fallback: str) -> str:
    """The container to write: the one asked for, else the output name's extension, else ``fallback`` (the input's)."""
    if requested:
        fmt = requested.upper()
    elif path is not None and path.suffix[1:].upper() in sf.available_formats():
        fmt = path.suffix[1:].upper()
    else:
        fmt = fallback
    if fmt not in sf.available_formats():
        raise AudioError(f"unknown output format {fmt.lower()!r}; try wav, flac or ogg")
    return fmt


def output_subtype(fmt: str, requested: str | None, source: Source) -> str:
    """The sample encoding to write: the one asked for, else the input's when the container allows it."""
    if requested:
        if not sf.check_format(fmt, requested.upper()):
            raise AudioError(f"subtype {requested!r} is not available for {fmt}; try {sf.default_subtype(fmt)}")
        return requested.upper()
    return source.subtype if sf.check_format(fmt, source.subtype) else sf.default_subtype(fmt)


def write(
    blocks: Iterable[np.ndarray],
    path: Path | None,
    rate: int,
    channels: int,
    fmt: str,
    subtype: str,
    clip_mode: str = "rescale",
) -> dict:
    """Write a stream to ``path`` atomically (``None`` means stdout) and return its peak and the gain applied.

    ``clip_mode``: ``rescale`` scales the whole output down if its peak exceeds full scale (this needs the peak first,
    so the audio goes through a float32 scratch file); ``clamp`` clips each sample; ``none`` writes the values as they
    are (integer subtypes then clip in libsndfile).
    """
    if clip_mode not in CLIP_MODES:
        raise AudioError(f"unknown clip mode {clip_mode!r}; expected one of {', '.join(CLIP_MODES)}")
    target = path if path is not None else Path(tempfile.mkdtemp(prefix="stemclean-out-")) / "out"
    try:
        with atomic_path(target) as final_name:
            if clip_mode == "rescale":
                peak, gain = _write_rescaled(blocks, final_name, rate, channels, fmt, subtype)
            else:
                if clip_mode == "clamp":
                    blocks = (np.clip(b, -1.0, 1.0) for b in blocks)
                peak, gain = _write_blocks(blocks, final_name, rate, channels, fmt, subtype), 1.0
        if path is None:
            with open(target, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer)
            sys.stdout.buffer.flush()
    finally:
        if path is None:
            shutil.rmtree(target.parent, ignore_errors=True)
    return {"peak": peak, "gain": gain}


def _write_rescaled(
    blocks: Iterable[np.ndarray], name: str, rate: int, channels: int, fmt: str, subtype: str
) -> tuple[float, float]:
    """Write through a float32 scratch file so the whole output's peak is known before the gain is chosen."""
    with _scratch(os.path.dirname(name)) as scratch:
        peak = _write_blocks(blocks, scratch, rate, channels, "WAV", "FLOAT")
        gain = 1.0 / peak if peak > 1.0 else 1.0
        _write_blocks(_scratch_blocks(scratch, gain), name, rate, channels, fmt, subtype)
    return peak, gain


def write_together(
    blocks: Iterable[np.ndarray],
    targets: list[tuple[Path, str, str]],
    rate: int,
    channels: int,
    clip_mode: str = "rescale",
) -> dict:
    """Write a stream that stacks several files' channels (``channels`` each, in ``targets``' order) to those files.

    For stems that must keep adding up to their mix: ``rescale`` gives every file the same gain (the loudest one's),
    so their sum stays the mix times that gain. Each target is ``(path, format, subtype)``. All are renamed into place
    together after the last one is written, so a failure leaves none of them. Returns each file's peak and the gain.
    """
    if clip_mode not in CLIP_MODES:
        raise AudioError(f"unknown clip mode {clip_mode!r}; expected one of {', '.join(CLIP_MODES)}")
    parts = [slice(i * channels, (i + 1) * channels) for i in range(len(targets))]
    with ExitStack() as stack:
        finals = [stack.enter_context(atomic_path(path)) for path, _, _ in targets]
        scratch = stack.enter_context(_scratch(targets[0][0].parent))
        peaks = [0.0] * len(targets)
        # W64, not WAV: the stacked stems of an hour-long track exceed WAV's 4 GB.
        with sf.SoundFile(scratch, "w", rate, channels * len(targets), "FLOAT", format="W64") as f:
            for block in blocks:
                if block.shape[1]:
                    peaks = [max(peak, float(np.max(np.abs(block[part])))) for peak, part in zip(peaks, parts)]
                    f.write(block.T)
        gain = 1.0 / max(peaks) if clip_mode == "rescale" and max(peaks) > 1.0 else 1.0
        for final, part, (_, fmt, subtype) in zip(finals, parts, targets):
            scaled = _scratch_blocks(scratch, gain, part)
            if clip_mode == "clamp":
                scaled = (np.clip(b, -1.0, 1.0) for b in scaled)
            _write_blocks(scaled, final, rate, channels, fmt, subtype)
    return {"peaks": peaks, "gain": gain}


@contextmanager
def _scratch(folder: str | Path) -> Iterator[str]:
    """A temporary file in ``folder`` (beside the outputs, so the space is there), removed afterwards."""
    fd, scratch = tempfile.mkstemp(dir=folder, prefix=".stemclean-scratch-", suffix=".tmp")
    os.close(fd)
    try:
        yield scratch
    finally:
        os.unlink(scratch)


def _scratch_blocks(scratch: str, gain: float, channels: slice = slice(None)) -> Blocks:
    """The scratch file's ``channels``, times ``gain``, in ``(channels, n)`` blocks."""
    with sf.SoundFile(scratch) as f:
        for block in f.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
            yield block.T[channels] * np.float32(gain)


def _write_blocks(blocks: Iterable[np.ndarray], name: str, rate: int, channels: int, fmt: str, subtype: str) -> float:
    peak = 0.0
    with sf.SoundFile(name, "w", samplerate=rate, channels=channels, format=fmt, subtype=subtype) as f:
        for block in blocks:
            if block.shape[1]:
                peak = max(peak, float(np.max(np.abs(block))))
                f.write(block.T)
    return peak
