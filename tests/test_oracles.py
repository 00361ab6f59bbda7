"""The oracle forms of benchmarks/oracles.py undo the damage they are shaped for, and no more."""

import numpy as np

from benchmarks import oracles
from stemclean.spectral import N_BINS, N_FFT, SAMPLE_RATE
from stemclean.train import validate
from stemclean.train.network import band_edges


def _case(damaged: np.ndarray, clean: np.ndarray) -> validate.Case:
    return validate.Case("song", "spleeter", "Spleeter vocals", damaged, clean * 2, clean, 0.5, 0)


def _noise_and_band_gains(seed: int, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """A complex noise spectrum of 40 frames and a random gain per band and frame, uniform in [low, high]."""
    rng = np.random.default_rng(seed)
    clean = (rng.standard_normal((1, N_BINS, 40)) + 1j * rng.standard_normal((1, N_BINS, 40))).astype(np.complex64)
    per_band = np.ones((1, N_BINS, 40), np.float32)
    for start, stop in band_edges():
        per_band[:, start:stop] = rng.uniform(low, high, size=(1, 1, 40))
    return clean, per_band


def test_band_gains_undo_a_band_level_error_and_a_per_bin_mask_undoes_any_real_gain():
    # one gain per band and frame, below the oracle's clip: every band-gain form at frame resolution undoes it
    clean, per_band = _noise_and_band_gains(0, 0.6, 1.4)
    rng = np.random.default_rng(0)
    case = _case(clean * per_band, clean)
    assert np.allclose(oracles._band_gain(case, 1), clean, atol=1e-4)
    assert not np.allclose(oracles._band_gain(case, None), clean, atol=1e-2), "a static equaliser cannot follow it"
    # per-bin noise in the gain is beyond any band form, but not beyond the per-bin mask
    noisy = _case(clean * rng.uniform(0.6, 1.4, size=clean.shape).astype(np.float32), clean)
    assert np.allclose(oracles._stem_mask(noisy), clean, atol=1e-4)
    assert not np.allclose(oracles._band_gain(noisy, 1), clean, atol=1e-2)


def test_the_top_band_form_restores_only_the_band_above_spleeters_limit():
    rng = np.random.default_rng(1)
    clean = (rng.standard_normal((1, N_BINS, 20)) + 1j * rng.standard_normal((1, N_BINS, 20))).astype(np.complex64)
    top = np.arange(N_BINS) * SAMPLE_RATE / N_FFT > oracles.SPLEETER_TOP_HZ
    damaged = clean * 0.5
    damaged[:, top] = 0  # a Spleeter-like estimate: scaled below the limit, silent above it
    restored = oracles._true_top_band(_case(damaged, clean))
    assert np.array_equal(restored[:, top], clean[:, top])
    assert np.array_equal(restored[:, ~top], damaged[:, ~top])


def test_gain_agreement_tells_a_model_that_follows_the_oracle_from_one_that_does_nothing():
    clean, per_band = _noise_and_band_gains(2, 0.3, 1.8)
    case = _case(clean * per_band, clean)
    halfway = case.damaged * np.sqrt(1 / per_band)  # half the oracle's correction in dB, in every band and frame
    following = oracles.gain_agreement([halfway], [case])
    assert following["correlation"] > 0.99
    assert abs(following["model spread (dB)"] - following["oracle spread (dB)"] / 2) < 0.1
    idle = oracles.gain_agreement([case.damaged * 0.9], [case])  # a constant gain: no spread, no agreement
    assert idle["model spread (dB)"] < 0.01 and abs(idle["correlation"]) < 0.1
