"""Audio in and out, in blocks: checked reading, resampling, channel and length matching, atomic writing.

Everything here streams ``(channels, samples)`` float32 blocks so that memory does not grow with the file's length.
Sources are re-readable (``Source.read()`` starts a fresh stream) because the engine reads its inputs twice: once to
estimate the start level, once to clean.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from stemclean.files import plain_os_error, publish, scratch_dir

# Frames per block read from disk: large enough to keep Python overhead low, small enough to keep memory flat.
BLOCK_FRAMES = 1 << 16
CLIP_MODES = ("rescale", "clamp", "none")
# No audio format means anything beyond this (float files hold +-1.0 at full scale); a larger value is a broken file,
# and left in, it turns the whole output into NaN or full-scale DC.
MAX_SAMPLE = 1e6
# Stdin is spooled to a file because soundfile must seek; this is the default cap on that spool (--max-stdin).
MAX_STDIN_BYTES = 4 * 10**9
# Bits of the integer encodings, whose quantisation noise the start-level estimate must not take for damage.
SUBTYPE_BITS = {"PCM_S8": 8, "PCM_U8": 8, "DPCM_8": 8, "PCM_16": 16, "DPCM_16": 16, "PCM_24": 24, "PCM_32": 32}
# What a WAV or FLAC stream on stdin starts with (RIFF/RIFX/RF64/BW64 WAV, FLAC).
STDIN_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"BW64", b"fLaC")
# Extensions whose name is not their libsndfile format.
EXTENSION_FORMATS = {"aif": "AIFF", "aifc": "AIFF", "oga": "OGG"}
# libvorbis crashes (SIGSEGV) on higher rates instead of refusing them; 200 kHz is the highest rate checked to work.
VORBIS_MAX_RATE = 200_000


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
    try:  # the OS's own answer, so a symlink loop or a missing permission is named as such
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise AudioError(f"{name}: not a file")
        with open(path, "rb"):
            pass
    except OSError as err:
        raise AudioError(plain_os_error(err, name)) from None
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{name}: not a readable audio file ({_first_line(err)})") from None
    if info.frames <= 0:
        raise AudioError(f"{name}: contains no audio (0 samples)")

    def read() -> Blocks:
        done = 0
        try:
            with sf.SoundFile(str(path)) as f:
                for block in f.blocks(block_frames(info.channels), dtype="float32", always_2d=True):
                    yield check_samples(block.T, name, done, info.samplerate)
                    done += len(block)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioError(f"{name}: cannot be decoded after {done / info.samplerate:.2f} s ({_first_line(err)})")

    return Source(name, info.samplerate, info.channels, info.frames, read, info.format, info.subtype)


def block_frames(channels: int) -> int:
    """Frames per block for a file of ``channels``: BLOCK_FRAMES up to stereo, fewer for wider files, so that a block
    never holds more bytes than a stereo one and memory does not grow with the channel count."""
    return max(1024, BLOCK_FRAMES * 2 // max(2, channels))


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def array_source(audio: np.ndarray, rate: int, name: str = "array") -> Source:
    """A :class:`Source` over an in-memory ``(channels, samples)`` array, checked like a file."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise AudioError(f"{name}: contains no audio (0 samples)")
    check_samples(audio, name, 0, rate)

    def read() -> Blocks:
        for start in range(0, audio.shape[1], BLOCK_FRAMES):
            yield audio[:, start : start + BLOCK_FRAMES]

    return Source(name, int(rate), audio.shape[0], audio.shape[1], read)


def channels_first(audio_array: np.ndarray) -> np.ndarray:
    """soundfile's ``(samples,)`` or ``(samples, channels)`` -> the package's ``(channels, samples)``."""
    if audio_array.ndim not in (1, 2):
        raise AudioError(f"audio must be shaped (samples,) or (samples, channels), got {audio_array.shape}")
    return audio_array[None] if audio_array.ndim == 1 else audio_array.T


def channel(source: Source, index: int) -> Source:
    """One channel of ``source`` as a mono :class:`Source` (the engine cleans wide files a channel at a time)."""

    def read() -> Blocks:
        for block in source.read():
            yield block[index : index + 1].copy()  # a view would keep every channel of the block alive downstream

    return Source(source.name, source.rate, 1, source.frames, read, source.format, source.subtype)


def interleaved(parts: list[Iterable[np.ndarray]], widths: list[int]) -> Blocks:
    """Join streams that each hold some of a file's channels (all the same length) into one stream of all of them.

    The parts are produced one after another, each to the end, so every part but the last is spooled to an anonymous
    temporary file (the kernel removes it however the process ends) and memory holds one block per part at a time.
    """
    spools = []
    try:
        for blocks in parts[:-1]:
            spools.append(tempfile.TemporaryFile())
            for block in blocks:
                spools[-1].write(np.ascontiguousarray(block.T, dtype=np.float32).tobytes())
            spools[-1].seek(0)
        for last in rebuffer(parts[-1], block_frames(sum(widths))):
            n = last.shape[1]
            spooled = [np.frombuffer(f.read(4 * n * w), np.float32).reshape(n, w).T for f, w in zip(spools, widths)]
            yield np.concatenate(spooled + [last], axis=0)
    finally:
        for f in spools:
            f.close()


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


def check_samples(block: np.ndarray, name: str | Path, start: int, rate: int) -> np.ndarray:
    """Refuse NaN, infinite and absurd (beyond :data:`MAX_SAMPLE`) samples, naming the first one's time and channel.

    ``start`` is the block's first frame in the file, so the time is the file's, not the block's.
    """
    good = np.abs(block) <= MAX_SAMPLE  # False for NaN and infinity too
    if good.all():
        return block
    frame, bad = np.unravel_index(np.argmin(good.T, axis=None), good.T.shape)  # the first in time, then channel
    seconds = (start + frame) / rate
    raise AudioError(
        f"{name}: NaN, infinite or absurd sample ({block[bad, frame]:g}, beyond +-{MAX_SAMPLE:g}) at "
        f"{int(seconds // 60)}:{seconds % 60:06.3f} in channel {bad + 1}"
    )


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


@contextmanager
def stdin_spool(limit: int = MAX_STDIN_BYTES) -> Iterator[Path]:
    """The WAV or FLAC stream on stdin, copied to a file (soundfile must seek) that is removed on every exit path.

    The stream's first bytes are checked before anything is copied, and the copy stops at ``limit`` bytes, so neither
    random bytes nor an endless stream can fill the disk.
    """
    head = sys.stdin.buffer.read(4)
    if head not in STDIN_MAGIC:
        raise AudioError(f"<stdin>: not a WAV or FLAC stream (it starts with {head!r})")
    with scratch_dir(None) as folder:
        spool = folder / "stdin"
        try:
            with open(spool, "wb") as f:
                f.write(head)
                copied = len(head)
                while chunk := sys.stdin.buffer.read(io.DEFAULT_BUFFER_SIZE * 64):
                    copied += len(chunk)
                    if copied > limit:
                        raise AudioError(f"<stdin>: more than {limit:,} bytes; raise --max-stdin or pass a file")
                    f.write(chunk)
        except OSError as err:
            raise AudioError(plain_os_error(err, f"the copy of <stdin> in {folder.parent}")) from None
        yield spool


def extension_format(path: Path) -> str | None:
    """The container an output name asks for (``x.flac`` -> ``FLAC``), ``None`` without an extension; refuses unknown
    extensions, which would otherwise be written silently in the input's format."""
    ext = path.suffix[1:].lower()
    if not ext:
        return None
    fmt = EXTENSION_FORMATS.get(ext, ext.upper())
    if fmt not in sf.available_formats():
        raise AudioError(f"{path}: unknown audio extension .{ext}; use .wav, .flac, .ogg, .aiff or .mp3")
    return fmt


def output_format(requested: str | None, path: Path | None, fallback: str) -> str:
    """The container to write: the one asked for, else the output name's extension, else ``fallback`` (the input's).

    A name whose extension says another container than ``requested`` is refused (``-o x.flac --format wav``).
    """
    named = extension_format(path) if path is not None else None
    fmt = requested.upper() if requested else named or fallback
    if fmt not in sf.available_formats():
        raise AudioError(f"unknown output format {fmt.lower()!r}; try wav, flac or ogg")
    if named is not None and named != fmt:
        raise AudioError(f"{path}: the extension says {named.lower()} but --format says {fmt.lower()}; make them agree")
    return fmt


def output_subtype(fmt: str, requested: str | None, source: Source) -> str:
    """The sample encoding to write: the one asked for, else the input's when the container allows it."""
    if requested:
        if not sf.check_format(fmt, requested.upper()):
            raise AudioError(f"subtype {requested!r} is not available for {fmt}; try {sf.default_subtype(fmt)}")
        return requested.upper()
    return source.subtype if sf.check_format(fmt, source.subtype) else sf.default_subtype(fmt)


def check_writable(fmt: str, subtype: str, rate: int, channels: int, name: str) -> None:
    """Refuse, before any work, a rate or channel count the output format cannot hold.

    libsndfile refuses most of these when a file is opened, so an empty file is opened in memory to ask it; Vorbis is
    checked by hand first because its encoder crashes on high rates instead of refusing them.
    """
    if subtype == "VORBIS" and rate > VORBIS_MAX_RATE:
        raise AudioError(f"{name}: Ogg Vorbis cannot hold {rate} Hz (at most {VORBIS_MAX_RATE}); use flac or wav")
    try:
        with sf.SoundFile(io.BytesIO(), "w", samplerate=rate, channels=channels, format=fmt, subtype=subtype):
            pass
    except (sf.LibsndfileError, RuntimeError) as err:
        reason = _first_line(err).split(": ", 1)[-1].removeprefix("Error : ")
        raise AudioError(f"{name}: {fmt.lower()} {subtype} cannot hold {channels} channel(s) at {rate} Hz ({reason})")


def write(
    blocks: Iterable[np.ndarray],
    path: Path | None,
    rate: int,
    channels: int,
    fmt: str,
    subtype: str,
    clip_mode: str = "rescale",
    overwrite: bool = False,
) -> dict:
    """Write a stream to ``path`` (``None`` means stdout) and return its peak and the gain applied.

    The file is built in a scratch folder and published whole by :func:`files.publish`, which replaces an existing
    ``path`` only with ``overwrite``. ``clip_mode``: ``rescale`` scales the whole output down if its peak exceeds full
    scale (this needs the peak first, so the audio goes through a float32 scratch file); ``clamp`` clips each sample;
    ``none`` writes the values as they are (integer subtypes then clip in libsndfile).
    """
    if clip_mode not in CLIP_MODES:
        raise AudioError(f"unknown clip mode {clip_mode!r}; expected one of {', '.join(CLIP_MODES)}")
    label = str(path) if path is not None else "<stdout>"
    with scratch_dir(path) as scratch:
        built = scratch / "out"
        if clip_mode == "rescale":
            peak, gain = _write_rescaled(blocks, built, scratch / "float32", rate, channels, fmt, subtype, label)
        else:
            if clip_mode == "clamp":
                blocks = (np.clip(b, -1.0, 1.0) for b in blocks)
            peak, gain = _write_blocks(blocks, built, rate, channels, fmt, subtype, label), 1.0
        try:
            if path is None:
                with open(built, "rb") as f:
                    shutil.copyfileobj(f, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                publish(built, path, overwrite)
        except OSError as err:
            raise AudioError(plain_os_error(err, label)) from None
    return {"peak": peak, "gain": gain}


def write_together(
    blocks: Iterable[np.ndarray],
    targets: list[tuple[Path, str, str]],
    rate: int,
    channels: int,
    clip_mode: str = "rescale",
    overwrite: bool = False,
) -> dict:
    """Write a stream that stacks several files' channels (``channels`` each, in ``targets``' order) to those files.

    For stems that must keep adding up to their mix: ``rescale`` gives every file the same gain (the loudest one's),
    so their sum stays the mix times that gain. Each target is ``(path, format, subtype)``. Every file is built in its
    own scratch folder and none is published before all are built; then each is published as :func:`write` does, and
    if one cannot be (it appeared meanwhile), those already published by this call are taken back, so the set appears
    whole or not at all. Returns each file's peak and the gain.
    """
    if clip_mode not in CLIP_MODES:
        raise AudioError(f"unknown clip mode {clip_mode!r}; expected one of {', '.join(CLIP_MODES)}")
    label = f"the outputs in {targets[0][0].parent}"
    peaks = np.zeros(len(targets))

    def measured() -> Blocks:
        for block in blocks:
            if block.shape[1]:
                np.maximum(peaks, np.abs(block).reshape(len(targets), -1).max(axis=1), out=peaks)
            yield block

    with ExitStack() as stack:
        scratches = [stack.enter_context(scratch_dir(path)) for path, _, _ in targets]
        # W64, not WAV: the stacked stems of an hour-long track exceed WAV's 4 GB.
        stacked = scratches[0] / "stacked"
        peak = _write_blocks(measured(), stacked, rate, channels * len(targets), "W64", "FLOAT", label)
        gain = 1.0 / peak if clip_mode == "rescale" and peak > 1.0 else 1.0
        for index, (scratch, (path, fmt, subtype)) in enumerate(zip(scratches, targets)):
            part = _stacked_part(stacked, len(targets) * channels, slice(index * channels, (index + 1) * channels), gain)
            if clip_mode == "clamp":
                part = (np.clip(b, -1.0, 1.0) for b in part)
            _write_blocks(part, scratch / "out", rate, channels, fmt, subtype, str(path))
        published: list[Path] = []
        try:
            for scratch, (path, _, _) in zip(scratches, targets):
                publish(scratch / "out", path, overwrite)
                published.append(path)
        except OSError as err:
            if not overwrite:  # each of these was a new name, linked by this call: nothing that was there is lost
                for path in published:
                    path.unlink(missing_ok=True)
            raise AudioError(plain_os_error(err, str(path))) from None
    return {"peaks": peaks.tolist(), "gain": gain}


def _stacked_part(name: Path, width: int, part: slice, gain: float) -> Blocks:
    """One file's channels of a stacked scratch file, times ``gain``, in blocks no wider in bytes than a stereo one."""
    with sf.SoundFile(name) as f:
        for block in f.blocks(block_frames(width), dtype="float32", always_2d=True):
            yield block.T[part] * np.float32(gain)


def _write_rescaled(
    blocks: Iterable[np.ndarray],
    name: Path,
    scratch: Path,
    rate: int,
    channels: int,
    fmt: str,
    subtype: str,
    label: str,
) -> tuple[float, float]:
    """Write through a float32 scratch file so the whole output's peak is known before the gain is chosen."""
    peak = _write_blocks(blocks, scratch, rate, channels, "WAV", "FLOAT", label)
    gain = 1.0 / peak if peak > 1.0 else 1.0
    with sf.SoundFile(scratch) as f:
        stored = f.blocks(block_frames(channels), dtype="float32", always_2d=True)
        scaled = (b.T * np.float32(gain) for b in stored)
        _write_blocks(scaled, name, rate, channels, fmt, subtype, label)
    return peak, gain


def _write_blocks(
    blocks: Iterable[np.ndarray], name: Path, rate: int, channels: int, fmt: str, subtype: str, label: str
) -> float:
    """Write ``blocks`` to ``name`` and return their peak; ``label`` is the output's name in messages."""
    peak = 0.0
    try:
        with sf.SoundFile(name, "w", samplerate=rate, channels=channels, format=fmt, subtype=subtype) as f:
            for block in blocks:
                if not block.shape[1]:
                    continue
                block_peak = float(np.max(np.abs(block)))
                if not block_peak <= MAX_SAMPLE:  # a bug upstream; never publish NaN
                    raise AudioError(f"{label}: cleaning produced non-finite samples; nothing was written")
                peak = max(peak, block_peak)
                f.write(block.T)
    except (sf.LibsndfileError, RuntimeError, AssertionError) as err:  # soundfile asserts on a short write
        raise AudioError(_write_failure(name, label, err)) from None
    return peak


def _write_failure(name: Path, label: str, err: Exception) -> str:
    """libsndfile says only "System error." (or nothing) when a write fails; ask the file system for the cause."""
    folder = os.statvfs(name.parent)
    if folder.f_bavail * folder.f_frsize < 1 << 20:
        return plain_os_error(OSError(errno.ENOSPC, "no space"), label)
    return f"{label}: cannot be written ({_first_line(err)})"
