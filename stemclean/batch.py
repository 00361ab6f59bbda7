"""Batch mode: find stems in separators' output layouts, pair each with its mix, and clean them in parallel.

Layouts understood:
- demucs: ``<root>/<model>/<track>/<stem>.wav`` (the track is the stem's folder);
- audio-separator / UVR: ``<track>_(<Stem>)_<model>.wav`` anywhere under ``root``.

``--joint`` cleans each separation's stems together (:mod:`stemclean.track`) instead of one by one.

Outputs mirror the input tree: ``<outdir>/<path relative to root>/<name>_clean.<ext>`` (``outdir`` defaults to
``root``, so outputs land beside their stems). Files ending in ``_clean`` are never taken as stems.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from stemclean import audio, engine, files, pool, track
from stemclean.stems import guess_stem_type

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")
CLEAN_SUFFIX = "_clean"
MIX_NAMES = ("mixture", "mix")
# Files cleaned at once by default, chosen by measurement: docs/BENCHMARKS.md, "Batch parallelism" (benchmarks/jobs.py).
DEFAULT_JOBS = 2
# audio-separator names its outputs "<track>_(<Stem>)_<model>"; the stem name sits in the last parentheses.
_SEPARATOR_NAME = re.compile(r"^(?P<track>.+)_\((?P<stem>[^()]+)\)_(?P<model>[^()]+)$")
# Memory one worker may need at its peak, with room to spare: a stereo stem took ~0.5 GB, and wider files are cleaned a
# channel at a time. More workers than cores only made a batch slower (-j 16 on 2 cores used 4.8 GB).
WORKER_MEMORY = 1 << 30
EXISTS = "exists (--overwrite redoes it)"
ALL_EXIST = "every output exists (--overwrite redoes them)"


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


def clean_job(job: Job, model: engine.Model, mix_dir: Path | None, options: dict) -> dict:
    """Clean one job under its output's lock; a failure becomes a result with its one-line reason, not an exception.

    The lock keeps two batches on one tree from cleaning the same stem; holding it also makes any scratch folder
    beside the output a leftover of a killed run, which is removed. ``options`` are :func:`engine.clean_file`'s.
    """
    try:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        with files.output_lock(job.output) as mine:
            if not mine:
                return result(job, "skipped", reason="another stemclean is making it right now")
            files.remove_stale_scratch(job.output)
            if job.output.exists() and not options.get("overwrite"):
                return result(job, "skipped", reason=EXISTS)
            stem = audio.file_source(job.stem)
            summary = engine.clean_file(
                stem, mix_source(job, mix_dir), job.output, model, stem_type=job.stem_type, **options
            )
        return {"status": "cleaned", **summary}
    except OSError as err:
        return result(job, "failed", error=files.plain_os_error(err))
    except (audio.AudioError, engine.ModelError, ValueError) as err:
        return result(job, "failed", error=str(err))
    except Exception as err:  # anything else is this file's failure too; the batch goes on
        return result(job, "failed", error=f"{type(err).__name__}: {err}")


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


def clean_track_job(stems: tuple[Job, ...], model: engine.Model, mix_dir: Path | None, options: dict) -> dict:
    """Clean one separation's stems together (``batch --joint``), under every output's lock, as :func:`clean_job`.

    The outputs are made together or not at all, so a track with only some of them is a failure to look at, not one
    to finish: ``--overwrite`` redoes it. ``options`` are :func:`track.clean_files`'s.
    """
    try:
        with ExitStack() as held:
            for job in stems:
                job.output.parent.mkdir(parents=True, exist_ok=True)
                if not held.enter_context(files.output_lock(job.output)):
                    return track_result(stems, "skipped", reason="another stemclean is making it right now")
                files.remove_stale_scratch(job.output)
            existing = [str(job.output) for job in stems if job.output.exists()]
            if existing and not options.get("overwrite"):
                if len(existing) == len(stems):
                    return track_result(stems, "skipped", reason=ALL_EXIST)
                return track_result(
                    stems, "failed", error=f"only some outputs exist ({', '.join(existing)}); --overwrite redoes them"
                )
            summary = track.clean_files(
                [audio.file_source(job.stem) for job in stems],
                mix_source(stems[0], mix_dir),
                [job.output for job in stems],
                model,
                names=[stem_name(job.stem) for job in stems],
                stem_types=[job.stem_type for job in stems],
                **options,
            )
        return {**track_result(stems, "cleaned"), **summary}
    except OSError as err:
        return track_result(stems, "failed", error=files.plain_os_error(err))
    except (audio.AudioError, engine.ModelError, ValueError) as err:
        return track_result(stems, "failed", error=str(err))
    except Exception as err:  # anything else is this track's failure; the batch goes on
        return track_result(stems, "failed", error=f"{type(err).__name__}: {err}")




def result(job: Job, status: str, **details: str) -> dict:
    """A job's line in the summary: its status, stem and output, and the reason it failed or was skipped."""
    return {"status": status, "stem": str(job.stem), "output": str(job.output), **details}


def track_result(stems: tuple[Job, ...], status: str, **details: str) -> dict:
    """A track's line in the ``--joint`` summary: its status, name and folder, and why it failed or was skipped."""
    return {"status": status, "track": stems[0].track, "folder": str(stems[0].stem.parent), **details}


def _crashed(task: tuple, how: str) -> dict:
    jobs, _, _, joint = task
    if joint:
        return track_result(jobs, "failed", error=f"the cleaner crashed on this track ({how})")
    return result(jobs[0], "failed", error=f"the cleaner crashed on this file ({how})")


def _tidy(task: tuple) -> None:
    """Remove what a worker that died or was killed in the middle of a task left beside its outputs."""
    for job in task[0]:
        if job.output.parent.is_dir():
            with files.output_lock(job.output) as mine:
                if mine:
                    files.remove_stale_scratch(job.output)


_worker_model: engine.Model | None = None


def _init_worker(model_path: Path, device: str, threads: int) -> None:
    global _worker_model
    _worker_model = engine.Model(model_path, device=device, threads=threads)


def _clean_in_worker(task: tuple) -> dict:
    jobs, mix_dir, options, joint = task
    if joint:
        return clean_track_job(jobs, _worker_model, mix_dir, options)
    return clean_job(jobs[0], _worker_model, mix_dir, options)


def worker_limit(requested: int) -> int:
    """``requested`` workers, capped by the cores this process may use and by the machine's memory."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1, min(requested, cores, memory // WORKER_MEMORY))


def run(
    jobs: list[Job] | list[tuple[Job, ...]],
    model: engine.Model,
    mix_dir: Path | None,
    options: dict,
    workers: int,
    on_done: Callable[[dict], None],
    joint: bool = False,
) -> list[dict]:
    """Clean ``jobs`` in ``workers`` processes (each with its own model session); results in completion order.

    With ``joint``, each job is a track's stems (:func:`tracks`), cleaned together by :func:`clean_track_job`.

    Processes rather than threads: the STFT and the sampler hold the GIL between onnxruntime calls. Even one job at a
    time runs in a worker, so that a crash in a codec fails that file alone and the batch goes on.
    """
    results: list[dict] = []
    workers = max(1, min(workers, len(jobs)))  # a spare worker would only cost a process start and a model load

    def done(outcome: dict) -> None:
        results.append(outcome)
        on_done(outcome)

    threads = max(1, engine.DEFAULT_THREADS // workers)
    tasks = [(job if joint else (job,), mix_dir, options, joint) for job in jobs]
    initargs = (model.path, model.device, threads)
    pool.run(tasks, _clean_in_worker, _init_worker, initargs, workers, done, _crashed, _tidy)
    return results
