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

    python -m benchmarks.oracles [--out benchmarks/results/oracles.json]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import typer
from scipy.ndimage import uniform_filter1d

from stemclean import spectral
from stemclean.files import write_text_atomic
from stemclean.train import validate
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
    write_text_atomic(out, json.dumps({"command": "python -m benchmarks.oracles", "split": "val",
                                       "cases": len(cases), "rows": rows}, indent=1))


if __name__ == "__main__":
    typer.run(main)
