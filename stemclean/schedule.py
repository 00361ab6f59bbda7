"""The artifact-level ladder, the spectral start-level estimate, and the few-step sampler update.

A level ``t`` in [0, 1] names how damaged a stem is. It is calibrated physically: a stem at level ``t`` has a
signal-to-artifact ratio of ``target_sdr_db(t)``, from ``SDR_AT_ZERO`` dB (inaudible) down to ``SDR_AT_ONE`` dB (as
much artifact as signal). ``sigma(t)`` is the artifact's amplitude relative to the signal, so a ladder that is linear
in the artifact gives the cold-diffusion update ``x <- x0 + sigma(t_next) / sigma(t) * (x - x0)``.
"""

from __future__ import annotations

import functools

import numpy as np

from stemclean.spectral import SAMPLE_RATE

SDR_AT_ZERO = 40.0
SDR_AT_ONE = 0.0
MAX_STEPS = 8
# Below this estimated level the input is treated as clean and returned untouched ("do no harm").
CLEAN_FLOOR = 0.08
# Steps ``--steps auto`` spends on a damaged input, decided by the val split's quality-vs-steps curve
# (``python -m benchmarks.quality --split val``, on docs/BENCHMARKS.md): with the shipped model, extra steps did not
# improve SI-SDR on real Spleeter output there, so auto spends one.
AUTO_STEPS = 1


def target_sdr_db(t: float | np.ndarray) -> float | np.ndarray:
    """Signal-to-artifact ratio, in dB, that defines level ``t``."""
    return SDR_AT_ZERO + (SDR_AT_ONE - SDR_AT_ZERO) * np.asarray(t, dtype=np.float64)


def level_for_sdr(sdr_db: float | np.ndarray) -> float | np.ndarray:
    """Inverse of :func:`target_sdr_db`, clipped to [0, 1]: the level a measured SI-SDR implies."""
    t = (np.asarray(sdr_db, dtype=np.float64) - SDR_AT_ZERO) / (SDR_AT_ONE - SDR_AT_ZERO)
    return np.clip(t, 0.0, 1.0)


def sigma(t: float | np.ndarray) -> float | np.ndarray:
    """Artifact amplitude relative to the signal at level ``t``."""
    return 10.0 ** (-target_sdr_db(t) / 20.0)


def step_levels(t_start: float, steps: int) -> list[float]:
    """Levels visited by a ``steps``-step sampler starting at ``t_start``, evenly spaced in SDR, ending at 0."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    return [float(t) for t in np.linspace(t_start, 0.0, steps + 1)[:-1]]


def reblend(x: np.ndarray, x0: np.ndarray, t: float, t_next: float) -> np.ndarray:
    """Cold-diffusion update: move the current estimate ``x`` to level ``t_next`` around the prediction ``x0``."""
    return x0 + float(sigma(t_next) / sigma(t)) * (x - x0)


# Lags searched for late-arriving bleed, and how far its agreement must stand out of the spread over all lags (see
# lagged_agreement). A 10 ms lag is 3.4 m of sound travel, more than between microphones in one room.
MAX_LAG_S = 0.01
LAG_PEAK_Z = 6.0


# No frame's evidence may exceed this multiple of the median frame's: one click (a single wild sample) is broadband and
# loud, and uncapped it outweighed everything else in its chunk, so one sample could mark a whole damaged file clean.
FRAME_WEIGHT_CAP = 4.0
# Bins below this one (under ~30 Hz at 44.1 kHz) are not evidence: they hold no music, and a DC offset that is in the
# stem alone (8-bit files written by truncation carry half a step of it) read as strong anti-coherence there.
LOWEST_BIN = 2
# Bins within this multiple of the quantisation noise's expected magnitude are not evidence (see quantisation_floor).
NOISE_FLOOR_MARGIN = 3.0


def quantisation_floor(bits: int | None, rate: int, n_fft: int, model_rate: int) -> float:
    """Magnitude below which an STFT bin of a ``bits``-bit file is mostly quantisation noise (0 for float files).

    That noise is in the stem but not in the mix, so it appears in the residual with the opposite sign and reads as
    strongly anti-coherent: an 8-bit copy of a damaged stem used to read as clean. A uniform quantiser adds white
    noise of power step^2 / 12 per sample; a Hann-windowed bin gathers 3/8 * n_fft of it, and resampling up from a
    lower rate packs it into fewer bins.
    """
    if bits is None:
        return 0.0
    power = (2.0 ** (1 - bits)) ** 2 / 12 * 0.375 * n_fft * max(1.0, model_rate / rate)
    return NOISE_FLOOR_MARGIN * float(np.sqrt(power))


def coherence_evidence(stem_spec: np.ndarray, mix_spec: np.ndarray, floor: float = 0.0) -> tuple[float, float]:
    """Phase coherence between the stem and the residual ``mix - stem``, in [-1, 1], and the evidence behind it.

    A true stem and the other sources are independent, so their per-bin phases are unrelated and the coherence is near
    zero. A separator's error, whether bleed (the stem holds a share of the others) or loss (the residual holds a share
    of the stem), puts the same content on both sides with the same phase, so the coherence rises toward one. Bins are
    weighted by the weaker side's magnitude above ``floor`` (see :func:`quantisation_floor`): only bins where both
    sides carry energy tell anything. Frames (the last axis) are weighed robustly, each at most FRAME_WEIGHT_CAP times
    the median frame. The evidence is the total weight, so estimates from several chunks can be weighted by it. Both
    numbers scale with the audio alone: a hot or a very quiet file reads the same as a normalised one.
    """
    resid = mix_spec - stem_spec
    weight = np.maximum(np.minimum(np.abs(stem_spec), np.abs(resid)) - floor, 0.0)
    weight[..., :LOWEST_BIN, :] = 0.0
    cross = stem_spec * np.conj(resid)
    size = np.abs(cross)
    unit = np.divide(cross, size, out=np.zeros_like(cross), where=size > 0)
    frame_axes = tuple(range(weight.ndim - 1))
    frame_weight = np.sum(weight, axis=frame_axes, dtype=np.float64)
    active = frame_weight[frame_weight > 0]
    if not active.size:
        return 0.0, 0.0
    cap = FRAME_WEIGHT_CAP * np.median(active)
    scale = np.divide(cap, frame_weight, out=np.ones_like(frame_weight), where=frame_weight > cap)
    total = float(np.sum(frame_weight * scale))
    # each bin's capped, weighted sum of unit cross terms over channels and frames, for the search over lags
    bin_sums = np.sum(weight * unit * scale, axis=tuple(i for i in range(unit.ndim) if i != unit.ndim - 2))
    return lagged_agreement(bin_sums) / total, total


@functools.lru_cache(maxsize=2)
def _lag_turns(n_bins: int) -> np.ndarray:
    """Each lag's phase delay per bin, [lags, bins]: made once, as it costs more than the product it serves."""
    max_lag = int(MAX_LAG_S * SAMPLE_RATE)
    lags = np.arange(-max_lag, max_lag + 1)
    return np.exp(2j * np.pi * np.outer(lags, np.arange(n_bins)) / (2 * (n_bins - 1))).astype(np.complex64)


def lagged_agreement(bin_sums: np.ndarray) -> float:
    """The stem/residual agreement at the lag where it is strongest, from each bin's weighted sum of unit cross terms.

    Bleed that arrives late (microphone bleed, crosstalk) turns each bin's phase difference by its own angle, so the
    same-bin agreement (lag 0, the real part of the plain sum) averages away and a bleeding stem reads as clean. Turned
    back by a lag's phase delay, the bins agree again: over all lags within MAX_LAG_S at once, this is a generalised
    cross-correlation with the phase transform, as one matrix product. A lag other than zero counts only where its
    agreement stands LAG_PEAK_Z robust standard deviations out of the spread over all lags; for independent sources
    no lag does, so a clean stem still reads as clean.
    """
    max_lag = int(MAX_LAG_S * SAMPLE_RATE)
    by_lag = np.real(_lag_turns(bin_sums.shape[-1]) @ bin_sums)
    at_zero, best = float(by_lag[max_lag]), int(np.argmax(by_lag))
    centre = np.median(by_lag)
    spread = 1.4826 * np.median(np.abs(by_lag - centre))  # the median absolute deviation as a standard deviation
    if by_lag[best] - centre > LAG_PEAK_Z * spread:
        return max(at_zero, float(by_lag[best]))
    return at_zero


def stem_residual_coherence(stem_spec: np.ndarray, mix_spec: np.ndarray) -> float:
    """The coherence of :func:`coherence_evidence` alone."""
    return coherence_evidence(stem_spec, mix_spec)[0]


# The coherence that maps to t = 0 and t = 1. Measured on 30 s excerpts of rendered songs: true stems sit at
# 0.00 +/- 0.01; ladder stems rise from ~0.05 at t = 0.1 to 0.45-0.85 at t = 0.8; real Spleeter 2stems outputs (SI-SDR
# 1-11 dB, i.e. t = 0.73-0.98) at 0.67-0.85. ``python -m benchmarks.calibrate`` repeats the measurement on the val
# split and proposes values; a change must rest on that, never on the test split.
COHERENCE_AT_ZERO = 0.02
COHERENCE_AT_ONE = 0.8


def level_for_coherence(
    coherence: float | np.ndarray, at_zero: float = COHERENCE_AT_ZERO, at_one: float = COHERENCE_AT_ONE
) -> float | np.ndarray:
    """The artifact level a stem/residual coherence implies, clipped to [0, 1]; clean stems give ~0.

    ``at_zero`` and ``at_one`` default to the shipped calibration; the calibration benchmark passes candidates.
    """
    return np.clip((np.asarray(coherence, dtype=np.float64) - at_zero) / (at_one - at_zero), 0.0, 1.0)


def auto_schedule(t_start: float) -> list[float]:
    """Levels for ``--steps auto``: none below the clean floor (the input passes through), else ``AUTO_STEPS``."""
    if t_start < CLEAN_FLOOR:
        return []
    return step_levels(t_start, AUTO_STEPS)
