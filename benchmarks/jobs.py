"""Batch parallelism: ``stemclean batch -j 1`` against ``-j 2`` on short, medium and song-length stems.

``-j 1`` is one process whose onnxruntime uses 2 threads; ``-j 2`` is two processes with 1 thread each, and each process
pays Python's start-up and its own model load. Which wins depends on how long the files are, so the default of
``batch -j`` (``stemclean.batch.DEFAULT_JOBS``) is chosen from this measurement, and the page says which setting was
faster at each length.

Run: ``python -m benchmarks.jobs [--model PATH]``. Results go to ``benchmarks/results/jobs.json``;
``python -m benchmarks.report`` puts :func:`markdown` of them in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import os
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from benchmarks import report
from benchmarks.speed import fastest, length_name, timed, write_song
from stemclean.batch import DEFAULT_JOBS

RESULTS_NAME = "jobs.json"
JOBS = (1, 2)


def batch_tracks(folder: Path, seconds: int, tracks: int) -> tuple[Path, Path]:
    """``tracks`` tracks in demucs' layout, ``separated/bench/<track>/vocals.wav``, with their mixes in ``mixes/``."""
    separated, mixes = folder / "separated", folder / "mixes"
    mixes.mkdir(parents=True)
    for index in range(tracks):
        track = f"track{index}"
        (separated / "bench" / track).mkdir(parents=True)
        stem, mix = write_song(mixes, seconds, track)
        stem.rename(separated / "bench" / track / "vocals.wav")
        mix.rename(mixes / f"{track}.wav")
    return separated, mixes


def measure_batch(separated: Path, mixes: Path, model: Path, jobs: int) -> dict:
    """Wall time and peak RSS of ``stemclean batch -j jobs`` (outputs in a fresh folder, so none is skipped)."""
    out = Path(tempfile.mkdtemp(dir=separated.parent))
    command = [sys.executable, "-m", "stemclean", "batch", str(separated), "--mix-dir", str(mixes), "-o", str(out)]
    measured, _ = timed([*command, "--model", str(model), "-j", str(jobs), "--quiet"])
    return measured


def run_benchmark(model: Path, lengths: list[int], tracks: int, repeats: int) -> dict:
    """For each stem length, the fastest of ``repeats`` runs of every ``-j`` in :data:`JOBS`, taken in turns."""
    shown = model.resolve().relative_to(report.ROOT) if model.resolve().is_relative_to(report.ROOT) else model
    results: dict = {"meta": report.provenance(), "model": str(shown), "tracks": tracks, "repeats": repeats}
    results["load_average_before"] = os.getloadavg()[0]
    results["lengths"] = {}
    for seconds in lengths:
        with tempfile.TemporaryDirectory(prefix="stemclean-jobs-") as tmp:
            separated, mixes = batch_tracks(Path(tmp), seconds, tracks)
            measurements = {f"j{j}": partial(measure_batch, separated, mixes, model, j) for j in JOBS}
            results["lengths"][str(seconds)] = fastest(measurements, repeats)
    results["load_average_after"] = os.getloadavg()[0]
    return results


def main(
    model: Annotated[
        Optional[Path], typer.Option(help="ONNX model. Default: $STEMCLEAN_MODEL or the shipped one.")
    ] = None,
    lengths: Annotated[str, typer.Option(help="Stem lengths in seconds, comma-separated.")] = "10,60,180",
    tracks: Annotated[int, typer.Option(help="Stems in each batch.")] = 4,
    repeats: Annotated[int, typer.Option(help="Tries per measurement; the fastest counts.")] = 3,
) -> None:
    """Time `stemclean batch` with -j 1 and -j 2 at several stem lengths."""
    model = report.loadable_model(model, "jobs")
    if model is None:
        return
    results = run_benchmark(model, [int(s) for s in lengths.split(",")], tracks, repeats)
    typer.echo(f"wrote {report.save_results(RESULTS_NAME, results)}", err=True)


def markdown(results: dict) -> str:
    """The batch-parallelism section of docs/BENCHMARKS.md."""
    rows, faster = [], {}
    for seconds, runs in results["lengths"].items():
        walls = {j: runs[f"j{j}"]["wall_s"] for j in JOBS}
        faster[seconds] = min(walls, key=walls.get)
        rows.append([
            length_name(float(seconds)),
            *(f"{walls[j]:.1f} s" for j in JOBS),
            f"{walls[1] / walls[2]:.2f}x",
            f"-j {faster[seconds]}",
            *(f"{runs[f'j{j}']['peak_rss_mb']:.0f} MB" for j in JOBS),
        ])
    wins = sum(j == DEFAULT_JOBS for j in faster.values())
    lines = [
        "## Batch parallelism",
        "",
        report.how_measured(results["meta"]),
        f"Model: `{results['model']}`. Load average (1 min) before and after: {results['load_average_before']:.1f} "
        f"and {results['load_average_after']:.1f}; the benchmark's own processes account for about 2 of it, and anything "
        "above that means other jobs shared the cores.",
        "",
        f"`stemclean batch` on {results['tracks']} synthetic stereo 44.1 kHz stems of each length (demucs layout, "
        "mixes from `--mix-dir`), whole process. `-j 1` is one process that cleans 2 chunks at a time, `-j 2` two "
        "processes, one chunk at a time each; every model run has 1 thread. Each time is the fastest of "
        f"{results['repeats']} runs, taken in turns.",
        "",
        report.table(
            ["stem length", "-j 1", "-j 2", "speed-up of -j 2", "faster", "peak RSS -j 1", "peak RSS -j 2"], rows
        ),
        "",
        f"The default is `-j {DEFAULT_JOBS}` (`stemclean.batch.DEFAULT_JOBS`); it was the faster setting at {wins} of "
        f"the {len(faster)} lengths measured here.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    typer.run(main)
