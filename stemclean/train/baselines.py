"""Classical cleaners the model is compared with, as plain functions on equal terms with ``stemclean.clean``.

Every function takes ``(stem, mix, sample_rate)`` (the oracle also takes ``truth``), arrays shaped (channels, samples),
and returns the cleaned stem in the same shape. All of them work on the STFT of ``stemclean.spectral``, whose
constants assume 44.1 kHz; ``sample_rate`` is there so all cleaners share one signature.
"""

from __future__ import annotations

import norbert
import numpy as np
from scipy.ndimage import uniform_filter

from stemclean.spectral import HOP_LENGTH, SAMPLE_RATE, istft, stft

# lsdebleed's local window: about 0.5 s of frames (43, odd, so the window is centred) by 5 bins. Over that span a
# leak's gain holds still in practice, and the window holds enough bins for a stable least-squares fit.
REGRESSION_FRAMES = round(0.5 * SAMPLE_RATE / HOP_LENGTH)
REGRESSION_BINS = 5


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


def local_regression_gain(stem_spec: np.ndarray, resid_spec: np.ndarray, frames: int = REGRESSION_FRAMES,
                          bins: int = REGRESSION_BINS) -> np.ndarray:
    """Per bin, the least-squares gain ``a = Re<S, R> / <R, R>`` of the stem on the residual ``R = mix - S`` over a
    local window of ``bins`` x ``frames``, clipped at zero; shaped like the inputs (..., N_BINS, frames).

    A stem that holds ``g R'`` of bleed from the other sources ``R'`` has the residual ``(1 - g) R'``, so the gain reads
    ``g / (1 - g)`` there and ``S - a R`` removes the bleed exactly; where stem and residual are independent it reads
    about zero. The network computes the same evidence in torch (``network.bleed_evidence``); the baseline keeps its
    own, so that it stays the textbook remedy whatever the network's feature becomes.
    """
    size = (1,) * (stem_spec.ndim - 2) + (bins, frames)
    cross = uniform_filter(np.real(stem_spec * np.conj(resid_spec)), size=size, mode="nearest")
    power = uniform_filter(np.real(resid_spec * np.conj(resid_spec)), size=size, mode="nearest")
    return np.maximum(cross, 0.0) / np.maximum(power, 1e-20)


def lsdebleed(stem: np.ndarray, mix: np.ndarray, sample_rate: int) -> np.ndarray:
    """Closed-form local least-squares de-bleed: ``S - a R``, with ``a`` the stem's local regression gain on the
    residual ``R = mix - S`` (:func:`local_regression_gain`).

    The textbook remedy for additive bleed when a reference of the bleed source is at hand; here the residual is that
    reference. A ratio mask makes stem and residual coherent by construction, so on mask-separated stems it also
    removes stem content: each remedy has its own ground.
    """
    stem_spec, mix_spec = stft(stem), stft(mix)
    resid_spec = mix_spec - stem_spec
    return istft(stem_spec - local_regression_gain(stem_spec, resid_spec) * resid_spec, np.shape(stem)[-1])


BASELINES = {"identity": identity, "softmask": softmask, "wiener": wiener, "lsdebleed": lsdebleed,
             "oracle": oracle_irm}
