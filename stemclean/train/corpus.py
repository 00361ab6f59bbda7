"""Render the multitrack training corpus: songs -> vocals/drums/bass/other stems and their exact mixture.

Run ``python -m stemclean.train.corpus --out data/corpus``. It is seeded (the same seed gives the same corpus),
resumable (finished songs are skipped) and writes ``manifest.json`` after every song, so a partly rendered corpus is
already usable. Layout (docs/ARCHITECTURE.md)::

    OUT/manifest.json
    OUT/{train,val,test}/<song>/{vocals,drums,bass,other,mixture}.wav   float32, 44.1 kHz, stereo

``mixture.wav`` is the float32 sum of the four stems in MIX_ORDER, so reading the stems and summing them in that order
reproduces it bit for bit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Annotated

import mido
import numpy as np
import soundfile as sf
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from stemclean.files import write_text_atomic
from stemclean.spectral import SAMPLE_RATE
from stemclean.train import drums, midi, mixing, songs, voices

MIX_ORDER = midi.CORPUS_STEMS  # vocals, drums, bass, other
SOUNDFONTS = {
    "FluidR3_GM": Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    "TimGM6mb": Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
}
_SOUNDFONT_WEIGHTS = {"FluidR3_GM": 0.65, "TimGM6mb": 0.35}
_HYDROGEN_SHARE = 0.6  # share of songs whose kit drums are real Hydrogen samples
_TAIL_SECONDS = 2.0  # room for releases and reverb after the last note
DEFAULT_CHORALES = 40
MANIFEST = "manifest.json"

console = Console(stderr=True)


def render_midi(midi_file: mido.MidiFile, soundfont: Path, length: int, workdir: Path, name: str) -> np.ndarray:
    """Render a MIDI file with the fluidsynth CLI into float32 (2, length)."""
    mid_path, wav_path = workdir / f"{name}.mid", workdir / f"{name}.wav"
    midi_file.save(mid_path)
    cmd = ["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(SAMPLE_RATE), "-T", "wav", "-O", "float",
           "-F", str(wav_path), str(soundfont), str(mid_path)]
    try:  # the timeout guards against fluidsynth never finishing a file (it then writes an endless WAV)
        result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60 + 2 * length / SAMPLE_RATE)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"fluidsynth did not finish rendering {name}") from None
    if result.returncode != 0 or not wav_path.exists():
        raise RuntimeError(f"fluidsynth failed on {name}: {result.stderr.strip()[-300:]}")
    audio, _ = sf.read(wav_path, dtype="float32", always_2d=True)
    out = np.zeros((2, length), dtype=np.float32)
    n = min(length, audio.shape[0])
    out[:, :n] = audio[:n, :2].T
    return out


def render_song(song: songs.Song, seed: int, seconds: float | None) -> tuple[dict[str, np.ndarray], dict]:
    """Render one song's four mixed stems (float32 (2, samples)) and the facts the manifest records about it."""
    rng = np.random.default_rng(songs.song_seed(seed, song.id))
    mid = songs.load_midi(song, rng)
    notes = midi.read_notes(mid)
    late = [n for n in notes if seconds is not None and n.start >= seconds]  # silenced in every stem
    notes = [n for n in notes if seconds is None or n.start < seconds]
    plan = midi.plan_stems(mid, notes)
    end = max(n.end for n in notes) if seconds is None else seconds
    length = int(np.ceil((end + _TAIL_SECONDS) * SAMPLE_RATE))
    names = list(_SOUNDFONT_WEIGHTS)
    soundfont = str(rng.choice(names, p=list(_SOUNDFONT_WEIGHTS.values())))
    kits = drums.usable_kits()
    kit = drums.load_kit(drums.HYDROGEN_KITS / rng.choice(kits)) if kits and rng.random() < _HYDROGEN_SHARE else None
    stems: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stem in ("bass", "other", "drums"):
            def keep(n, stem=stem):
                mine = plan.stem_of[n.on] == stem
                return mine and not (kit is not None and stem == "drums" and kit.kind_for(n.pitch))

            if any(keep(n) for n in notes):
                stem_midi = midi.silence_notes(mid, [n for n in notes if not keep(n)] + late)
                stems[stem] = render_midi(stem_midi, SOUNDFONTS[soundfont], length, Path(tmp), stem)
            else:
                stems[stem] = np.zeros((2, length), dtype=np.float32)
    if kit is not None:
        stems["drums"] += drums.play(kit, [n for n in notes if plan.stem_of[n.on] == "drums"], length)
    stems["vocals"] = voices.sing(plan.sung, rng, length)
    mixed, settings = mixing.mix(stems, rng)
    info = {
        "id": song.id, "source": song.source, "ref": song.ref, "duration_s": round(length / SAMPLE_RATE, 3),
        "seconds_limit": seconds, "soundfont": soundfont, "drum_kit": kit.name if kit else None,
        "melody_channel": plan.melody_channel, "bass_channels": list(plan.bass_channels),
        "sung_notes": len(plan.sung), "mix": settings,
    }
    return mixed, info


def mixture_of(stems: dict[str, np.ndarray]) -> np.ndarray:
    """The float32 sum of the stems in MIX_ORDER: the definition of ``mixture.wav``."""
    total = np.zeros_like(stems[MIX_ORDER[0]], dtype=np.float32)
    for stem in MIX_ORDER:
        total = total + stems[stem].astype(np.float32)
    return total


def write_folder(folder: Path, tracks: dict[str, np.ndarray], ext: str = "wav", subtype: str = "FLOAT") -> None:
    """Write float32 (2, samples) tracks as ``folder/<name>.<ext>`` atomically: a hidden sibling folder is filled, then
    renamed into place, so an interrupted run never leaves a half-written song that looks finished."""
    partial = folder.parent / f".{folder.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name, audio in tracks.items():
        sf.write(partial / f"{name}.{ext}", audio.T, SAMPLE_RATE, subtype=subtype)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)


def song_files(out: Path, split: str, song_id: str) -> list[Path]:
    """The five WAV files of a rendered song."""
    return [out / split / song_id / f"{name}.wav" for name in (*MIX_ORDER, "mixture")]


def minutes_per_split(entries: dict[str, dict]) -> dict[str, float]:
    """Minutes of rendered audio in each split."""
    return {s: round(sum(e["duration_s"] for e in entries.values() if e["split"] == s) / 60, 2) for s in songs.SPLITS}


def _write_manifest(out: Path, entries: dict[str, dict], seed: int) -> None:
    write_text_atomic(out / MANIFEST, json.dumps({
        "seed": seed, "sample_rate": SAMPLE_RATE, "stems": list(MIX_ORDER), "minutes": minutes_per_split(entries),
        "songs": [entries[k] for k in sorted(entries)]}, indent=1))


def load_manifest(out: Path) -> dict[str, dict]:
    """Song id -> manifest entry for the songs already rendered under ``out``."""
    path = out / MANIFEST
    if not path.exists():
        return {}
    return {entry["id"]: entry for entry in json.loads(path.read_text())["songs"]}


def catalog(chorales: int) -> list[songs.Song]:
    """All songs of the corpus, in a fixed order: openmsx songs, then chorales."""
    return songs.openmsx_songs() + songs.chorale_songs(chorales)


def progress_bar() -> Progress:
    """The rich progress bar (on stderr) used for per-song loops."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console)


def build(out: Path, seed: int = 0, chorales: int = DEFAULT_CHORALES, limit: int | None = None,
          seconds: float | None = None, only: list[str] | None = None) -> dict[str, dict]:
    """Render every song not yet rendered under ``out``; returns the manifest entries."""
    everything = catalog(chorales)
    split_of = songs.assign_splits(everything, seed)
    todo = [s for s in everything if not only or s.id in only][:limit]
    entries = load_manifest(out)
    failed: list[str] = []
    out.mkdir(parents=True, exist_ok=True)
    with progress_bar() as progress:
        task = progress.add_task("rendering", total=len(todo))
        for song in todo:
            split = split_of[song.id]
            done = entries.get(song.id)
            if done and done.get("seconds_limit") == seconds and all(p.exists() for p in song_files(out, split, song.id)):
                progress.advance(task)
                continue
            progress.update(task, description=f"{song.id:<34}")
            began = time.perf_counter()
            try:
                stems, info = render_song(song, seed, seconds)
            except RuntimeError as error:  # one broken song must not stop a long render
                failed.append(song.id)
                progress.console.log(f"[red]{song.id} failed:[/red] {error}")
                progress.advance(task)
                continue
            write_folder(out / split / song.id, {**stems, "mixture": mixture_of(stems)})
            info.update(split=split, render_s=round(time.perf_counter() - began, 2))
            entries[song.id] = info
            _write_manifest(out, entries, seed)
            progress.console.log(f"{song.id} [{split}] {info['duration_s']:.0f} s audio in {info['render_s']:.1f} s")
            progress.advance(task)
    _write_manifest(out, entries, seed)
    if failed:
        raise RuntimeError(f"{len(failed)} song(s) failed: {', '.join(failed)} (the others are rendered)")
    return entries


def main(
    out: Annotated[Path, typer.Option("--out", "-o", help="Corpus folder.")] = Path("data/corpus"),
    seed: Annotated[int, typer.Option(help="Corpus seed: instruments, mixing, splits.")] = 0,
    chorales: Annotated[int, typer.Option(help="How many Bach chorales to add to the openmsx songs.")] = DEFAULT_CHORALES,
    limit: Annotated[int | None, typer.Option(help="Render only the first N songs of the catalog.")] = None,
    seconds: Annotated[
        float | None, typer.Option(help="Render only the first S seconds of each song (tiny test corpora).")
    ] = None,
    song: Annotated[list[str] | None, typer.Option("--song", help="Render only this song id (repeatable).")] = None,
) -> None:
    """Render the multitrack corpus (skips songs already rendered with the same settings)."""
    try:
        entries = build(out, seed=seed, chorales=chorales, limit=limit, seconds=seconds, only=song)
    except (FileNotFoundError, RuntimeError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    console.print(f"corpus at {out}: {len(entries)} songs, minutes per split {minutes_per_split(entries)}")


if __name__ == "__main__":
    typer.run(main)
