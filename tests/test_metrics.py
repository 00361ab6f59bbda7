"""The benchmark's metrics against values computed by hand on synthetic signals, and the baselines' basic sanity."""

import numpy as np
import pytest

from stemclean import spectral
from stemclean.train import baselines, metrics

SR = 44100


def _tones(seconds: float = 3.0) -> np.ndarray:
    """A stereo chord with a slow tremolo: tonal, like a stem, with a little noise so every bin carries energy."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(1)
    left = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    right = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (110.0, 440.0))
    return (np.stack([left, right]) + 0.01 * rng.standard_normal((2, t.size))).astype(np.float32)


def _noise(seed: int, shape: tuple[int, int], scale: float = 0.1) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def _db(num: float, den: float) -> float:
    return 10.0 * np.log10(num / den)


def test_si_sdr_matches_hand_computed_projection():
    stem = _tones().astype(np.float64)
    noise = _noise(2, stem.shape).astype(np.float64)
    s, n = stem.ravel(), noise.ravel()
    n_perp = n - (n @ s) / (s @ s) * s
    gain = np.sqrt((s @ s) / (n_perp @ n_perp) / 10 ** (15.0 / 10))  # puts the orthogonal noise 15 dB below the stem
    assert metrics.si_sdr(stem + gain * n_perp.reshape(stem.shape), stem) == pytest.approx(15.0, abs=1e-3)
    # Scaling the estimate must not change SI-SDR, and a raw (non-orthogonal) noise follows the projection formula.
    estimate = 0.5 * (stem + 0.3 * noise)
    e = estimate.ravel()
    target = (e @ s) / (s @ s) * s
    expected = _db(target @ target, (e - target) @ (e - target))
    assert metrics.si_sdr(estimate, stem) == pytest.approx(expected, abs=1e-3)
    assert metrics.si_sdr(stem, stem) == pytest.approx(metrics.CLAMP_DB)


def test_sir_counts_the_residual_and_sar_counts_the_rest():
    stem = _tones()
    residual = _noise(3, stem.shape, 0.2)
    mix = stem + residual
    bleed = np.sqrt(np.sum(stem**2) / np.sum(residual**2) / 10 ** (20.0 / 10))  # residual 20 dB below the stem
    with_bleed = metrics.bss_metrics(stem + bleed * residual, stem, mix)
    assert with_bleed["sir"] == pytest.approx(20.0, abs=0.2)
    assert with_bleed["sar"] > 60.0

    artifact = _noise(4, stem.shape)  # independent of both sources: an artifact
    level = np.sqrt(np.sum(stem**2) / np.sum(artifact**2) / 10 ** (25.0 / 10))
    with_artifact = metrics.bss_metrics(stem + level * artifact, stem, mix)
    assert with_artifact["sar"] == pytest.approx(25.0, abs=0.3)
    assert with_artifact["sir"] > 50.0


def test_mrstft_distance_of_a_gain_error_is_one_plus_log_gain():
    reference = _noise(5, (2, SR))
    assert metrics.mrstft_distance(reference, reference) == pytest.approx(0.0, abs=1e-6)
    # |2X - X| / |X| = 1 and |log 2X - log X| = log 2 in every bin, at every resolution.
    assert metrics.mrstft_distance(2.0 * reference, reference) == pytest.approx(1.0 + np.log(2.0), abs=1e-3)
    small = metrics.mrstft_distance(reference + _noise(6, reference.shape, 0.01), reference)
    large = metrics.mrstft_distance(reference + _noise(6, reference.shape, 0.05), reference)
    assert 0.0 < small < large


def _band_noise(seed: int, shape: tuple[int, int], low_hz: float, high_hz: float) -> np.ndarray:
    spectrum = np.fft.rfft(_noise(seed, shape), axis=-1)
    hz = np.fft.rfftfreq(shape[-1], 1.0 / SR)
    spectrum[:, (hz < low_hz) | (hz > high_hz)] = 0.0
    return np.fft.irfft(spectrum, n=shape[-1], axis=-1).astype(np.float32)


def test_baselines_keep_shape_and_mask_methods_remove_what_the_mix_lacks():
    """Mask methods output a filtered mixture, so an artifact the mixture does not contain is removed."""
    stem = _tones()
    others = _band_noise(7, stem.shape, 8000.0, 16000.0)
    mix = stem + others
    artifacted = stem + _band_noise(8, stem.shape, 2000.0, 5000.0)  # musical-noise-like energy absent from the mix
    scores = {}
    for name, clean in baselines.BASELINES.items():
        estimate = clean(artifacted, mix, SR, stem) if name == "oracle" else clean(artifacted, mix, SR)
        assert estimate.shape == stem.shape and estimate.dtype == np.float32
        scores[name] = metrics.si_sdr(estimate, stem)
    assert np.array_equal(baselines.identity(artifacted, mix, SR), artifacted)
    assert scores["softmask"] > scores["identity"] + 10.0
    assert scores["wiener"] > scores["identity"] + 10.0
    assert scores["oracle"] > scores["identity"] + 10.0


def _at_level(signal: np.ndarray, reference: np.ndarray, level_db: float) -> np.ndarray:
    """``signal`` scaled so that its energy is ``level_db`` re ``reference``'s."""
    return signal * np.sqrt(np.sum(reference**2) / np.sum(signal**2) * 10 ** (level_db / 10))


def test_local_regression_gain_reads_the_share_of_bleed():
    """Stem g O over residual (1 - g) O reads g / (1 - g) where only the bleed lives; independent sources read ~0."""
    t = np.arange(3 * SR) / SR
    tones = np.stack([sum(0.2 * np.sin(2 * np.pi * f * t) for f in (110.0, 220.0, 330.0))] * 2).astype(np.float32)
    others = _band_noise(7, tones.shape, 8000.0, 16000.0)
    stem_spec = spectral.stft(tones + 0.25 * others)
    gain = baselines.local_regression_gain(stem_spec, spectral.stft(tones + others) - stem_spec)
    hz = np.fft.rfftfreq(spectral.N_FFT, 1.0 / SR)
    assert gain[:, (hz > 9000) & (hz < 15000)] == pytest.approx(0.25 / 0.75, abs=0.02)

    stem, noise = _tones(), _noise(9, (2, 3 * SR), 0.2)
    clean_spec = spectral.stft(stem)
    independent = baselines.local_regression_gain(clean_spec, spectral.stft(stem + noise) - clean_spec)
    assert independent.min() >= 0.0 and independent.mean() < 0.02


def test_lsdebleed_removes_additive_bleed_and_beats_wiener_there():
    """The other sources leaking into the stem at -12 dB: the closed-form de-bleed takes SI-SDR from 12 dB past 20."""
    stem = _tones()
    others = _noise(9, stem.shape, 0.2)
    bled = stem + _at_level(others, stem, -12.0)
    mix = stem + others
    assert metrics.si_sdr(bled, stem) == pytest.approx(12.0, abs=0.1)
    debled = metrics.si_sdr(baselines.lsdebleed(bled, mix, SR), stem)
    assert debled > 20.0
    assert debled > metrics.si_sdr(baselines.wiener(bled, mix, SR), stem) + 3.0
