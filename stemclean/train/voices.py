"""Sing a melody line with syllables through Festival's singing mode.

Festival (``text2wave -mode singing`` with the kal diphone voice) sings each syllable at a given frequency and duration;
a whole song's line renders in well under a second, far faster than per-note espeak-ng calls with pitch correction.
It sings at 16 kHz and crashes on notes above ~500 Hz, so the line is moved by octaves into a male singing range, and
the result is resampled to the corpus rate with soxr.

Festival holds each note at a dead-steady pitch, and Spleeter does not take such a voice for singing: on our songs its
vocals stem kept only part of the voice and scored far below its published results on real vocals. A singer's
vibrato fixes that (``benchmarks/bands.py`` shows how much of the voice the separator keeps), so every line gets one.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf
import soxr

from stemclean.spectral import SAMPLE_RATE
from stemclean.train.midi import Note

# One-syllable words only: Festival maps one PITCH/DURATION to each syllable of a word. All start with l, n, m, s, t
# or f: Festival moves each syllable earlier by its first consonant's onset offset (0.03-0.05 s for these) and skips
# the move when it exceeds half a note, so mixing in d/k/g/vowel onsets made the voice drift ~1 s behind over a song.
SYLLABLES = (
    "la", "lee", "loo", "low", "love", "light", "lay", "line", "na", "no", "night", "new", "now", "ma", "me", "moon",
    "my", "more", "mine", "so", "sun", "sea", "sky", "say", "soul", "ta", "to", "time", "tell", "tune", "fa", "far",
    "free", "fly", "fine",
)
# Highest and lowest MIDI pitch the voice sings (G4 ~392 Hz stays clear of Festival's ~500 Hz crash; A2 = 110 Hz).
_TOP_PITCH = 67
_BOTTOM_PITCH = 45
# Vibrato rate (Hz) and depth (cents, peak) are drawn per line from ranges typical of trained singers.
VIBRATO_RATE_HZ = (5.0, 6.5)
VIBRATO_CENTS = (25.0, 60.0)


def fit_to_voice(pitches: np.ndarray, bottom: int = _BOTTOM_PITCH, top: int = _TOP_PITCH) -> np.ndarray:
    """Move a line by whole octaves so its median sits mid-range, then fold single outliers into range by octaves.

    The range defaults to Festival's safe one; it must span at least an octave.
    """
    pitches = np.asarray(pitches, dtype=int)
    if pitches.size == 0:
        return pitches
    centre = (top + bottom) / 2
    shift = 12 * int(np.round((centre - np.median(pitches)) / 12))
    moved = pitches + shift
    while (moved > top).any():
        moved = np.where(moved > top, moved - 12, moved)
    while (moved < bottom).any():
        moved = np.where(moved < bottom, moved + 12, moved)
    return moved


def vibrato(voice: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``voice`` read through a delay that swings at the vibrato rate, which bends its pitch by +/- the depth.

    A delay d(n) changes the pitch by the factor 1 - d'(n); a sine delay of peak slope 2^(cents/1200) - 1 gives the
    wanted depth. Written with numpy's interpolation because no dependency offers a time-varying delay, and this keeps
    the voice's formants where Festival put them. The rate drifts slowly, as a singer's does.
    """
    rate = rng.uniform(*VIBRATO_RATE_HZ)
    slope = 2.0 ** (rng.uniform(*VIBRATO_CENTS) / 1200.0) - 1.0
    n = np.arange(voice.shape[0], dtype=np.float64)
    drift = 1.0 + 0.1 * np.sin(2 * np.pi * 0.3 * n / SAMPLE_RATE + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(rate * drift) / SAMPLE_RATE
    delay = slope * SAMPLE_RATE / (2 * np.pi * rate) * (1.0 + np.sin(phase))
    return np.interp(n - delay, n, voice).astype(np.float32)


def singing_score(line: list[Note], words: list[str]) -> str:
    """Festival SINGING XML for ``line``: absolute note times become rests and durations in seconds."""
    pitches = fit_to_voice(np.array([n.pitch for n in line]))
    parts = [
        '<?xml version="1.0"?>',
        '<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" "Singing.v0_1.dtd" []>',
        '<SINGING BPM="50">',  # Festival divides BPM by 50 (not 60), so SECONDS are honoured as given
    ]
    clock = 0.0
    for note, pitch, word in zip(line, pitches, words):
        start, end = round(note.start, 4), round(note.end, 4)
        if start > clock + 1e-4:
            parts.append(f'<REST SECONDS="{start - clock:.4f}"></REST>')
        freq = 440.0 * 2.0 ** ((pitch - 69) / 12)
        parts.append(f'<PITCH FREQ="{freq:.3f}"><DURATION SECONDS="{end - start:.4f}">{escape(word)}</DURATION></PITCH>')
        clock = end
    parts.append("</SINGING>")
    return "\n".join(parts)


def sing(line: list[Note], rng: np.random.Generator, length: int) -> np.ndarray:
    """Mono float32 voice at SAMPLE_RATE singing ``line`` with random syllables, exactly ``length`` samples long."""
    voice = np.zeros(length, dtype=np.float32)
    if not line:
        return voice
    words = [str(w) for w in rng.choice(SYLLABLES, size=len(line))]
    with tempfile.TemporaryDirectory() as tmp:
        score, wav = Path(tmp) / "line.xml", Path(tmp) / "line.wav"
        score.write_text(singing_score(line, words))
        result = subprocess.run(["text2wave", "-mode", "singing", str(score), "-o", str(wav)],
                                check=False, capture_output=True, text=True)
        if result.returncode != 0 or not wav.exists():
            raise RuntimeError(f"Festival singing failed (rc {result.returncode}): {result.stderr.strip()[-300:]}")
        sung, rate = sf.read(wav, dtype="float32")
    sung = vibrato(soxr.resample(sung, rate, SAMPLE_RATE, quality="HQ").astype(np.float32), rng)
    n = min(length, sung.shape[0])
    voice[:n] = sung[:n]
    return voice
