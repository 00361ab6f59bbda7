"""Whole-track cleanup: every stem of one separation cleaned against the mix, then made to add up to the mix again.

Each stem goes through the engine exactly as ``run`` would clean it. Then :func:`consistency.spread_residual` hands
what the cleaned stems miss of the mix back to every stem that is not silent, in proportion to its estimated error; a
stem the engine judged clean is judged little damaged, so it takes a small share. When the engine changed no stem and
they already add up to the mix, all come out bit-identical; a silent stem always stays silent.

All stems and the mix are streamed in step through the engine's chunking and crossfade, so memory depends on the
chunk size and the number of stems, never on the track's length. The crossfade is linear and the same for every
stem, so chunks that each add up to the mix join into a track that adds up to it too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from stemclean import audio, consistency, engine, schedule
from stemclean.audio import AudioError, Blocks, Source
from stemclean.stems import guess_stem_type

# If the stems leave more than this of the mix's energy unexplained (a quarter), a stem is probably missing, or the
# mix is not this track's. Measured on the rendered corpus: leaving out one stem leaves -2 to -11 dB; stems damaged
# by the artifact ladder at t = 0.75 leave about -13 dB, real mask-based separators far less.
MISSING_STEM_DB = -6.0
# Stems this close to their mix (dB) already add up: if the engine changed none of them, they are left as they are.
ADDS_UP_DB = -60.0
# The stem sets separators write (demucs 2/4/6 stems, Spleeter 2/4/5, UVR's names), to name a stem that is missing.
KNOWN_LAYOUTS = (
    {"vocals", "accompaniment"},
    {"vocals", "no_vocals"},
    {"vocals", "instrumental"},
    {"vocals", "drums", "bass", "other"},
    {"vocals", "drums", "bass", "piano", "other"},
    {"vocals", "drums", "bass", "guitar", "piano", "other"},
)


def check_stems(stems: list[Source], names: list[str]) -> None:
    """Refuse a set of stems that cannot be one separation: fewer than two, or differing in rate, channels or length."""
    if len(stems) < 2:
        raise AudioError(f"a track needs at least 2 stems, found {len(stems)} ({', '.join(names) or 'none'})")
    first = stems[0]
    for stem in stems[1:]:
        for what, mine, theirs in (
            ("sample rate", stem.rate, first.rate),
            ("channel count", stem.channels, first.channels),
            ("length in samples", stem.frames, first.frames),
        ):
            if mine != theirs:
                raise AudioError(
                    f"{stem.name}: {what} {mine} differs from {first.name}'s {theirs}; the stems of one track "
                    "must come from the same separation"
                )


def missing_layout_stems(names: list[str]) -> set[str]:
    """Stems that the smallest known separator layout containing ``names`` has and ``names`` lacks (empty if none)."""
    found = {name.lower() for name in names}
    if found in KNOWN_LAYOUTS:
        return set()
    wider = [layout for layout in KNOWN_LAYOUTS if found < layout]
    return min(wider, key=len) - found if wider else set()


def sum_error(stems: Iterable[Blocks], mix: Blocks, mix_gain: float = 1.0) -> tuple[float | None, list[float]]:
    """How far the stems are from adding up to ``mix_gain * mix``, in dB relative to the mix, and each stem's peak.

    The error is ``None`` for a silent mix, where no ratio exists.
    """
    error = energy = 0.0
    peaks: list[float] | None = None
    for blocks in zip(*stems, mix):
        *parts, m = (block.astype(np.float64) for block in blocks)
        error += float(np.sum((mix_gain * m - np.sum(parts, axis=0)) ** 2))
        energy += float(np.sum(m**2))
        block_peaks = [float(np.max(np.abs(p), initial=0.0)) for p in parts]
        peaks = block_peaks if peaks is None else [max(a, b) for a, b in zip(peaks, block_peaks)]
    if energy <= 0.0:
        return None, peaks or []
    return 10.0 * np.log10(max(error / energy, 1e-30)), peaks or []


def _in_step(sources: list[Source], mix: Source, like: Source) -> tuple[list[Blocks], Blocks]:
    """Fresh streams of ``sources`` and of the mix matched to the stem ``like``, all in blocks of the same size."""
    streams = [audio.rebuffer(s.read(), audio.BLOCK_FRAMES) for s in sources]
    mix_blocks = audio.conformed(mix, like.rate, like.channels, like.frames)
    return streams, audio.rebuffer(mix_blocks, audio.BLOCK_FRAMES)


def _check_complete(names: list[str], error_db: float | None) -> None:
    """Refuse to make stems add up to a mix they cannot explain: a stem is missing, or the mix is the wrong one."""
    missing = missing_layout_stems(names)
    if missing:
        raise AudioError(
            f"{', '.join(sorted(missing))} missing: found only {', '.join(names)}; give every stem of the "
            "separation, or pass --consistency off to clean these without making them add up to the mix"
        )
    if error_db is not None and error_db > MISSING_STEM_DB:
        raise AudioError(
            f"the stems ({', '.join(names)}) leave {error_db:.1f} dB of the mix unexplained (at most "
            f"{MISSING_STEM_DB:g} dB is expected): is a stem missing, or is it the wrong mix? "
            "--consistency off cleans them without making them add up to the mix"
        )


def stream(
    stems: list[Source],
    mix: Source,
    model: engine.Model,
    *,
    names: list[str] | None = None,
    stem_types: list[str] | None = None,
    steps: int | str = "auto",
    strength: float = 1.0,
    consistency_on: bool = True,
    on_progress: engine.ProgressFn | None = None,
) -> tuple[dict, Blocks]:
    """Plan the cleanup of a track and return (the plan, one stream of the cleaned stems' channels stacked in order).

    ``names`` label the stems in messages and find a missing one (default: the sources' names); ``stem_types``
    default to what the names say. Each stem's plan is the engine's; the stream yields ``(stems x channels, n)``
    blocks at the stems' rate, exactly as long as they are.
    """
    names = names or [s.name for s in stems]
    stem_types = stem_types or [guess_stem_type(name) for name in names]
    check_stems(stems, names)
    for stem in stems:
        engine.check_pair(stem, mix)
    streams, mix_blocks = _in_step(stems, mix, stems[0])
    error_before, peaks = sum_error(streams, mix_blocks)
    if consistency_on:
        _check_complete(names, error_before)
    plans, cleaned = [], []
    for stem, stem_type, peak in zip(stems, stem_types, peaks):
        if peak == 0.0:  # nothing to clean, and it must stay silent: it takes no share of the residual either
            stem_plan, blocks = {"start_level": 0.0, "levels": [], "steps": 0}, stem.read()
        else:
            stem_plan, blocks = engine.stream(stem, mix, model, steps=steps, strength=strength, stem_type=stem_type)
        plans.append({**stem_plan, "stem_type": stem_type, "silent": peak == 0.0})
        cleaned.append(audio.rebuffer(blocks, audio.BLOCK_FRAMES))
    # Every stem that is not silent takes a share, those the engine judged clean too: a stem left as it is still
    # holds its own bleed, and without a share its error would land on the others (consistency.py). If the engine
    # changed none and they already add up, nothing is moved, so a clean track comes out bit-identical.
    changed = any(stem_plan["steps"] > 0 for stem_plan in plans) and strength > 0
    adds_up = error_before is None or error_before <= ADDS_UP_DB
    moved = [i for i, stem_plan in enumerate(plans) if not stem_plan["silent"]] if changed or not adds_up else []
    plan = {"stems": plans, "consistency": consistency_on, "sum_error_before_db": error_before}
    if not consistency_on or not moved:
        return plan, (np.concatenate(blocks, axis=0) for blocks in zip(*cleaned))
    damage = [float(schedule.sigma(plans[i]["start_level"])) for i in moved]
    kept = [i for i in range(len(stems)) if i not in moved]  # the silent stems: they add nothing to the mix
    frames = stems[0].frames

    def projected() -> Blocks:
        """The stems that are not silent, chunk by chunk, made to add up to the mix."""
        first = stems[0]
        mix_now = audio.conformed(mix, first.rate, first.channels, first.frames)
        done = 0
        for *parts, goal in engine.windows(*(cleaned[i] for i in moved), mix_now):
            yield np.concatenate(consistency.spread_residual(parts, goal, damage), axis=0)
            done = min(frames, done + goal.shape[1] - (engine.OVERLAP if done else 0))
            if on_progress:
                on_progress(done, frames)

    channels = stems[0].channels
    joined = audio.rebuffer(engine.crossfaded(projected()), audio.BLOCK_FRAMES)

    def in_order() -> Blocks:
        for together, *as_is in zip(joined, *(cleaned[i] for i in kept)):
            parts = dict(zip(kept, as_is))
            parts |= {i: together[n * channels : (n + 1) * channels] for n, i in enumerate(moved)}
            yield np.concatenate([parts[i] for i in range(len(stems))], axis=0)

    return plan, in_order()


def clean_track(
    stems: dict[str, np.ndarray],
    mix: np.ndarray,
    sample_rate: int,
    *,
    steps: int | str = "auto",
    strength: float = 1.0,
    consistency: bool = True,
    stem_types: dict[str, str] | None = None,
    model: engine.Model | str | Path | None = None,
    device: str = "auto",
    mix_sample_rate: int | None = None,
) -> dict[str, np.ndarray]:
    """Clean every stem of one track against its mix, and make the cleaned stems add up to the mix.

    Args:
        stems: name -> the separator's estimate, soundfile layout ``(samples,)`` or ``(samples, channels)``; all of
            one length and channel count. Names such as ``vocals`` or ``drums`` tell each stem's type.
        mix: the mixture, same layout; within ~0.3 s of the stems' length.
        sample_rate: the stems' rate.
        steps, strength, model, device, mix_sample_rate: as for :func:`stemclean.clean`.
        consistency: spread ``mix - sum(cleaned)`` over the stems so they add up to the mix (``False``: each stem is
            cleaned exactly as :func:`stemclean.clean` would).
        stem_types: name -> stem type, for names that do not say it.

    Returns the cleaned stems under the same names, in the input's shapes.
    """
    names = list(stems)
    arrays = [np.asarray(stems[name], dtype=np.float32) for name in names]
    sources = [audio.array_source(audio.channels_first(a), sample_rate, name) for a, name in zip(arrays, names)]
    mix_array = audio.channels_first(np.asarray(mix, np.float32))
    mix_source = audio.array_source(mix_array, mix_sample_rate or sample_rate, "mix")
    types = [(stem_types or {}).get(name) or guess_stem_type(name) for name in names]
    _, blocks = stream(
        sources,
        mix_source,
        engine.load_model(model, device),
        names=names,
        stem_types=types,
        steps=steps,
        strength=strength,
        consistency_on=consistency,
    )
    joined = np.concatenate(list(blocks), axis=1)
    channels = sources[0].channels
    out = {}
    for index, (name, array) in enumerate(zip(names, arrays)):
        part = joined[index * channels : (index + 1) * channels]
        out[name] = part[0] if array.ndim == 1 else part.T
    return out


def clean_files(
    stems: list[Source],
    mix: Source,
    outputs: list[Path],
    model: engine.Model,
    *,
    names: list[str] | None = None,
    stem_types: list[str] | None = None,
    steps: int | str = "auto",
    strength: float = 1.0,
    consistency_on: bool = True,
    fmt: str | None = None,
    subtype: str | None = None,
    clip_mode: str = "rescale",
    overwrite: bool = False,
    on_progress: engine.ProgressFn | None = None,
) -> dict:
    """Clean a track's stems into ``outputs`` (published together, see :func:`audio.write_together`) and summarise.

    The summary's ``sum_error_after_db`` is measured on the files as written, against the mix scaled by the gain
    that ``rescale`` applied to every output alike.
    """
    started = time.perf_counter()
    targets = []
    for source, output in zip(stems, outputs):
        out_format = audio.output_format(fmt, output, source.format)
        out_subtype = audio.output_subtype(out_format, subtype, source)
        audio.check_writable(out_format, out_subtype, source.rate, source.channels, str(output))
        targets.append((output, out_format, out_subtype))
    plan, blocks = stream(
        stems,
        mix,
        model,
        names=names,
        stem_types=stem_types,
        steps=steps,
        strength=strength,
        consistency_on=consistency_on,
        on_progress=on_progress,
    )
    first = stems[0]
    written = audio.write_together(blocks, targets, first.rate, first.channels, clip_mode, overwrite)
    written_streams, mix_blocks = _in_step([audio.file_source(path) for path in outputs], mix, first)
    error_after, _ = sum_error(written_streams, mix_blocks, written["gain"])
    elapsed = time.perf_counter() - started
    for stem_plan, source, (output, out_format, out_subtype), peak in zip(
        plan["stems"], stems, targets, written["peaks"]
    ):
        stem_plan.update(stem=source.name, output=str(output), format=out_format, subtype=out_subtype, peak=peak)
    return {
        "mix": mix.name,
        "sample_rate": first.rate,
        "channels": first.channels,
        "seconds": first.seconds,
        **plan,
        "sum_error_after_db": error_after,
        "strength": strength,
        "clip_mode": clip_mode,
        "gain": written["gain"],
        "processing_s": elapsed,
        "realtime_factor": first.seconds / elapsed if elapsed > 0 else None,
        "providers": model.providers,
    }
