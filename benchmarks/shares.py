"""Fit the mixture-consistency shares (``stemclean.consistency``) on the val split.

Each val case of ``benchmarks.track`` (stems damaged by the artifact ladder, and Spleeter pairs; the clean case has no
residual to share) is cleaned stem by stem, as ``stemclean run`` would, and in every time-frequency bin the residual
``mix - sum(cleaned)`` is the sum of the stems' remaining errors. A stem's least-squares share of it is
``Re(error * conj(residual)) / |residual|^2``; summed over the bins that fall in one cell of (agreement, quieter), the
two things ``consistency.features`` reads about a stem, it gives that cell's share, weighted by where the residual's
energy is. The table goes to ``stemclean/models/consistency-shares.json``, which the engine reads.

Run: ``python -m benchmarks.shares`` (val only: the test split scores the result, in ``benchmarks.track``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

import stemclean
from benchmarks import quality, report
from benchmarks.track import LEVELS, track_cases
from stemclean import consistency, engine, spectral
from stemclean.files import write_text_atomic
from stemclean.spectral import SAMPLE_RATE

AGREEMENT_EDGES = np.linspace(-1.0, 1.0, 6)
# finer towards 1: most bins where a stem is nearly silent fall in the last two cells, and they differ
QUIETER_EDGES = np.array([0.0, 0.2, 0.5, 0.8, 0.95, 1.0])


def _cell(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.clip(np.digitize(values, edges) - 1, 0, len(edges) - 2)


def fit(cases, model: engine.Model | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(share, residual energy) per (agreement, quieter) cell, over ``cases`` of (song, source, stems, truths, mix),
    each stem cleaned by ``model`` (default: the shipped one)."""
    model = engine.load_model(model)
    shape = (len(AGREEMENT_EDGES) - 1, len(QUIETER_EDGES) - 1)
    held, energy = np.zeros(shape), np.zeros(shape)
    for song, source, stems, truths, mix in cases:
        alone = stemclean.clean_track({name: audio.T for name, audio in stems.items()}, mix.T, SAMPLE_RATE,
                                      consistency=False, model=model)
        cleaned = {name: audio.T for name, audio in alone.items()}
        residual = spectral.stft(mix - sum(cleaned.values()))
        whole = consistency.level(spectral.stft(mix))
        for name, stem in cleaned.items():
            agreement, quieter = consistency.features(residual, spectral.stft(stem), whole)
            cells = (_cell(agreement, AGREEMENT_EDGES), _cell(quieter, QUIETER_EDGES))
            error = spectral.stft(truths[name] - stem)
            np.add.at(held, cells, np.real(error * np.conj(residual)))
            np.add.at(energy, cells, np.abs(residual) ** 2)
        typer.echo(f"{song} {source}", err=True)
    return held / np.maximum(energy, 1e-30), energy / energy.sum()


def main(
    corpus: Annotated[Path, typer.Option(help="Rendered corpus (manifest.json + split folders).")] = Path("data/corpus"),
    spleeter: Annotated[Path, typer.Option(help="Spleeter outputs, <split>/<song>/{vocals,accompaniment}.wav.")] = Path(
        "data/spleeter"),
    seconds: Annotated[float, typer.Option(help="Excerpt length per song.")] = 12.0,
    out: Annotated[Path, typer.Option(help="The table the engine reads.")] = consistency.SHARES_FILE,
) -> None:
    """Fit the consistency shares on the val split's track cases and write them where the engine reads them."""
    songs = quality.corpus_songs(corpus, spleeter, "val")
    if not songs:
        raise typer.BadParameter(f"the corpus at {corpus} has no val songs")
    cases = (case for case in track_cases(songs, seconds, LEVELS, seed=0) if case[1] != "clean")
    share, energy = fit(cases)
    centres = lambda edges: ((edges[:-1] + edges[1:]) / 2).round(4).tolist()  # noqa: E731
    table = {
        "meta": report.provenance(),
        "songs": [song.id for song in songs],
        "agreement": centres(AGREEMENT_EDGES),
        "quieter": centres(QUIETER_EDGES),
        "share": np.clip(share, consistency.SHARE_FLOOR, 1.0).round(3).tolist(),
        "residual_energy": energy.round(4).tolist(),
    }
    write_text_atomic(out, json.dumps(table, indent=1) + "\n")
    typer.echo(f"wrote {out}", err=True)


if __name__ == "__main__":
    typer.run(main)
