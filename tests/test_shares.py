"""The consistency-share fit (benchmarks.shares) on a case whose errors are known exactly."""

from __future__ import annotations

import numpy as np

from benchmarks import shares
from stemclean.spectral import SAMPLE_RATE
from conftest import write_gain_model


def test_a_stem_that_lost_part_of_itself_takes_the_in_phase_residual(tmp_path):
    """A low tone missing 30% of itself and an exact high tone: the residual is the low stem's error, so the cell of
    a loud stem in phase with the residual gets all of it, and the cell of a stem silent in those bins none."""
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    low = np.stack([np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32)
    high = np.stack([0.5 * np.sin(2 * np.pi * 5000 * t)] * 2).astype(np.float32)
    stems, truths = {"bass": 0.7 * low, "other": high}, {"bass": low, "other": high}
    unchanged = write_gain_model(tmp_path / "unchanged.onnx", stem_gain=1.0)
    share, energy = shares.fit([("song", "case", stems, truths, low + high)], model=unchanged)
    in_phase, silent = len(shares.AGREEMENT_EDGES) - 2, len(shares.QUIETER_EDGES) - 2
    # each stem counts the residual's energy once, so a stem's cells hold half of it
    assert energy[in_phase].sum() > 0.9 / len(stems), "all of the low stem's residual agrees with it"
    np.testing.assert_allclose(np.sum(share[in_phase] * energy[in_phase]) / energy[in_phase].sum(), 1.0, atol=0.02)
    assert energy[:, silent].sum() > 0 and np.sum(share[:, silent] * energy[:, silent]) < 0.01 * energy[:, silent].sum()
