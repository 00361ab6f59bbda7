"""How much of each kind of voice Spleeter keeps: the rendered songs' Festival voice against real voices, sung and
spoken, from the real-recordings corpus (test splits of both).

Per voice kind: Spleeter's vocals SI-SDR, the share of the true vocals it kept (the least-squares gain of the true
vocals in its output, whole file), and with ``--model`` stemclean's SI-SDR gain on those vocals, and the realism
ratio: the gain on real voices divided by the gain on the rendered ones. A separator that does not take a voice for
singing keeps little of it, as it did with the Festival voice before vibrato was added (docs/TRAINING.md).

    python -m benchmarks.voices [--model models/stemclean-v1.onnx] [--seconds 30]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import typer

import stemclean
from benchmarks import quality
from stemclean.engine import load_model
from stemclean.spectral import SAMPLE_RATE
from stemclean.train import metrics, realcorpus

RENDERED = "Festival (rendered songs)"


def kept_share(estimate: np.ndarray, truth: np.ndarray) -> float:
    """The least-squares gain of ``truth`` in ``estimate``: 1 when the separator kept all of the voice, 0 when none."""
    return float(np.sum(estimate * truth) / max(float(np.sum(truth * truth)), 1e-12))


def _cases(corpus: Path, spleeter: Path, real: Path, split: str, seconds: float):
    """(voice kind, Spleeter vocals, true vocals, mixture) for every pair of ``split`` that has Spleeter output, cut
    to the window of ``seconds`` where both the vocals and the accompaniment are loud (as the quality benchmark)."""
    def read(path: Path) -> np.ndarray:
        return sf.read(path, dtype="float32", always_2d=True)[0].T

    found = [(RENDERED, spleeter / split / song / "vocals.wav", corpus / split / song / "vocals.wav",
              corpus / split / song / "mixture.wav")
             for song in (quality.split_songs(corpus, split) if (corpus / "manifest.json").exists() else [])]
    found = [(kind, separated, truth, read(mix)) for kind, separated, truth, mix in found if separated.exists()]
    found += [(f"real, {pair['mode']}", pair["spleeter_vocals"], pair["vocals"], realcorpus.mixture(pair).T)
              for pair in realcorpus.load_pairs(real, split) if pair["spleeter_vocals"] is not None]
    for kind, separated, truth_path, mix in found:
        truth = read(truth_path)
        window = quality.excerpt_window({"vocals": truth, "accompaniment": mix - truth}, seconds)
        yield kind, read(separated)[:, window], truth[:, window], mix[:, window]


def run(corpus: Path, spleeter: Path, real: Path, split: str, seconds: float, model_path: Path | None) -> dict:
    """Mean scores per voice kind over the split's pairs."""
    model = load_model(model_path, device="cpu") if model_path else None
    rows: dict[str, list[dict]] = {}
    for kind, separated, truth, mix in _cases(corpus, spleeter, real, split, seconds):
        row = {"si_sdr": metrics.si_sdr(separated, truth), "kept": kept_share(separated, truth)}
        if model is not None:
            cleaned = stemclean.clean(separated.T, mix.T, SAMPLE_RATE, steps="auto", stem_type="vocals",
                                      model=model).T
            row["gain"] = metrics.si_sdr(cleaned, truth) - row["si_sdr"]
        rows.setdefault(kind, []).append(row)
    table = {kind: {"pairs": len(r), **{k: float(np.mean([x[k] for x in r])) for k in r[0]}} for kind, r in rows.items()}
    real_gains = [x["gain"] for kind, r in rows.items() if kind != RENDERED for x in r if "gain" in x]
    if real_gains and "gain" in table.get(RENDERED, {}):
        table["realism_ratio"] = realism_ratio(float(np.mean(real_gains)), table[RENDERED]["gain"])
    return table


def realism_ratio(real_gain: float, rendered_gain: float) -> float | None:
    """The gain on real voices over the gain on rendered ones; None when the model gains nothing on the rendered
    pairs, where the ratio would say nothing (a loss divided by a loss is positive)."""
    return real_gain / rendered_gain if rendered_gain > 0 else None


def main(
    corpus: Path = typer.Option(Path("data/corpus")),
    spleeter: Path = typer.Option(Path("data/spleeter")),
    real: Path = typer.Option(Path("data/real"), help="The real-recordings corpus (realcorpus --out)."),
    split: str = typer.Option("test"),
    seconds: float = typer.Option(20.0, help="Score S seconds of each pair, where vocals and accompaniment are loud."),
    model: Path | None = typer.Option(None, help="Also score stemclean's gain with this model."),
    out: Path = typer.Option(Path("benchmarks/results/voices.json")),
) -> None:
    """Score Spleeter's vocals per voice kind and write the table as JSON."""
    table = run(corpus, spleeter, real, split, seconds, model)
    out.write_text(json.dumps(table, indent=1))
    for kind, scores in table.items():
        print(kind, scores)


if __name__ == "__main__":
    typer.run(main)
