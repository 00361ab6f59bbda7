"""Where the oracle's gain on Spleeter output lives: oracle corrections of decreasing resolution, on the val split.

The oracle ideal ratio mask gains several dB on real Spleeter pairs while the model gains about nothing. Before
asking the network for more, this asks what kind of correction holds that gain. Each row is an oracle (it reads the
true stem) restricted to one form, applied to the Spleeter estimate on the val set's excerpts
(``stemclean.train.validate``), scored as ΔSI-SDR:

- ``irm``: the ideal ratio mask on the mixture (the usual ceiling);
- ``stem mask per bin``: the best real gain per STFT bin on the stem itself, clipped to [0, 2];
- ``band gain per frame``: one real gain per band of the network's band split and per frame;
- ``band gain over 0.5 s``: the same, fitted over 43 frames: a slowly moving equaliser;
- ``band gain per excerpt``: one static equaliser per excerpt;
- ``true stem above 11 kHz``: the stem as it is, with the true stem put in its place above 11.025 kHz, the top of the
  band Spleeter's 2stems model processes (its STFT has 4096 points and its network the lowest 1024 bins; the
  default configuration leaves both stems silent above). It is the gain that restoring that band alone is worth.

If the coarse rows keep most of the IRM's gain, the fix is an envelope the network's band-level state can represent,
and its limit is inferring it, not resolution. Val only: it informs choices.

With ``--checkpoint``, it also asks whether a model's own correction follows the oracle's: per row, the spread (dB,
weighted by the input's band energy) of the model's band gains per frame and of the oracle's, and their correlation.
A model that spreads little and correlates weakly is not attempting the fix, whatever its mean ΔSI-SDR.

    python -m benchmarks.oracles [--checkpoint C] [--out benchmarks/results/oracles.json]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import typer
from scipy.ndimage import uniform_filter1d

from benchmarks import report
from stemclean import spectral
from stemclean.files import write_text_atomic
from stemclean.train import validate
from stemclean.train.export import load_checkpoint
from stemclean.train.network import EVIDENCE_FRAMES, band_edges

MAX_GAIN = 2.0
SPLEETER_TOP_HZ = 44100 * 1024 / 4096


def _band_gain(case: validate.Case, frames: int | None) -> np.ndarray:
    """The stem scaled by the least-squares real gain of the true stem on it, per band and per ``frames`` frames
    (None: one gain per band over the whole excerpt)."""
    out = np.zeros_like(case.damaged)
    for start, stop in band_edges():
        stem, truth = case.damaged[:, start:stop], case.clean[:, start:stop]
        num = (truth * np.conj(stem)).real.sum(axis=1, keepdims=True)
        den = (np.abs(stem) ** 2).sum(axis=1, keepdims=True)
        if frames is None:
            num, den = num.sum(axis=-1, keepdims=True), den.sum(axis=-1, keepdims=True)
        elif frames > 1:
            num, den = uniform_filter1d(num, frames, axis=-1), uniform_filter1d(den, frames, axis=-1)
        out[:, start:stop] = np.clip(num / np.maximum(den, 1e-12), 0.0, MAX_GAIN) * stem
    return out


def _stem_mask(case: validate.Case) -> np.ndarray:
    gain = (case.clean * np.conj(case.damaged)).real / np.maximum(np.abs(case.damaged) ** 2, 1e-12)
    return np.clip(gain, 0.0, MAX_GAIN) * case.damaged


def _true_top_band(case: validate.Case) -> np.ndarray:
    top = np.arange(case.damaged.shape[-2]) * spectral.SAMPLE_RATE / spectral.N_FFT > SPLEETER_TOP_HZ
    out = case.damaged.copy()
    out[:, top] = case.clean[:, top]
    return out


def _band_power(spec: np.ndarray) -> np.ndarray:
    """Power per band of the network's band split and per frame, of a [1, F, T] spectrum: [K, T]."""
    power = np.abs(spec[0]) ** 2
    return np.stack([power[start:stop].sum(axis=0) for start, stop in band_edges()])


def gain_agreement(estimates: list[np.ndarray], cases: list[validate.Case]) -> dict[str, float]:
    """How the band gains per frame of ``estimates`` (one per case) follow the oracle's (``band gain per frame``):
    both spreads in dB and their correlation, each bin of the band-frame grid weighted by the input's energy there."""
    ours, oracle, weight = [], [], []
    for estimate, case in zip(estimates, cases):
        before = _band_power(case.damaged) + 1e-12
        ours.append(10 * np.log10(_band_power(estimate) / before + 1e-6).ravel())
        oracle.append(10 * np.log10(_band_power(_band_gain(case, 1)) / before + 1e-6).ravel())
        weight.append((before / before.sum()).ravel())
    x, y, w = (np.concatenate(v) for v in (ours, oracle, weight))
    x, y = (x - np.average(x, weights=w)), (y - np.average(y, weights=w))
    spread_x, spread_y = np.sqrt(np.average(x * x, weights=w)), np.sqrt(np.average(y * y, weights=w))
    return {"model spread (dB)": round(float(spread_x), 2), "oracle spread (dB)": round(float(spread_y), 2),
            "correlation": round(float(np.average(x * y, weights=w) / max(spread_x * spread_y, 1e-12)), 3)}


FORMS: dict[str, Callable[[validate.Case], np.ndarray]] = {
    "irm": validate.oracle_spec,
    "stem mask per bin": _stem_mask,
    "band gain per frame": lambda case: _band_gain(case, 1),
    "band gain over 0.5 s": lambda case: _band_gain(case, EVIDENCE_FRAMES),
    "band gain per excerpt": lambda case: _band_gain(case, None),
    "true stem above 11 kHz": _true_top_band,
}


def main(
    corpus: Path = typer.Option(Path("data/corpus")),
    spleeter: Path = typer.Option(Path("data/spleeter")),
    recordings: Path = typer.Option(Path("data/real"), help="The real-recordings corpus, if made."),
    checkpoint: Path = typer.Option(None, help="Also compare this training checkpoint's band gains with the "
                                    "oracle's."),
    out: Path = typer.Option(Path("benchmarks/results/oracles.json")),
) -> None:
    """Score each oracle form on the val set's Spleeter pairs, rendered and real."""
    cases = [c for c in validate.ValSet(corpus, spleeter, recordings).cases() if c.kind in ("spleeter", "real")]
    rows: dict[str, dict[str, float]] = {}
    for name, form in FORMS.items():
        gains: dict[str, list[float]] = {}
        for case in cases:
            gains.setdefault(case.row, []).append(validate.gain(form(case), case))
        rows[name] = {row: round(float(np.mean(v)), 2) for row, v in gains.items()}
        typer.echo(f"{name}: {rows[name]}")
    result = {"command": report.provenance()["command"], "split": "val", "cases": len(cases), "rows": rows}
    if checkpoint is not None:
        model, _ = load_checkpoint(checkpoint)
        model.eval()
        agreement = {}
        for row in sorted({case.row for case in cases}):
            chosen = [case for case in cases if case.row == row]
            agreement[row] = gain_agreement([validate.model_output(model, case) for case in chosen], chosen)
            typer.echo(f"{checkpoint} on {row}: {agreement[row]}")
        result |= {"checkpoint": str(checkpoint), "band gain agreement": agreement}
    write_text_atomic(out, json.dumps(result, indent=1))


if __name__ == "__main__":
    typer.run(main)
