"""Mixture consistency: make cleaned stems add up to their mixture again, as pure functions on arrays.

Cleaning each stem on its own can remove the same bleed twice or restore the same content into two stems, so the
cleaned stems no longer sum to the song. Following the mixture-consistency projection of Wisdom et al. (2019), the
residual ``mix - sum(stems)`` is split in every time-frequency bin in proportion to each stem's power there, and each
share is added back to its stem. The shares' weights sum to one in every bin and the STFT here inverts exactly, so the
outputs add up to the mixture to float precision.
"""

from __future__ import annotations

import numpy as np

from stemclean import spectral

# A stem's power in a bin is floored at this fraction of its mean power in that frame (-60 dB). Only bins where every
# stem is silent feel it: there (e.g. above a separator's 11 kHz cutoff) the residual goes to the stems that are
# playing in that frame rather than to all of them alike.
FRAME_POWER_FLOOR = 1e-6


def spread_residual(stems: list[np.ndarray], mix: np.ndarray) -> list[np.ndarray]:
    """``stems`` (each ``(channels, samples)``) plus their shares of ``mix - sum(stems)``; they then sum to ``mix``."""
    residual = spectral.stft(mix - np.sum(stems, axis=0))
    powers = [np.abs(spectral.stft(stem)) ** 2 for stem in stems]
    for power in powers:
        power += FRAME_POWER_FLOOR * power.mean(axis=-2, keepdims=True)
    total = np.sum(powers, axis=0)
    silent = total <= 0.0  # every stem silent in the whole frame: split the residual evenly
    total[silent] = 1.0
    return [
        stem + spectral.istft(np.where(silent, 1.0 / len(stems), power / total).astype(np.float32) * residual,
                              stem.shape[-1])
        for stem, power in zip(stems, powers)
    ]
