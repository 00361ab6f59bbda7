"""Mixture consistency: make cleaned stems add up to their mixture again, as pure functions on arrays.

Cleaning each stem on its own can remove the same bleed twice or restore the same content into two stems, so the
cleaned stems no longer sum to the song. Following the mixture-consistency projection of Wisdom et al. (2019), the
residual ``mix - sum(stems)`` is split in every time-frequency bin and each share is added back to its stem. The
shares' weights sum to one in every bin and the STFT here inverts exactly, so the outputs add up to the mixture to
float precision.

The residual is the sum of the stems' remaining errors, so each stem's share follows an estimate of its error there.
Two things about a stem in a bin say how much of the residual is its own error: which way the residual points against
it (``agreement``: in phase, the stem lost some of its own sound; against it, some stem holds an extra copy of it) and
how much of the bin it holds (``quieter``: 0 where it holds the whole bin). The share for each pair of them is a
table fitted on the val split by least squares, the share of the residual that the stems' true errors held there
(``python -m benchmarks.shares``, which writes ``models/consistency-shares.json``). What it found: a stem that holds
the bin takes all of a residual in phase with it and none of one against it; a stem holding part of the bin takes a
residual against the louder one (the copy it carries); a nearly silent stem takes almost nothing. The table is read
between its cells linearly, and each stem's share is scaled by the square of its damage (``schedule.sigma`` of its
start level), an error variance.

On the 7 val songs (stems damaged by the artifact ladder at t = 0.25, 0.5 and 0.75, and Spleeter pairs), against
independent cleanup (``python -m benchmarks.track --split val --no-speed``): the hand-made rule this table replaced
(shares by agreement and level; ``benchmarks/results/track-val-v2.json``) and the table
(``track-val-shares.json``) both gain on most stems, the table more on every ladder row; bass, whose own cleanup
leaves the least to fix, still loses a little with either, as do Spleeter's vocals by hundredths of a dB.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import uniform_filter

from stemclean import spectral

# Levels and agreements are averaged over +-2 bins (+-43 Hz) and +-4 frames (+-46 ms) before they set a share: a share
# that followed single bins would land wherever one stem happens to peak.
SMOOTHING = (1, 5, 9)
# A stem's level is floored at this fraction of its mean level in the frame (-60 dB), so a bin where every stem is
# silent (e.g. above a separator's 11 kHz cutoff) still has a defined agreement and share.
FRAME_FLOOR = 1e-3
# The fitted shares are read from this file, shipped beside the models; a share is never below SHARE_FLOOR, so every
# bin's weights have a positive sum.
SHARES_FILE = Path(__file__).parent / "models" / "consistency-shares.json"
SHARE_FLOOR = 1e-3
_TINY = np.finfo(np.float32).tiny


@functools.cache
def _share_table() -> RegularGridInterpolator:
    """The fitted share as a function of (agreement, quieter), linear between the cells' centres."""
    fitted = json.loads(SHARES_FILE.read_text())
    return RegularGridInterpolator((np.array(fitted["agreement"]), np.array(fitted["quieter"])),
                                   np.array(fitted["share"]), bounds_error=False, fill_value=None)


def spread_residual(stems: list[np.ndarray], goal: np.ndarray, damage: list[float]) -> list[np.ndarray]:
    """``stems`` (each ``(channels, samples)``) plus their shares of ``goal - sum(stems)``; they then sum to ``goal``.

    ``damage`` is each stem's artifact amplitude relative to its signal (``schedule.sigma`` of its start level): a
    stem judged twice as damaged takes four times the share where the stems are alike.
    """
    residual = spectral.stft(goal - sum(stems))
    whole = level(spectral.stft(goal))
    table = _share_table()
    weights = []
    for stem, amount in zip(stems, damage):
        agreement, quieter = features(residual, spectral.stft(stem), whole)
        share = np.clip(table(np.stack([agreement, quieter], axis=-1)), SHARE_FLOOR, 1.0).astype(np.float32)
        weights.append(np.float32(amount) ** 2 * share)
    total = sum(weights)
    return [
        stem + spectral.istft(np.divide(weight, total, out=weight) * residual, stem.shape[-1])
        for stem, weight in zip(stems, weights)
    ]


def features(residual: np.ndarray, spec: np.ndarray, whole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stem's (agreement, quieter) in every bin: the residual's smoothed correlation with it, in [-1, 1] (+1 in
    phase), and 1 minus the stem's share of the mixture's level ``whole`` (0 where it holds the whole bin)."""
    together = _smoothed(np.real(residual * np.conj(spec)))
    apart = np.sqrt(_smoothed(np.abs(residual) ** 2) * _smoothed(np.abs(spec) ** 2))
    agreement = np.clip(together / (apart + _TINY), -1.0, 1.0)
    return agreement, np.clip(1.0 - level(spec) / (whole + _TINY), 0.0, 1.0)


def level(spec: np.ndarray) -> np.ndarray:
    """A spectrum's smoothed magnitude, floored at :data:`FRAME_FLOOR` of its frame's mean."""
    smoothed = _smoothed(np.abs(spec))
    return smoothed + FRAME_FLOOR * smoothed.mean(axis=-2, keepdims=True)


def _smoothed(values: np.ndarray) -> np.ndarray:
    return uniform_filter(values, size=SMOOTHING, mode="nearest")
