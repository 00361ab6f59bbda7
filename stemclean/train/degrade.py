"""The artifact ladder ``D(s, o, t)``: separator-like damage of a true stem, with a physically calibrated strength.

A separator estimates a stem by masking the mixture. Its typical faults are rebuilt here from the true stem ``s`` and
the sum of the other sources ``o``:

- a leaky soft mask computed from noise-perturbed magnitude estimates and applied to the mixture, so the stem keeps the
  mixture's phase (phasing) and the mask jitter leaves isolated bins behind (musical noise);
- bleed: the other sources added back through smooth time-frequency leak masks;
- holes: parts of the stem taken out through the same kind of mask, as a separator that misses some of it;
- temporal smearing: the magnitude estimates smoothed over time, as a long receptive field does;
- lost transients: frames at the stem's onsets attenuated;
- a high-frequency cutoff (Spleeter zeroes everything above ~11 kHz).

The operators are combined at random, and their strength grows with ``t``. Whatever they produce, the artifact
``raw - s`` is finally rescaled so that the SI-SDR of the result against ``s`` is ``schedule.target_sdr_db(t)``
(scaled down only: where the operators fall short, more bleed is added rather than overshooting). The result is
therefore ``s + g * a`` for one artifact ``a``: the ladder is linear in the artifact, which the sampler's update
``schedule.reblend`` assumes.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from stemclean.schedule import target_sdr_db
from stemclean.spectral import HOP_LENGTH, N_FFT, SAMPLE_RATE, istft, stft

# A stem quieter than this, relative to the mixture's energy, counts as silent: its SI-SDR is undefined, so its
# artifact is scaled against this floor instead, and it always gets bleed (a silent stem's only possible fault).
SILENT_FLOOR = 1e-3
_EPS = 1e-10

# Probability of each operator per stem type. Spleeter's outputs (vocals, accompaniment) nearly always lose the top
# end; drums are the stems whose transients a separator smears or drops.
_DEFAULT_ODDS = {"mask": 0.85, "bleed": 0.6, "holes": 0.4, "smear": 0.5, "transients": 0.35, "cutoff": 0.3}
_ODDS_BY_STEM = {
    "vocals": {**_DEFAULT_ODDS, "cutoff": 0.6, "bleed": 0.25, "holes": 0.7},
    "accompaniment": {**_DEFAULT_ODDS, "cutoff": 0.6},
    "drums": {**_DEFAULT_ODDS, "transients": 0.7, "smear": 0.6},
    "bass": {**_DEFAULT_ODDS, "cutoff": 0.1},
}
# Depth of the others' leak in the fill that tops up a short artifact (holes in the stem always get depth 1). Spleeter's
# outputs, its vocals above all, lose more of the stem than they let the others in (their SIR lies well above their SAR
# on the calibration page), and the ladder's bleed-heavy fill gave them too little SIR, so it is shallower for them.
_FILL_BLEED_DEPTH = {"vocals": 0.15, "accompaniment": 0.6}


def degrade_spec(
    stem_spec: np.ndarray, other_spec: np.ndarray, t: float, rng: np.random.Generator, stem_type: str = "unknown"
) -> np.ndarray:
    """Degraded stem spectrum at level ``t``, from the spectra (channels, N_BINS, frames) of the stem and the others.

    The artifact is calibrated on waveforms and taken back through the STFT, so the result is the STFT of a waveform,
    like every real input, and its SI-SDR holds in the time domain.
    """
    stem_spec = np.asarray(stem_spec, dtype=np.complex64)
    other_spec = np.asarray(other_spec, dtype=np.complex64)
    length = HOP_LENGTH * (stem_spec.shape[-1] - 1)
    stem = istft(stem_spec, length)
    mix_energy = _energy(istft(stem_spec + other_spec, length))
    artifact = _scaled_artifact(stem_spec, other_spec, stem, mix_energy, t, rng, stem_type)
    return (stem_spec + stft(artifact)).astype(np.complex64)


def degrade(
    stem: np.ndarray, others: np.ndarray, t: float, rng: np.random.Generator, stem_type: str = "unknown"
) -> np.ndarray:
    """Degraded waveform (channels, samples) at level ``t``, from the true stem and the sum of the other sources."""
    stem = np.asarray(stem, dtype=np.float32)
    others = np.asarray(others, dtype=np.float32)
    artifact = _scaled_artifact(stft(stem), stft(others), stem, _energy(stem + others), t, rng, stem_type)
    return (stem + artifact).astype(np.float32)


def _energy(x: np.ndarray) -> float:
    return float(np.vdot(x, x).real)


def _scaled_artifact(
    stem_spec: np.ndarray, other_spec: np.ndarray, stem: np.ndarray, mix_energy: float, t: float,
    rng: np.random.Generator, stem_type: str,
) -> np.ndarray:
    """The waveform artifact ``g * a`` that puts ``stem`` at level ``t``.

    When the operators fall short of the target (``g > 1``), scaling up would overshoot the raw estimate and subtract
    an inverted copy of the stem, which no separator produces. Bleed of the others and holes in the stem, through
    fresh leak masks, are added instead, just enough to reach the target; both are bounded (at most all of the others,
    at most all of the stem, in each bin), so only a target beyond their reach is met by scaling up the rest of the way.
    """
    length = stem.shape[-1]
    silent = _energy(stem) < SILENT_FLOOR * mix_energy
    artifact = istft(_raw_estimate(stem_spec, other_spec, t, rng, stem_type, silent) - stem_spec, length)
    gain = _artifact_gain(stem, artifact, mix_energy, t)
    if gain > 1.0 and not silent:
        bleed = _leak_mask(other_spec.shape, _FILL_BLEED_DEPTH.get(stem_type, 1.0), rng) * other_spec
        fill = istft(bleed - _leak_mask(stem_spec.shape, 1.0, rng) * stem_spec, length)
        artifact = artifact + _fill_to_reach(stem, artifact, fill, float(target_sdr_db(t))) * fill
        gain = _artifact_gain(stem, artifact, mix_energy, t)
    return (gain * artifact).astype(np.float32)


def _fill_to_reach(stem: np.ndarray, artifact: np.ndarray, fill: np.ndarray, target_db: float) -> float:
    """The amount ``b`` in [0, 1] for which SI-SDR(stem + artifact + b * fill, stem) is ``target_db``, by bisection.

    SI-SDR of ``stem + artifact + b * fill`` is a ratio of quadratics in ``b`` built from six inner products, so
    each bisection step costs nothing. Returns 1 when even the whole fill does not reach the target.
    """
    ss, sa, sb = _energy(stem), float(np.vdot(stem, artifact).real), float(np.vdot(stem, fill).real)
    aa, ab, bb = _energy(artifact), float(np.vdot(artifact, fill).real), _energy(fill)

    def si_sdr(b: float) -> float:
        along = (ss + sa + b * sb) ** 2 / ss
        total = ss + aa + b * b * bb + 2 * sa + 2 * b * sb + 2 * b * ab
        return 10 * np.log10(along / max(total - along, _EPS))

    low, high = 0.0, 1.0
    if si_sdr(high) > target_db:
        return high
    for _ in range(30):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if si_sdr(mid) > target_db else (low, mid)
    return high


def _artifact_gain(stem: np.ndarray, artifact: np.ndarray, mix_energy: float, t: float) -> float:
    """The gain ``g`` for which SI-SDR(stem + g * artifact, stem) equals the target of level ``t`` (waveforms).

    With ``c = <a, s> / <s, s>`` and ``a_perp = a - c s`` the SI-SDR is
    ``(1 + g c)^2 |s|^2 / (g^2 |a_perp|^2)``; solving for ``g`` with ``1 + g c > 0`` gives the closed form below.
    A silent stem has no SI-SDR: its artifact is scaled to the target ratio against the silence floor instead.
    """
    ratio = 10.0 ** (float(target_sdr_db(t)) / 20.0)
    stem_energy = _energy(stem)
    artifact_energy = max(_energy(artifact), _EPS)
    if stem_energy < SILENT_FLOOR * mix_energy:
        return float(np.sqrt(SILENT_FLOOR * mix_energy / artifact_energy) / ratio)
    c = float(np.vdot(stem, artifact).real) / stem_energy
    perp_norm = np.sqrt(max(artifact_energy - c * c * stem_energy, _EPS))
    stem_norm = np.sqrt(stem_energy)
    # Mask and bleed keep the artifact far from parallel to the stem, so the denominator stays positive.
    return float(stem_norm / max(ratio * perp_norm - c * stem_norm, _EPS))


def _raw_estimate(
    stem_spec: np.ndarray, other_spec: np.ndarray, t: float, rng: np.random.Generator, stem_type: str, silent: bool
) -> np.ndarray:
    """An uncalibrated separator-like estimate of the stem, with operator strengths that grow with ``t``."""
    odds = _ODDS_BY_STEM.get(stem_type, _DEFAULT_ODDS)
    use = {name: rng.random() < p for name, p in odds.items()}
    # Transient loss and cutoff alone can leave an artifact nearly parallel to a steady stem, which no gain can bring
    # to a low SI-SDR; a silent stem can only suffer bleed. Mask or bleed is therefore always there.
    if silent or not use["mask"]:
        use["bleed"] = True
    estimate = stem_spec
    if use["mask"]:
        estimate = _leaky_mask(stem_spec, other_spec, t, rng, smear=use["smear"])
    if use["bleed"]:
        estimate = estimate + _leak_mask(other_spec.shape, rng.uniform(0.1, 0.3 + 0.7 * t), rng) * other_spec
    if use["holes"]:
        estimate = estimate - _leak_mask(stem_spec.shape, rng.uniform(0.1, 0.3 + 0.7 * t), rng) * stem_spec
    if use["transients"]:
        estimate = estimate * _transient_gain(stem_spec, t, rng)
    if use["cutoff"]:
        cutoff_hz = rng.uniform(16000.0 - 8000.0 * t, 18000.0 - 5000.0 * t)
        estimate = estimate.copy()
        estimate[..., int(cutoff_hz * N_FFT / SAMPLE_RATE) :, :] = 0.0
    return estimate


def _leaky_mask(
    stem_spec: np.ndarray, other_spec: np.ndarray, t: float, rng: np.random.Generator, smear: bool
) -> np.ndarray:
    """The mixture through a soft mask built from noisy (and optionally time-smeared) magnitude estimates.

    The mask ``|S'|^p / (|S'|^p + |O'|^p)`` is computed as a sigmoid of the log-magnitude ratio: one random draw, one
    log and one exp instead of two of each, which keeps the ladder fast enough for on-the-fly training.
    """
    jitter = np.float32(rng.uniform(0.3, 0.6 + 1.7 * t))
    log_ratio = np.log((np.abs(stem_spec) + _EPS) / (np.abs(other_spec) + _EPS))
    log_ratio += jitter * rng.standard_normal(log_ratio.shape, dtype=np.float32)
    if smear:
        log_ratio = uniform_filter1d(log_ratio, int(rng.integers(2, 3 + int(12 * t))), axis=-1, mode="nearest")
    power = np.float32(rng.uniform(1.0, 2.0))
    mask = 1.0 / (1.0 + np.exp(-power * log_ratio))
    return mask * (stem_spec + other_spec)


def _leak_mask(shape: tuple[int, ...], depth: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth, sparse time-frequency blobs in [0, depth]: where a separator lets the others through or misses the stem."""
    _, bins, frames = shape
    block_bins, block_frames = 48, 8
    coarse = rng.standard_normal((1, -(-bins // block_bins), -(-frames // block_frames)), dtype=np.float32)
    blobs = np.maximum(coarse - np.float32(rng.uniform(0.0, 1.0)), 0.0)
    fine = np.repeat(np.repeat(blobs, block_bins, axis=1)[:, :bins], block_frames, axis=2)[:, :, :frames]
    fine = uniform_filter1d(uniform_filter1d(fine, block_bins, axis=1), block_frames, axis=2)
    return (depth * fine / max(float(fine.max()), _EPS)).astype(np.float32)


def _transient_gain(stem_spec: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    """Per-frame gains that dip at the stem's onsets (positive spectral flux), as a separator that misses attacks."""
    log_mag = np.log(np.mean(np.abs(stem_spec), axis=0) + 1e-6)
    flux = np.sum(np.maximum(np.diff(log_mag, axis=-1, prepend=log_mag[:, :1]), 0.0), axis=0)
    onset = flux / max(float(flux.max()), _EPS)
    depth = rng.uniform(0.3, 0.5 + 0.5 * t)
    return (1.0 - depth * onset).astype(np.float32)


def leak_spec(other_spec: np.ndarray, gain: float, delay_s: float = 0.0, cutoff_hz: float | None = None) -> np.ndarray:
    """The others as they leak into a stem: scaled, delayed and low-passed, as microphone or crosstalk bleed arrives.

    Applied per STFT bin (a linear phase for the delay, a first-order low-pass magnitude), which matches filtering the
    waveform closely for delays far shorter than the 46 ms window. Unlike the ladder's bleed it is a fixed filter, not
    a time-frequency mask, so it is the case a least-squares de-bleed on the residual can undo.
    """
    freqs = np.arange(other_spec.shape[-2], dtype=np.float64) * SAMPLE_RATE / N_FFT
    response = gain * np.exp(-2j * np.pi * freqs * delay_s)
    if cutoff_hz is not None:
        response = response / np.sqrt(1.0 + (freqs / cutoff_hz) ** 2)
    return (other_spec * response[:, None].astype(np.complex64)).astype(np.complex64)


def add_leak(stem_spec: np.ndarray, other_spec: np.ndarray, ratio_db: float, delay_s: float = 0.0,
             cutoff_hz: float | None = None) -> np.ndarray:
    """The stem plus :func:`leak_spec` of the others, scaled to sit ``ratio_db`` below the stem (below the silence
    floor's level when the stem is silent)."""
    leak = leak_spec(other_spec, 1.0, delay_s, cutoff_hz)
    stem_energy, leak_energy = _energy(stem_spec), max(_energy(leak), _EPS)
    gain = np.sqrt(max(stem_energy, SILENT_FLOOR * leak_energy) / leak_energy) * 10.0 ** (-ratio_db / 20.0)
    return (stem_spec + np.float32(gain) * leak).astype(np.complex64)


def random_leak_spec(stem_spec: np.ndarray, other_spec: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random :func:`add_leak`: 30 to 6 dB below the stem, half of the time delayed by up to 10 ms and half of the
    time low-passed between 1 and 8 kHz."""
    ratio_db = rng.uniform(6.0, 30.0)
    delay = rng.uniform(0.0, 0.01) if rng.random() < 0.5 else 0.0
    cutoff = rng.uniform(1000.0, 8000.0) if rng.random() < 0.5 else None
    return add_leak(stem_spec, other_spec, ratio_db, delay, cutoff)
