"""Seeded mixing: per-stem EQ, compression, reverb, pan and level, then a song loudness drawn from a wide range.

Every stem is processed on its own (pedalboard), so the mixture stays exactly the sum of the processed stems.
"""

from __future__ import annotations

import numpy as np
import pedalboard as pb

from stemclean.spectral import SAMPLE_RATE
from stemclean.train.midi import CORPUS_STEMS

# Level of each stem relative to the others before the song's loudness is set: (mean dB, spread dB).
_STEM_LEVELS = {"vocals": (0.0, 3.0), "drums": (-2.0, 3.0), "bass": (-3.0, 3.0), "other": (-2.0, 3.0)}
# Song loudness (RMS of the mixture, dBFS) is uniform in this range, so the model sees quiet and loud mixes.
SONG_RMS_DB = (-28.0, -14.0)
PEAK_CEILING = 0.98
_SILENT_RMS = 1e-6


def stem_chain(rng: np.random.Generator, stem: str) -> pb.Pedalboard:
    """EQ, compression and reverb with random settings; bass and drums get less reverb than vocals and other."""
    wet = {"vocals": 0.35, "other": 0.3, "drums": 0.15, "bass": 0.05}[stem]
    return pb.Pedalboard([
        pb.HighpassFilter(cutoff_frequency_hz=float(rng.uniform(20, 40 if stem in ("bass", "drums") else 120))),
        pb.LowShelfFilter(cutoff_frequency_hz=float(rng.uniform(80, 250)), gain_db=float(rng.uniform(-4, 4))),
        pb.PeakFilter(cutoff_frequency_hz=float(np.exp(rng.uniform(np.log(200), np.log(5000)))),
                      gain_db=float(rng.uniform(-5, 5)), q=float(rng.uniform(0.7, 2.0))),
        pb.HighShelfFilter(cutoff_frequency_hz=float(rng.uniform(5000, 10000)), gain_db=float(rng.uniform(-5, 3))),
        pb.Compressor(threshold_db=float(rng.uniform(-30, -10)), ratio=float(rng.uniform(1.5, 5.0)),
                      attack_ms=float(rng.uniform(2, 30)), release_ms=float(rng.uniform(50, 300))),
        pb.Reverb(room_size=float(rng.uniform(0.1, 0.8)), damping=float(rng.uniform(0.2, 0.8)),
                  wet_level=float(rng.uniform(0.0, wet)), dry_level=1.0, width=float(rng.uniform(0.5, 1.0))),
    ])


def pan(audio: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan of mono (samples,) or stereo (2, samples) audio; position -1 (left) .. 1 (right)."""
    angle = (position + 1.0) * np.pi / 4.0
    gains = np.array([[np.cos(angle)], [np.sin(angle)]], dtype=np.float32) * np.float32(np.sqrt(2.0))
    stereo = np.stack([audio, audio]) if audio.ndim == 1 else audio
    return (stereo * gains).astype(np.float32)


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def mix(stems: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict]:
    """Process and level the stems (mono or stereo, same length); returns stereo float32 stems and the settings used.

    The stems come back scaled so that their sum has the drawn loudness and peaks below clipping.
    """
    out, settings = {}, {"stems": {}}
    for stem in CORPUS_STEMS:
        audio = stems[stem]
        position = float(rng.uniform(-0.3, 0.3) if stem in ("vocals", "bass") else rng.uniform(-0.7, 0.7))
        chain = stem_chain(rng, stem)
        level_db = float(rng.normal(*_STEM_LEVELS[stem]))
        if rms(audio) < _SILENT_RMS:
            out[stem] = np.zeros((2, audio.shape[-1]), dtype=np.float32)
            continue
        processed = chain(pan(audio, position), SAMPLE_RATE, reset=True).astype(np.float32)
        out[stem] = processed * np.float32(10 ** (level_db / 20) / max(rms(processed), _SILENT_RMS))
        settings["stems"][stem] = {"pan": round(position, 3), "level_db": round(level_db, 2)}
    scale, settings["mixture_rms_db"] = loudness_scale(sum(out.values()), rng)
    return {stem: (audio * np.float32(scale)).astype(np.float32) for stem, audio in out.items()}, settings


def loudness_scale(mixture: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """The gain that gives ``mixture`` a loudness drawn from SONG_RMS_DB, lowered where needed to keep its peaks below
    the ceiling; returns it and the mixture's resulting RMS in dBFS."""
    target_db = float(rng.uniform(*SONG_RMS_DB))
    scale = 10 ** (target_db / 20) / max(rms(mixture), _SILENT_RMS)
    peak = float(np.max(np.abs(mixture))) * scale
    if peak > PEAK_CEILING:
        scale *= PEAK_CEILING / peak
    return scale, round(20 * np.log10(max(rms(mixture) * scale, 1e-12)), 2)
