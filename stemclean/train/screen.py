"""Screen soundtracks for singing before they join the real-recordings corpus as accompaniment.

A music package's tracks become the accompaniment of real mixes, so a track with singing in it would teach the model
that voices belong in the accompaniment. Nobody can listen to every track here; Spleeter can: each track's two
excerpts (at a third and two thirds of its length) are separated, and the share of their energy that Spleeter calls
vocals is the track's score. The first six soundtracks were chosen as instrumental by hand, so their scores say what
an instrumental track reads; a new track that reads above all of theirs is suspect.

    python -m stemclean.train.screen --out benchmarks/results/soundtrack-screen.json

A package's excerpts go through Spleeter a few minutes at a time as one waveform (with silence between them), as its
worker starts TensorFlow afresh for every call.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from stemclean.files import write_text_atomic
from stemclean.spectral import SAMPLE_RATE
from stemclean.train import recordings, separators

EXCERPT_S = 15.0
GAP_S = 1.0
CALL_S = 300.0  # audio per Spleeter call: its memory grows with the waveform's length
_FLOOR = 1e-12


def excerpts(rec: recordings.Recording, length_s: float) -> list[np.ndarray]:
    """Two stereo excerpts at a third and two thirds of the track (the whole track, once, if it is short)."""
    if length_s <= 2 * EXCERPT_S:
        return [recordings.load(rec, channels=2)]
    return [recordings.load(rec, channels=2, start_s=length_s * k / 3 - EXCERPT_S / 2, seconds=EXCERPT_S)
            for k in (1, 2)]


def vocal_share_db(package: str, venv: Path = separators.DEFAULT_VENV) -> dict[str, float]:
    """Track -> the largest share (dB) of an excerpt's energy that Spleeter puts in its vocals."""
    shares: dict[str, float] = {}
    batch: list[tuple[str, np.ndarray]] = []
    for rec in recordings.PACKAGES[package].find():
        batch += [(rec.name, excerpt) for excerpt in excerpts(rec, recordings.duration(rec))]
        if sum(e.shape[1] for _, e in batch) >= CALL_S * SAMPLE_RATE:
            _score(batch, shares, venv)
            batch = []
    if batch:
        _score(batch, shares, venv)
    return shares


def _score(batch: list[tuple[str, np.ndarray]], shares: dict[str, float], venv: Path) -> None:
    """Separate a batch of excerpts as one waveform, silence between them, and keep each track's largest share."""
    gap = np.zeros((2, int(GAP_S * SAMPLE_RATE)), dtype=np.float32)
    mixture = np.concatenate([piece for _, excerpt in batch for piece in (excerpt, gap)], axis=1)
    vocals = separators.spleeter(mixture, venv)["vocals"]
    start = 0
    for name, excerpt in batch:
        stop = start + excerpt.shape[1]
        energy = max(float(np.sum(mixture[:, start:stop] ** 2)), _FLOOR)
        share = 10 * np.log10(max(float(np.sum(vocals[:, start:stop] ** 2)), _FLOOR) / energy)
        shares[name] = round(max(shares.get(name, -np.inf), share), 2)
        start = stop + gap.shape[1]


def main(
    out: Path = typer.Option(..., help="JSON file for every track's score and each package's summary."),
    packages: list[str] = typer.Option(None, "--package", help="Music packages to screen (default: all installed)."),
) -> None:
    """Score every track of the music packages by how much of it Spleeter calls vocals."""
    names = packages or [n for n, p in recordings.PACKAGES.items() if p.role == recordings.MUSIC and p.find()]
    tracks = {}
    for name in names:
        tracks[name] = vocal_share_db(name)
        values = list(tracks[name].values())
        typer.echo(f"{name}: {len(values)} tracks, vocal share median {np.median(values):.1f} dB, "
                   f"max {max(values):.1f} dB", err=True)
    hand_picked = [s for n, t in tracks.items() if not recordings.PACKAGES[n].split for s in t.values()]
    ceiling = max(hand_picked) if hand_picked else None
    suspects = {n: sorted(t for t, s in scores.items() if ceiling is not None and s > ceiling)
                for n, scores in tracks.items() if recordings.PACKAGES[n].split}
    write_text_atomic(out, json.dumps({"excerpt_s": EXCERPT_S, "hand_picked_ceiling_db": ceiling,
                                       "suspects": suspects, "tracks": tracks}, indent=1))
    typer.echo(f"above the hand-picked soundtracks' ceiling ({ceiling} dB): {suspects}", err=True)


if __name__ == "__main__":
    typer.run(main)
