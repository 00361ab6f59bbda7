"""Where the error lives: the separator's and stemclean's error per frequency band, on whole test songs.

SI-SDR is one number per stem; this table says which bands it comes from, how much of the true stem the separator
kept there (a least-squares gain of the true stem in the separator's output, per band, over the whole song), and how
much of each band's error stemclean removes. A band the separator mostly dropped cannot be fixed by masking the stem;
the model has to find it again in the mixture.

    python -m benchmarks.bands
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

import stemclean
from benchmarks import quality, report
from benchmarks.calibrate import BAND_EDGES_HZ
from stemclean import spectral
from stemclean.engine import default_model_path, load_model

# Bands holding less of the true stem than this get no *kept* gain: there is nothing there to keep.
MIN_SHARE = 1e-3
_TINY = 1e-12


def band_energies(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per band: [true energy, error energy, estimate-truth cross term (complex)], summed over channels and time."""
    est, ref = spectral.stft(estimate), spectral.stft(truth)
    bins = (np.asarray(BAND_EDGES_HZ) * spectral.N_FFT / spectral.SAMPLE_RATE).astype(int)
    rows = []
    for low, high in zip(bins[:-1], bins[1:]):
        e, r = est[..., low:high, :], ref[..., low:high, :]
        rows.append([np.sum(np.abs(r) ** 2), np.sum(np.abs(e - r) ** 2), np.sum(e * np.conj(r))])
    return np.array(rows)


def _db(ratio: float) -> float:
    return float(10 * np.log10(max(ratio, _TINY)))


def run(corpus: Path, spleeter: Path, model_path: Path, split: str = "test", max_songs: int | None = None) -> dict:
    """Band table per Spleeter stem, summed over every song of ``split`` (the first ``max_songs``), rendered or real."""
    model = load_model(model_path, device="cpu")
    songs = quality.corpus_songs(corpus, spleeter, split)[:max_songs]
    energies: dict[tuple[str, str], list[np.ndarray]] = {}
    for song in songs:
        stems = {name: quality.read_audio(path) for name, path in song.stems.items()}
        mix = quality.song_mixture(song, stems)
        truths = quality.with_accompaniment(stems)
        for name in quality.SPLEETER_STEMS:
            separated = quality.read_estimate(song.separated[name], mix.shape[1]) if name in song.separated else None
            if separated is None:
                continue
            cleaned = stemclean.clean(separated.T, mix.T, spectral.SAMPLE_RATE, steps="auto", stem_type=name,
                                      model=model).T
            energies.setdefault((name, "input"), []).append(band_energies(separated, truths[name]))
            energies.setdefault((name, "stemclean"), []).append(band_energies(np.ascontiguousarray(cleaned),
                                                                              truths[name]))
    rows = []
    for name in quality.SPLEETER_STEMS:
        if (name, "input") not in energies:
            continue
        before, after = sum(energies[(name, "input")]), sum(energies[(name, "stemclean")])
        signal = before[:, 0].real
        total = signal.sum()
        for k, (low, high) in enumerate(zip(BAND_EDGES_HZ, BAND_EDGES_HZ[1:])):
            share = float(signal[k] / total)
            rows.append({
                "stem": name, "band_hz": [low, high], "share": share,
                # 20 log10 |gain|; meaningless where the true stem is (nearly) silent
                "kept_db": 2 * _db(abs(before[k, 2]) / signal[k]) if share >= MIN_SHARE else None,
                "input_error_db": _db(before[k, 1].real / total),
                "stemclean_error_db": _db(after[k, 1].real / total),
            })
        rows.append({"stem": name, "band_hz": None, "share": 1.0, "kept_db": None,
                     "input_error_db": _db(before[:, 1].real.sum() / total),
                     "stemclean_error_db": _db(after[:, 1].real.sum() / total)})
    return {"meta": report.provenance(), "corpus": "real" if quality.is_real(corpus) else "rendered", "split": split,
            "songs": [song.id for song in songs], "model": str(model_path), "rows": rows}


def markdown(results: dict) -> str:
    """The per-band section of docs/BENCHMARKS.md."""
    body = []
    for r in results["rows"]:
        band = "all" if r["band_hz"] is None else f"{r['band_hz'][0]}–{r['band_hz'][1]}"
        body.append([r["stem"], band, f"{100 * r['share']:.1f}%", r["kept_db"], r["input_error_db"],
                     r["stemclean_error_db"]])
    return "\n".join([
        "## Where the error lives", "",
        report.how_measured(results["meta"]),
        f"Real Spleeter 2stems outputs of all {len(results['songs'])} {results['split']} songs, whole songs, both "
        "channels. Per band: the band's share of the true stem's energy; *kept*, the least-squares gain of the true "
        "stem inside Spleeter's output (0 dB: all of it is there, −10 dB: a tenth of its power), shown where the "
        f"band holds at least {MIN_SHARE:.1%} of the stem; and the band's error energy relative to the whole true "
        "stem's energy (dB, lower is better; the *all* row is the total), before and after `stemclean --steps auto`.",
        "",
        report.table(["stem", "band (Hz)", "share", "kept (dB)", "input error (dB)", "stemclean error (dB)"], body),
    ]) + "\n"


def main(
    corpus: Path = typer.Option(Path("data/corpus"), help="Rendered corpus, or the real recordings (data/real)."),
    spleeter: Path = typer.Option(Path("data/spleeter")),
    model: Path = typer.Option(None, help="Model to score (default: the shipped one or $STEMCLEAN_MODEL)."),
    split: str = typer.Option("test", help="Split to measure: test for the page, val for choices."),
    max_songs: int = typer.Option(None, help="Measure only the first N songs."),
    out: Path = typer.Option(None, help="Results file (default benchmarks/results/bands.json)."),
) -> None:
    """Measure the per-band table and save it."""
    results = run(corpus, spleeter, model or default_model_path(), split, max_songs)
    path = report.save_results_as(results, "bands.json", out)
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    typer.run(main)
