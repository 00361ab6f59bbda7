"""Classical cleaners the model is compared with, as plain functions on equal terms with ``stemclean.clean``.

Every function takes ``(stem, mix, sample_rate)`` (the oracle also takes ``truth``), arrays shaped (channels, samples),
and returns the cleaned stem in the same shape. All of them work on the STFT of ``stemclean.spectral``, whose
constants assume 44.1 kHz; ``sample_rate`` is there so all cleaners share one signature.
"""

from __future__ import annotations

import norbert
import numpy as np

from stemclean.spectral import istft, local_regression_gain, stft


def identity(stem: np.ndarray, mix: np.ndarray, sample_rate: int) -> np.ndarray:
    """The input unchanged: the score every cleaner must beat."""
    return np.asarray(stem, dtype=np.float32)


def _two_source_spectra(stem: np.ndarray, mix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Magnitudes of the stem and of ``mix - stem`` and the mixture STFT, in norbert's (frames, bins, channels) order."""
    stem_spec, mix_spec = stft(stem), stft(mix)
    magnitudes = np.stack([np.abs(stem_spec), np.abs(mix_spec - stem_spec)], axis=-1)
    return magnitudes.transpose(2, 1, 0, 3), mix_spec.transpose(2, 1, 0)


def _first_source(separated: np.ndarray, length: int) -> np.ndarray:
    return istft(separated[..., 0].transpose(2, 1, 0), length)


def softmask(stem: np.ndarray, mix: np.ndarray, sample_rate: int) -> np.ndarray:
    """Ratio mask of the stem against ``mix - stem``, applied to the mixture (norbert.softmask)."""
    magnitudes, mix_spec = _two_source_spectra(stem, mix)
    return _first_source(norbert.softmask(magnitudes, mix_spec), np.shape(stem)[-1])


def wiener(stem: np.ndarray, mix: np.ndarray, sample_rate: int) -> np.ndarray:
    """Multichannel Wiener filter, one EM iteration, with the stem and ``mix - stem`` as sources (norbert.wiener)."""
    magnitudes, mix_spec = _two_source_spectra(stem, mix)
    return _first_source(norbert.wiener(magnitudes, mix_spec, iterations=1), np.shape(stem)[-1])


def oracle_irm(stem: np.ndarray, mix: np.ndarray, sample_rate: int, truth: np.ndarray) -> np.ndarray:
    """Ideal ratio mask from the true stem and true residual, applied to the mixture: the ceiling of mask-based cleanup.

    It ignores the separated stem: it is what the best real-valued mask on the mixture achieves. The mask is the
    power ratio (Wiener-like "IRM2"), which scored higher than the magnitude ratio on corpus excerpts.
    """
    truth_spec, mix_spec = stft(truth), stft(mix)
    truth_power, resid_power = np.abs(truth_spec) ** 2, np.abs(mix_spec - truth_spec) ** 2
    mask = truth_power / np.maximum(truth_power + resid_power, 1e-20)
    return istft(mask * mix_spec, np.shape(stem)[-1])


def lsdebleed(stem: np.ndarray, mix: np.ndarray, sample_rate: int) -> np.ndarray:
    """Closed-form local least-squares de-bleed: ``S - a R``, with ``a`` the stem's local regression gain on the
    residual ``R = mix - S`` (``spectral.local_regression_gain``).

    The textbook remedy for additive bleed when a reference of the bleed source is at hand; here the residual is that
    reference. A ratio mask makes stem and residual coherent by construction, so on mask-separated stems it also
    removes stem content: each remedy has its own ground.
    """
    stem_spec, mix_spec = stft(stem), stft(mix)
    resid_spec = mix_spec - stem_spec
    return istft(stem_spec - local_regression_gain(stem_spec, resid_spec) * resid_spec, np.shape(stem)[-1])


BASELINES = {"identity": identity, "softmask": softmask, "wiener": wiener, "lsdebleed": lsdebleed,
             "oracle": oracle_irm}
