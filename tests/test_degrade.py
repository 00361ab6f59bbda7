"""The artifact ladder: calibrated to its target SI-SDR, monotone in t, and fast enough for on-the-fly training."""

import time

import numpy as np
import pytest

from stemclean import spectral
from stemclean.schedule import target_sdr_db
from stemclean.train import metrics
from stemclean.train.degrade import degrade, degrade_spec

SR = spectral.SAMPLE_RATE
LEVELS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def _song(seconds: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A plucked-note stem (onsets, harmonics up to 15 kHz) and noisy drum-like others, stereo."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    stem = np.zeros(n)
    for start, f0 in zip(np.arange(0.0, seconds, 0.25), rng.choice([196.0, 247.0, 294.0, 392.0], int(seconds * 4))):
        idx = t >= start
        env = np.exp(-6.0 * (t[idx] - start))
        stem[idx] += env * sum(np.sin(2 * np.pi * k * f0 * (t[idx] - start)) / k for k in range(1, 40) if k * f0 < 15000)
    hits = np.zeros(n)
    hits[:: SR // 4] = 1.0
    others = np.convolve(hits, rng.standard_normal(4000) * np.exp(-np.arange(4000) / 600.0))[:n]
    stereo = lambda x, pan: np.stack([x * (1 - pan), x * pan]).astype(np.float32)  # noqa: E731
    return 0.1 * stereo(stem, 0.4), 0.1 * stereo(others, 0.6)


@pytest.mark.parametrize("stem_type", ["vocals", "drums", "bass", "other", "accompaniment", "unknown"])
def test_waveform_ladder_hits_the_target_si_sdr(stem_type):
    stem, others = _song()
    rng = np.random.default_rng(1)
    for t in LEVELS:
        out = degrade(stem, others, t, rng, stem_type)
        assert out.shape == stem.shape and out.dtype == np.float32
        assert metrics.si_sdr(out, stem) == pytest.approx(target_sdr_db(t), abs=0.05)


def test_spectral_ladder_is_the_stft_of_a_waveform_at_the_target_si_sdr():
    stem, others = _song()
    stem_spec, other_spec = spectral.stft(stem), spectral.stft(others)
    rng = np.random.default_rng(2)
    for t in LEVELS:
        out = degrade_spec(stem_spec, other_spec, t, rng, "vocals")
        assert out.shape == stem_spec.shape and out.dtype == np.complex64
        wave = spectral.istft(out, stem.shape[-1])
        # Consistent up to the last frames, where the input length is not a whole number of hops.
        assert np.allclose(spectral.stft(wave)[..., :-2], out[..., :-2], atol=1e-4 * np.abs(out).max())
        assert metrics.si_sdr(wave, stem) == pytest.approx(target_sdr_db(t), abs=0.5)


def test_artifact_energy_grows_with_t():
    stem, others = _song(seed=3)
    for seed in range(4):
        energies = [
            float(np.sum((degrade(stem, others, t, np.random.default_rng(seed)) - stem) ** 2)) for t in LEVELS
        ]
        assert all(b > 1.2 * a for a, b in zip(energies, energies[1:])), energies


def test_higher_levels_carry_more_bleed_and_more_artifacts():
    stem, others = _song(seed=4)
    mix = stem + others
    mean = lambda t, key: np.mean(  # noqa: E731
        [metrics.bss_metrics(degrade(stem, others, t, np.random.default_rng(s)), stem, mix)[key] for s in range(4)]
    )
    for key in ("sir", "sar"):
        assert mean(1.0, key) < mean(0.5, key) - 3.0 < mean(0.1, key) - 6.0


def test_silent_stem_gets_bleed_at_the_floor_level():
    _, others = _song(seed=5)
    silent = np.zeros_like(others)
    out = degrade(silent, others, 0.5, np.random.default_rng(0), "vocals")
    assert np.all(np.isfinite(out))
    floor_db = 10 * np.log10(np.sum((silent + others) ** 2) * 1e-3 / np.sum(out**2))
    assert floor_db == pytest.approx(target_sdr_db(0.5), abs=0.1)


@pytest.mark.slow
def test_ladder_degrades_over_twenty_two_second_stereo_examples_per_second():
    stem, others = _song()
    stem_spec, other_spec = spectral.stft(stem), spectral.stft(others)
    rng = np.random.default_rng(6)
    start = time.process_time()  # CPU time: the machine is shared, and the ladder runs on one core
    for _ in range(50):
        degrade_spec(stem_spec, other_spec, rng.random(), rng)
    assert 50 / (time.process_time() - start) > 20.0
