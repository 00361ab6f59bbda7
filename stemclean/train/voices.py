"""Sing a melody line with syllables through Festival's singing mode.

Festival (``text2wave -mode singing`` with the kal diphone voice) sings each syllable at a given frequency and duration;
a whole song's line renders in well under a second, far faster than per-note espeak-ng calls with pitch correction.
It sings at 16 kHz and crashes on notes above ~500 Hz, so the line is moved by octaves into a male singing range, and
the result is resampled to the corpus rate with soxr.
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


def fit_to_voice(pitches: np.ndarray) -> np.ndarray:
    """Move a line by whole octaves so its median sits mid-range, then fold single outliers into range by octaves."""
    pitches = np.asarray(pitches, dtype=int)
    if pitches.size == 0:
        return pitches
    centre = (_TOP_PITCH + _BOTTOM_PITCH) / 2
    shift = 12 * int(np.round((centre - np.median(pitches)) / 12))
    moved = pitches + shift
    while (moved > _TOP_PITCH).any():
        moved = np.where(moved > _TOP_PITCH, moved - 12, moved)
    while (moved < _BOTTOM_PITCH).any():
        moved = np.where(moved < _BOTTOM_PITCH, moved + 12, moved)
    return moved


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
    sung = soxr.resample(sung, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    n = min(length, sung.shape[0])
    voice[:n] = sung[:n]
    return voice
