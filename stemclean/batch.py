"""Batch mode: find stems in separators' output layouts, pair each with its mix, and clean them in parallel.

Layouts understood:
- demucs: ``<root>/<model>/<track>/<stem>.wav`` (the track is the stem's folder);
- audio-separator / UVR: ``<track>_(<Stem>)_<model>.wav`` anywhere under ``root``.

``--joint`` cleans each separation's stems together (:mod:`stemclean.track`) instead of one by one.

Outputs mirror the input tree: ``<outdir>/<path relative to root>/<name>_clean.<ext>`` (``outdir`` defaults to
``root``, so outputs land beside their stems). Files ending in ``_clean`` are never taken as stems.
"""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from stemclean import audio, engine, track
from stemclean.stems import guess_stem_type

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")
CLEAN_SUFFIX = "_clean"
MIX_NAMES = ("mixture", "mix")
# Files cleaned at once by default, chosen by measurement: docs/BENCHMARKS.md, "Batch parallelism" (benchmarks/jobs.py).
DEFAULT_JOBS = 2
# audio-separator names its outputs "<track>_(<Stem>)_<model>"; the stem name sits in the last parentheses.
_SEPARATOR_NAME = re.compile(r"^(?P<track>.+)_\((?P<stem>[^()]+)\)_(?P<model>[^()]+)$")
# What can go wrong with one file or track; in a batch it fails that job and the others go on.
FILE_ERRORS = (audio.AudioError, engine.ModelError, ValueError, OSError, RuntimeError)


@dataclass(frozen=True)
class Job:
    """One stem to clean: where it is, which separation it belongs to, its mix, and where the result goes."""

    stem: Path
    track: str
    stem_type: str
    siblings: tuple[Path, ...]  # every stem of the same separation, this one included
    output: Path
    mix: Path | None = None  # None: the sum of ``siblings``


def output_path(stem: Path, root: Path, outdir: Path, suffix: str) -> Path:
    """The output naming template: ``<outdir>/<stem's path relative to root>`` with ``_clean`` before the suffix."""
    relative = stem.relative_to(root)
    return outdir / relative.parent / f"{stem.stem}{CLEAN_SUFFIX}{suffix}"


def _identify(path: Path) -> tuple[str, str, tuple] | None:
    """(track, stem type, separation key) for a stem file, or ``None`` when the file is not a recognisable stem."""
    named = _SEPARATOR_NAME.match(path.stem)
    if named:
        return named["track"], guess_stem_type(named["stem"]), (path.parent, named["track"], named["model"])
    stem_type = guess_stem_type(path.name)
    if stem_type == "unknown" or path.stem.lower() in MIX_NAMES:
        return None
    return path.parent.name, stem_type, (path.parent,)


def find_mix(mix_dir: Path, track: str) -> Path | None:
    """The mix for ``track`` in ``mix_dir``: ``<track>.<ext>`` or ``<track>/mixture.<ext>`` (musdb's layout)."""
    candidates = [mix_dir / f"{track}{ext}" for ext in AUDIO_SUFFIXES]
    candidates += [mix_dir / track / f"{name}{ext}" for name in MIX_NAMES for ext in AUDIO_SUFFIXES]
    return next((c for c in candidates if c.is_file()), None)


def _strictly_inside(folder: Path, root: Path) -> bool:
    return folder.resolve() != root.resolve() and folder.resolve().is_relative_to(root.resolve())


def plan(root: Path, outdir: Path | None, mix_dir: Path | None, suffix: str | None) -> list[Job]:
    """Every stem under ``root`` as a :class:`Job`. ``suffix`` (e.g. ``.flac``) overrides the stems' own."""
    outdir = outdir or root
    # Mixes and outputs kept in a folder inside ROOT are not stems. A --mix-dir that holds ROOT itself (the README's
    # `batch separated --mix-dir .`) excludes nothing, or it would exclude every stem.
    excluded = [p.resolve() for p in (mix_dir, outdir) if p is not None and _strictly_inside(p, root)]
    found: dict[Path, tuple[str, str, tuple]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in AUDIO_SUFFIXES or path.stem.endswith(CLEAN_SUFFIX) or not path.is_file():
            continue
        if any(path.resolve().is_relative_to(e) for e in excluded):
            continue
        identity = _identify(path)
        if identity:
            found[path] = identity
    jobs = []
    for path, (track, stem_type, key) in found.items():
        siblings = tuple(p for p, (_, _, k) in found.items() if k == key)
        mix = find_mix(mix_dir, track) if mix_dir else None
        output = output_path(path, root, outdir, suffix or path.suffix)
        jobs.append(Job(path, track, stem_type, siblings, output, mix))
    return jobs


def mix_source(job: Job, mix_dir: Path | None) -> audio.Source:
    """The job's mix: the file found in ``mix_dir``, or the sum of the separation's stems."""
    if mix_dir is not None:
        if job.mix is None:
            raise audio.AudioError(f"no mix for track {job.track!r} in {mix_dir} (looked for {job.track}.wav/.flac)")
        return audio.file_source(job.mix)
    if len(job.siblings) < 2:
        raise audio.AudioError(f"{job.stem}: --mix-from-stems needs the track's other stems beside it")
    return audio.sum_source([audio.file_source(p) for p in job.siblings], f"sum of {len(job.siblings)} stems")


def stem_name(path: Path) -> str:
    """What the separator called the stem: ``vocals`` for ``vocals.wav`` and for ``song_(Vocals)_model.wav``."""
    named = _SEPARATOR_NAME.match(path.stem)
    return (named["stem"] if named else path.stem).lower()


def tracks(jobs: list[Job]) -> list[tuple[Job, ...]]:
    """``jobs`` grouped into separations (a track's stems from one model), in the order they were found."""
    groups: dict[tuple[Path, ...], list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.siblings, []).append(job)
    return [tuple(group) for group in groups.values()]


def clean_track_job(
    stems: tuple[Job, ...], model: engine.Model, mix_dir: Path | None, options: dict
) -> dict:
    """Clean one separation's stems together (``batch --joint``); a failure becomes a result with its reason."""
    first = stems[0]
    folder = str(first.stem.parent)
    try:
        mix = mix_source(first, mix_dir)
        for job in stems:
            job.output.parent.mkdir(parents=True, exist_ok=True)
        summary = track.clean_files(
            [job.stem for job in stems],
            mix,
            [job.output for job in stems],
            model,
            names=[stem_name(job.stem) for job in stems],
            stem_types=[job.stem_type for job in stems],
            **options,
        )
        return {"status": "cleaned", "track": first.track, "folder": folder, **summary}
    except FILE_ERRORS as err:
        return {"status": "failed", "track": first.track, "folder": folder, "error": str(err)}


def clean_job(job: Job, model: engine.Model, mix_dir: Path | None, options: dict) -> dict:
    """Clean one job; a failure becomes a result with its one-line reason instead of an exception."""
    try:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        summary = engine.clean_file(
            audio.file_source(job.stem), mix_source(job, mix_dir), job.output, model, stem_type=job.stem_type, **options
        )
        return {"status": "cleaned", **summary}
    except FILE_ERRORS as err:
        return {"status": "failed", "stem": str(job.stem), "output": str(job.output), "error": str(err)}


_worker_model: engine.Model | None = None
# One job's work, given (job, model, mix_dir, options): a module-level function, so worker processes can receive it.
Cleaner = Callable[..., dict]


def _init_worker(model_path: Path, device: str, threads: int) -> None:
    global _worker_model
    _worker_model = engine.Model(model_path, device=device, threads=threads)


def _clean_in_worker(clean: Cleaner, job, mix_dir: Path | None, options: dict) -> dict:
    return clean(job, _worker_model, mix_dir, options)


def run(
    jobs: list,
    model: engine.Model,
    mix_dir: Path | None,
    options: dict,
    workers: int,
    on_done: Callable[[dict], None],
    clean: Cleaner = clean_job,
) -> list[dict]:
    """Clean ``jobs`` with ``workers`` processes (each with its own model session); results in completion order.

    ``clean`` does one job: :func:`clean_job` for a stem, :func:`clean_track_job` for a track's stems together.
    Processes rather than threads: the STFT and the sampler hold the GIL between onnxruntime calls.
    """
    results = []
    workers = min(workers, len(jobs))  # a spare worker would only cost a process start and a model load
    if workers <= 1:
        for job in jobs:
            results.append(clean(job, model, mix_dir, options))
            on_done(results[-1])
        return results
    threads = max(1, engine.DEFAULT_THREADS // workers)
    context = multiprocessing.get_context("spawn")
    initargs = (model.path, model.device, threads)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=initargs) as pool:
        futures = [pool.submit(_clean_in_worker, clean, job, mix_dir, options) for job in jobs]
        for future in as_completed(futures):
            results.append(future.result())
            on_done(results[-1])
    return results
