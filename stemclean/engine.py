"""The ONNX model, the few-step sampler, and the one streaming engine behind ``clean()``, ``run``, ``batch`` and pipes.

Long audio is solved once, here: both inputs are streamed at the model's rate in overlapping chunks of ~10 s, each chunk
is cleaned on its own, and neighbours are crossfaded over their ~1 s overlap. Memory therefore depends on the chunk
size, not on the file's length. Chunk starts fall on multiples of the STFT hop, so every chunk sees the same frame grid
as the whole file would. The start level is estimated once per file, in a first pass over both inputs, so every chunk
runs the same schedule and no chunk sounds different from its neighbours.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnxruntime as ort

from stemclean import audio, interrupts, schedule, spectral
from stemclean.audio import AudioError, Blocks, Source
from stemclean.stems import STEM_TYPES, stem_index

MODEL_ENV = "STEMCLEAN_MODEL"
# The shipped model, the one place that names it. It is package data, found through importlib.resources wherever pip
# put the package; wheels install as plain files, so this is a path onnxruntime can open. Its card is the same name with
# .json, and its torch weights (.pt, for training only) sit beside it in the repository.
DEFAULT_MODEL = Path(str(resources.files("stemclean") / "models" / "stemclean-v2.onnx"))
# Cores for one cleaning; batch jobs split them. On the CPU they run chunks side by side (see Model.ahead).
DEFAULT_THREADS = 2
OVERLAP = 86 * spectral.HOP_LENGTH  # ~1.0 s of crossfade between neighbouring chunks
STEP = 775 * spectral.HOP_LENGTH  # ~9.0 s of new audio per chunk
# The start-level estimate is an average over bins, so every fourth frame gives the same number for a quarter of the cost.
LEVEL_HOP = 4 * spectral.HOP_LENGTH
# A mix may be this much longer or shorter than its stem (encoder padding, resampling); beyond it the pair is refused.
LENGTH_TOLERANCE_S = 0.3

ProgressFn = Callable[[int, int], None]
T = TypeVar("T")
R = TypeVar("R")


class ModelError(RuntimeError):
    """A missing, unreadable or incompatible model, or an unavailable device, worded for the user in one line."""


def default_model_path() -> Path:
    """``$STEMCLEAN_MODEL`` if set, else the model shipped inside the package."""
    return Path(os.environ.get(MODEL_ENV) or DEFAULT_MODEL)


def providers_for(device: str) -> list:
    """onnxruntime providers for ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; ``auto`` takes CUDA when it is there.

    A name that is no device raises ``ValueError`` (the caller's mistake); CUDA missing from onnxruntime raises
    :class:`ModelError` (the installation's).
    """
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cpu" or (device == "auto" and not has_cuda):
        return ["CPUExecutionProvider"]
    if device == "auto":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    name, _, index = device.partition(":")
    if name != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    if not has_cuda:
        raise ModelError(
            "CUDA was asked for but onnxruntime has no CUDA provider; install stemclean[gpu] or use --device cpu"
        )
    return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]


class Model:
    """A stemclean ONNX model in an onnxruntime session, checked against the runtime's signal constants."""

    def __init__(self, path: str | Path | None = None, device: str = "auto", threads: int = DEFAULT_THREADS):
        self.path = Path(path) if path is not None else default_model_path()
        self.device = device
        if not self.path.is_file():
            raise ModelError(
                f"model not found: {self.path} (pass --model PATH or set {MODEL_ENV}; the trained model ships inside "
                "the package, so reinstalling stemclean restores it)"
            )
        providers = providers_for(device)
        # On the CPU, `threads` single-threaded runs on different chunks beat one run on `threads` threads: a second
        # intra-op thread gains little on this model's many small full-resolution ops, two chunks at once nearly 2x.
        self.parallel = threads if providers == ["CPUExecutionProvider"] else 1
        self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="stemclean-run") if self.parallel > 1 else None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1 if self.parallel > 1 else threads
        options.inter_op_num_threads = 1
        # The memory pattern pre-plans each run's buffers; with runs side by side it nearly doubled the peak memory
        # for a few percent of speed.
        options.enable_mem_pattern = self.parallel == 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except ModelError:
            raise
        except Exception as err:  # onnxruntime raises several private exception types for unusable files
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelError(f"{self.path}: not a usable ONNX model ({reason})") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self._check_metadata()
        # A stereo model reads its batch as (left, right) pairs of one track (docs/ARCHITECTURE.md).
        self.stereo = self.metadata.get("stereo") == "1"

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def ahead(self, work: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``work(item)`` for each item, in order, with up to ``parallel`` calls running at once in this model's threads.

        The items are drawn one at a time as results are taken, so memory stays flat however long the input.
        (Executor.map would draw every item before the first result.) ``work`` runs the model, which releases the GIL.
        """
        if self._pool is None:
            yield from map(work, items)
            return
        running: deque = deque()
        try:
            for item in items:
                # Held: the pool may start a thread here, and a stop signal between the thread's start and the pool's
                # note of it left a thread that the interpreter's exit then waited on forever. Started with the
                # signals blocked, the thread also never takes one, so they reach the main thread and stop it at once.
                with interrupts.deferred():
                    running.append(self._pool.submit(work, item))
                if len(running) >= self.parallel:
                    yield running.popleft().result()
            while running:
                yield running.popleft().result()
        finally:  # stopped early (an error, an interrupt): drop what has not started
            for future in running:
                future.cancel()

    def _check_metadata(self) -> None:
        expected = {
            "sample_rate": spectral.SAMPLE_RATE,
            "n_fft": spectral.N_FFT,
            "hop_length": spectral.HOP_LENGTH,
        }
        for key, value in expected.items():
            found = self.metadata.get(key)
            if found is None or not found.strip().isdigit() or int(found) != value:
                raise ModelError(f"{self.path}: model metadata {key}={found} does not match the runtime's {value}")
        if "stem_types" in self.metadata and json.loads(self.metadata["stem_types"]) != list(STEM_TYPES):
            raise ModelError(
                f"{self.path}: model stem types {self.metadata['stem_types']} differ from {list(STEM_TYPES)}"
            )

    def predict(self, stem: np.ndarray, mix: np.ndarray, level: float, stem_type: int) -> np.ndarray:
        """One pass: the predicted clean stem for ``stem`` at artifact ``level``, all shaped ``[channels, 2, F, T]``.

        A stereo model gets a stereo file as it is; any other channel count goes in as each channel beside itself.
        """
        paired = self.stereo and stem.shape[0] != 2
        if paired:
            stem, mix = np.repeat(stem, 2, axis=0), np.repeat(mix, 2, axis=0)
        batch = stem.shape[0]
        feeds = {
            "stem": stem,
            "mix": mix,
            "level": np.full(batch, level, dtype=np.float32),
            "stem_type": np.full(batch, stem_type, dtype=np.int64),
        }
        clean = self.session.run(["clean"], feeds)[0]
        return clean[::2] if paired else clean


def sample(
    model: Model, stem_spec: np.ndarray, mix_spec: np.ndarray, levels: list[float], stem_type: int
) -> np.ndarray:
    """The few-step sampler of docs/ARCHITECTURE.md on complex ``(channels, F, T)`` spectra.

    The mixture's features are computed once and reused at every step. An empty schedule returns the stem unchanged.
    """
    if not levels:
        return stem_spec
    x = spectral.to_channels(stem_spec)
    mix = spectral.to_channels(mix_spec)
    for t, t_next in zip(levels, levels[1:] + [None]):
        x0 = model.predict(x, mix, t, stem_type)
        if t_next is None:
            return spectral.from_channels(x0)
        x = schedule.reblend(x, x0, t, t_next).astype(np.float32)
    raise AssertionError("unreachable: the loop returns on its last level")


def check_pair(stem: Source, mix: Source) -> None:
    """Refuse a mix that cannot belong to the stem: too long or short, or channels that cannot be matched."""
    gap = mix.seconds - stem.seconds
    if abs(gap) > LENGTH_TOLERANCE_S:
        longer = "longer" if gap > 0 else "shorter"
        raise AudioError(
            f"{mix.name}: the mix is {abs(gap):.2f} s {longer} than the stem ({mix.seconds:.2f} s vs "
            f"{stem.seconds:.2f} s; at most {LENGTH_TOLERANCE_S} s is tolerated): is it the right mix?"
        )
    if mix.channels != stem.channels and 1 not in (mix.channels, stem.channels):
        raise AudioError(f"{mix.name}: has {mix.channels} channels and the stem {stem.channels}; cannot match them")


def _model_rate_streams(stem: Source, mix: Source) -> tuple[Blocks, Blocks]:
    """Fresh streams of stem and mix at the model's rate, with the stem's channels and exactly equal lengths."""
    rate = spectral.SAMPLE_RATE
    length = audio.resampled_length(stem.frames, stem.rate, rate)
    return audio.conformed(stem, rate, stem.channels, length), audio.conformed(mix, rate, stem.channels, length)


def channel_groups(stem: Source, mix: Source) -> list[tuple[Source, Source]]:
    """(stem, mix) pairs that are cleaned one after another: the whole file when it is mono or stereo, else one
    channel at a time, so memory stays that of a stereo file at any channel count (64 channels once took 7.6 GB).
    """
    if stem.channels <= 2:
        return [(stem, mix)]
    return [
        (audio.channel(stem, c), audio.channel(mix, c) if mix.channels == stem.channels else mix)
        for c in range(stem.channels)
    ]


def estimate_level(stem: Source, mix: Source) -> float:
    """The file's start level: the per-chunk spectral estimates, weighted by how much evidence each chunk holds.

    The weight is the evidence of :func:`schedule.coherence_evidence` (its bins' total weight), so a quiet or
    one-sided chunk counts little, as it would in a whole-file estimate. Channel groups add their evidence per chunk.
    """
    floor = schedule.quantisation_floor(
        audio.SUBTYPE_BITS.get(stem.subtype), stem.rate, spectral.N_FFT, spectral.SAMPLE_RATE
    )
    agreement: list[float] = []  # per chunk: coherence x evidence, summed over channel groups
    evidence: list[float] = []
    for stem_group, mix_group in channel_groups(stem, mix):
        stem_blocks, mix_blocks = _model_rate_streams(stem_group, mix_group)
        for i, (s, m) in enumerate(zip(audio.rebuffer(stem_blocks, STEP), audio.rebuffer(mix_blocks, STEP))):
            s_spec, m_spec = spectral.stft(s, hop=LEVEL_HOP), spectral.stft(m, hop=LEVEL_HOP)
            coherence, weight = schedule.coherence_evidence(s_spec, m_spec, floor)
            if i == len(evidence):
                agreement.append(0.0)
                evidence.append(0.0)
            agreement[i] += coherence * weight
            evidence[i] += weight
    weights = np.asarray(evidence)
    if not np.sum(weights) > 0:
        return 0.0
    coherences = np.divide(agreement, weights, out=np.zeros_like(weights), where=weights > 0)
    return float(np.sum(weights * schedule.level_for_coherence(coherences)) / np.sum(weights))


def spectrum_level(stem_spec: np.ndarray, mix_spec: np.ndarray) -> float:
    """The start level :func:`estimate_level` gives a float file of one chunk or less, from its spectra at the model's
    hop (LEVEL_HOP keeps every fourth of the same frames). Training conditions its synthetic bleed on this, as it
    conditions real pairs on the engine's estimate: the model is told at training what the engine will tell it."""
    stride = LEVEL_HOP // spectral.HOP_LENGTH
    coherence, _ = schedule.coherence_evidence(stem_spec[..., ::stride], mix_spec[..., ::stride])
    return float(schedule.level_for_coherence(coherence))


def plan_levels(steps: int | str, start_level: float) -> list[float]:
    """The sampler's levels: ``auto`` spends steps only where the input needs them; ``n`` runs exactly ``n``."""
    if steps == "auto":
        return schedule.auto_schedule(start_level)
    if not isinstance(steps, int) or not 1 <= steps <= schedule.MAX_STEPS:
        raise ValueError(f"steps must be 'auto' or 1..{schedule.MAX_STEPS}, got {steps!r}")
    return schedule.step_levels(start_level, steps)


def windows(*streams: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, ...]]:
    """Tuples of chunks, one per stream, of up to OVERLAP + STEP samples, each repeating the previous one's last OVERLAP.

    All streams must have the same length; they are read in step, so every chunk of a tuple covers the same samples.
    """
    carry = None
    for chunks in zip(*(audio.rebuffer(blocks, STEP) for blocks in streams)):
        if carry is not None:
            chunks = tuple(np.concatenate([old, new], axis=1) for old, new in zip(carry, chunks))
        yield chunks
        carry = tuple(chunk[:, -OVERLAP:] for chunk in chunks)


def crossfaded(chunks: Iterable[np.ndarray]) -> Blocks:
    """Join processed chunks from :func:`windows`, fading each overlap from the old chunk into the new one.

    The fades are sin^2/cos^2, which sum to one, and each chunk's edge (where its STFT saw padding) gets weight ~0.
    """
    tail = None
    for chunk in chunks:
        if tail is not None:
            n = tail.shape[1]
            fade_in = np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / n).astype(np.float32) ** 2
            chunk = chunk.copy()
            chunk[:, :n] = tail * (1.0 - fade_in) + chunk[:, :n] * fade_in
        yield chunk[:, :-OVERLAP]
        tail = chunk[:, -OVERLAP:]
    if tail is not None:
        yield tail


def check_strength(strength: float) -> None:
    """Refuse a ``strength`` that is not a number >= 0 (``ValueError``)."""
    if not np.isfinite(strength) or strength < 0:
        raise ValueError(f"strength must be a number >= 0, got {strength}")


def stream(
    stem: Source,
    mix: Source,
    model: Model,
    *,
    steps: int | str = "auto",
    strength: float = 1.0,
    stem_type: str = "unknown",
    on_progress: ProgressFn | None = None,
) -> tuple[dict, Blocks]:
    """Plan the cleaning of ``stem`` against ``mix`` and return (the plan, the cleaned stream at the stem's rate).

    The plan (start level, levels) is known before any output is produced. The stream has the stem's channels and
    exactly its length. ``strength`` blends the result with the input: ``stem + strength * (cleaned - stem)``.

    The model works at 44.1 kHz, so what it returns is taken as a *correction* (cleaned - stem), resampled to the
    stem's rate and added to the untouched original: a 96 kHz stem keeps everything above 22 kHz, and a 44.1 kHz one
    never goes through a resampler at all.
    """
    check_strength(strength)
    type_index = stem_index(stem_type)
    check_pair(stem, mix)
    start_level = estimate_level(stem, mix)
    levels = plan_levels(steps, start_level) if strength > 0 else []
    plan = {"start_level": start_level, "levels": levels, "steps": len(levels)}
    if not levels:
        return plan, stem.read()

    groups = channel_groups(stem, mix)

    def group_progress(index: int) -> ProgressFn | None:
        if on_progress is None:
            return None
        return lambda done, total: on_progress(index * total + done, len(groups) * total)

    parts = [
        _correction(s, m, model, levels, type_index, strength, group_progress(i)) for i, (s, m) in enumerate(groups)
    ]
    correction = parts[0] if len(parts) == 1 else audio.interleaved(parts, [s.channels for s, _ in groups])
    block = audio.block_frames(stem.channels)
    original = audio.rebuffer(stem.read(), block)
    return plan, (s + c for s, c in zip(original, audio.rebuffer(correction, block)))


def _correction(
    stem: Source,
    mix: Source,
    model: Model,
    levels: list[float],
    type_index: int,
    strength: float,
    on_progress: ProgressFn | None,
) -> Blocks:
    """``strength * (cleaned - stem)`` for one channel group, at the stem's rate and exactly its length."""
    stem_blocks, mix_blocks = _model_rate_streams(stem, mix)
    total = audio.resampled_length(stem.frames, stem.rate, spectral.SAMPLE_RATE)

    def correction(chunks: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        s, m = chunks
        spec = sample(model, spectral.stft(s), spectral.stft(m), levels, type_index)
        return np.float32(strength) * (spectral.istft(spec, s.shape[1]) - s)

    def corrections() -> Blocks:
        done = 0
        for chunk in model.ahead(correction, windows(stem_blocks, mix_blocks)):
            yield chunk
            done = min(total, done + chunk.shape[1] - (OVERLAP if done else 0))
            if on_progress:
                on_progress(done, total)

    at_stem_rate = audio.resampled(crossfaded(corrections()), spectral.SAMPLE_RATE, stem.rate, stem.channels)
    return audio.fixed_length(at_stem_rate, stem.frames)


def load_model(model: Model | str | Path | None, device: str = "auto", threads: int = DEFAULT_THREADS) -> Model:
    """``model`` as a :class:`Model`: an existing one is reused, a path (or ``None`` for the default) is loaded."""
    return model if isinstance(model, Model) else Model(model, device=device, threads=threads)


def clean(
    stem: np.ndarray,
    mix: np.ndarray,
    sample_rate: int,
    *,
    steps: int | str = "auto",
    strength: float = 1.0,
    stem_type: str = "unknown",
    model: Model | str | Path | None = None,
    device: str = "auto",
    mix_sample_rate: int | None = None,
) -> np.ndarray:
    """Clean a separated stem using the mixture it came from, and return it in the stem's shape.

    Args:
        stem: the separator's estimate, soundfile layout: ``(samples,)`` or ``(samples, channels)``.
        mix: the mixture, same layout; mono or stereo either way, and within ~0.3 s of the stem's length.
        sample_rate: the stem's sample rate (any; the model runs at 44.1 kHz and the result is resampled back).
        steps: ``"auto"`` (as many sampler steps as the input's estimated damage needs, zero for a clean input) or
            ``1..8``.
        strength: 0 returns the input, 1 the cleaned stem; values in between blend them.
        stem_type: one of :data:`stemclean.stems.STEM_TYPES`.
        model: a :class:`Model`, a path to an ``.onnx`` file, or ``None`` for ``$STEMCLEAN_MODEL`` / the shipped model.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        mix_sample_rate: the mix's rate when it differs from the stem's.
    """
    stem_arr = np.asarray(stem, dtype=np.float32)
    stem_source = audio.array_source(audio.channels_first(stem_arr), sample_rate, "stem")
    mix_array = audio.channels_first(np.asarray(mix, np.float32))
    mix_source = audio.array_source(mix_array, mix_sample_rate or sample_rate, "mix")
    _, blocks = stream(
        stem_source, mix_source, load_model(model, device), steps=steps, strength=strength, stem_type=stem_type
    )
    out = np.concatenate(list(blocks), axis=1)
    return out[0] if stem_arr.ndim == 1 else out.T


def clean_file(
    stem: Source,
    mix: Source,
    output: Path | None,
    model: Model,
    *,
    steps: int | str = "auto",
    strength: float = 1.0,
    stem_type: str = "unknown",
    fmt: str | None = None,
    subtype: str | None = None,
    clip_mode: str = "rescale",
    overwrite: bool = False,
    on_progress: ProgressFn | None = None,
) -> dict:
    """Clean ``stem`` into ``output`` (``None``: stdout), atomically, and return a summary of what was done.

    The output format is checked against the stem's rate and channels before any work. An existing ``output`` is
    replaced only with ``overwrite``, even one that appeared while cleaning.
    """
    started = time.perf_counter()
    fmt = audio.output_format(fmt, output, stem.format)
    subtype = audio.output_subtype(fmt, subtype, stem)
    audio.check_writable(fmt, subtype, stem.rate, stem.channels, str(output) if output is not None else "<stdout>")
    plan, blocks = stream(
        stem, mix, model, steps=steps, strength=strength, stem_type=stem_type, on_progress=on_progress
    )
    written = audio.write(blocks, output, stem.rate, stem.channels, fmt, subtype, clip_mode, overwrite)
    elapsed = time.perf_counter() - started
    return {
        "stem": stem.name,
        "mix": mix.name,
        "output": str(output) if output is not None else "-",
        "format": fmt,
        "subtype": subtype,
        "sample_rate": stem.rate,
        "channels": stem.channels,
        "seconds": stem.seconds,
        "stem_type": stem_type,
        **plan,
        "strength": strength,
        "clip_mode": clip_mode,
        **written,
        "processing_s": elapsed,
        "realtime_factor": stem.seconds / elapsed if elapsed > 0 else None,
        "providers": model.providers,
    }
