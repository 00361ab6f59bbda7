"""Make real speech sing a melody line, keeping the speaker's timbre, consonants and breath.

No real a-cappella singing of useful length ships in Debian, but many hours of real speech do. PSOLA (Praat's
overlap-add resynthesis, through ``praat-parselmouth``) moves the pitch of each glottal pulse and repeats or drops
whole pulses to change duration, so the spectral envelope (the speaker's timbre) stays, and unvoiced sounds
(consonants, breath) pass through untouched. Singing is slower than speech and its length sits in the vowels: only
voiced parts are stretched. The pitch follows the melody in a singer's range (female or male, from the speaker's own
speaking pitch), gliding between notes (portamento) and with a vibrato that sets in after each note's onset.

WORLD (``pyworld``) was the other candidate; its 0.3.5 release imports ``pkg_resources``, which current setuptools no
longer ships, so it does not import in our environment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import parselmouth
from parselmouth.praat import call

from stemclean.train.voices import VIBRATO_CENTS, VIBRATO_RATE_HZ, fit_to_voice

FRAME_S = 0.01  # pitch analysis and contour step
PITCH_FLOOR_HZ, PITCH_CEILING_HZ = 60.0, 600.0
# Singing ranges as MIDI pitches: A2-G4 for a male singer, G3-F5 for a female one.
RANGES = {"male": (45, 67), "female": (55, 77)}
# A speaker whose median speaking pitch is above this sings in the female range.
FEMALE_SPEECH_HZ = 165.0
# A sung phrase lasts this many times as long as the spoken one (drawn per singer); consonants keep their length.
STRETCH = (1.2, 2.2)
_MAX_VOICED_STRETCH = 4.0
PORTAMENTO_S = (0.04, 0.15)  # length of the glide between two notes
VIBRATO_DELAY_S = (0.1, 0.35)  # a held note starts straight; vibrato fades in over _VIBRATO_FADE_S after this
_VIBRATO_FADE_S = 0.15


@dataclass(frozen=True)
class Singer:
    """How one singer sings, drawn once per mix."""

    range: str
    stretch: float
    portamento_s: float
    vibrato_hz: float
    vibrato_cents: float
    vibrato_delay_s: float


@dataclass(frozen=True)
class Melody:
    """A monophonic line: note start and end times (s) and MIDI pitches, moved into the singer's range."""

    starts: np.ndarray
    ends: np.ndarray
    pitches: np.ndarray

    @property
    def seconds(self) -> float:
        return float(self.ends[-1]) if len(self.ends) else 0.0


def pitch_track(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Praat's pitch track of mono ``audio``: frame times (s) and f0 in Hz, 0 where unvoiced."""
    pitch = parselmouth.Sound(np.asarray(audio, dtype=np.float64), sampling_frequency=rate).to_pitch(
        time_step=FRAME_S, pitch_floor=PITCH_FLOOR_HZ, pitch_ceiling=PITCH_CEILING_HZ)
    return pitch.xs(), pitch.selected_array["frequency"]


def draw_singer(rng: np.random.Generator, speaking_hz: float) -> Singer:
    """A singer for a speaker whose median speaking pitch is ``speaking_hz``."""
    return Singer(
        range="female" if speaking_hz > FEMALE_SPEECH_HZ else "male",
        stretch=float(rng.uniform(*STRETCH)),
        portamento_s=float(rng.uniform(*PORTAMENTO_S)),
        vibrato_hz=float(rng.uniform(*VIBRATO_RATE_HZ)),
        vibrato_cents=float(rng.uniform(*VIBRATO_CENTS)),
        vibrato_delay_s=float(rng.uniform(*VIBRATO_DELAY_S)),
    )


def melody_for(notes: list[tuple[float, float, int]], singer: Singer, keep_time: bool = False) -> Melody:
    """A line of (start, end, pitch) notes, moved by octaves into the singer's range; it starts at time 0 unless
    ``keep_time`` (a line sung in time with its own song keeps the song's clock)."""
    line = np.asarray(sorted(notes), dtype=np.float64)
    bottom, top = RANGES[singer.range]
    pitches = fit_to_voice(line[:, 2].astype(int), bottom, top)
    shift = 0.0 if keep_time else line[0, 0]
    return Melody(line[:, 0] - shift, line[:, 1] - shift, pitches.astype(np.float64))


def contour(melody: Melody, singer: Singer, times: np.ndarray, phase: float = 0.0) -> np.ndarray:
    """The sung pitch (fractional MIDI) at ``times`` (s on the melody's clock): the note sounding, held through rests,
    with a glide of ``portamento_s`` around each change and a vibrato that fades in after each note's onset."""
    index = np.clip(np.searchsorted(melody.starts, times, side="right") - 1, 0, len(melody.starts) - 1)
    steps = melody.pitches[index]
    width = max(1, int(round(singer.portamento_s / FRAME_S)))
    if width > 1 and len(steps) > 1:  # a Hann-weighted moving average turns each step into a smooth glide
        window = np.hanning(width + 2)[1:-1]
        padded = np.pad(steps, (width, width), mode="edge")
        steps = np.convolve(padded, window / window.sum(), mode="same")[width:-width]
    held = times - melody.starts[index]
    fade = np.clip((held - singer.vibrato_delay_s) / _VIBRATO_FADE_S, 0.0, 1.0)
    wobble = singer.vibrato_cents / 100.0 * np.sin(2 * np.pi * singer.vibrato_hz * times + phase)
    return steps + fade * wobble


def sing(speech: np.ndarray, rate: int, melody: Melody, offset: float, singer: Singer,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sing mono ``speech`` on ``melody`` from ``offset`` seconds into it.

    Returns the sung audio (float32, same rate; longer than the speech by the singer's stretch), and the target pitch
    contour on the output's clock: frame times (s) and f0 in Hz, 0 where the input was unvoiced.
    """
    sound = parselmouth.Sound(np.asarray(speech, dtype=np.float64), sampling_frequency=rate)
    times, f0 = pitch_track(speech, rate)
    voiced = f0 > 0
    if not voiced.any():
        return speech.astype(np.float32), times, np.zeros_like(times)
    n_voiced = int(voiced.sum())
    # Every frame lasts 1 (unvoiced) or `slow` (voiced) output frames, so the phrase grows by the singer's stretch.
    slow = float(np.clip((singer.stretch * len(f0) - (len(f0) - n_voiced)) / n_voiced, 1.0, _MAX_VOICED_STRETCH))
    factor = np.where(voiced, slow, 1.0)
    # Praat interpolates the duration factor linearly between points: a frame's output time is its integral.
    out_times = times[0] * factor[0] + np.concatenate([[0.0], np.cumsum((factor[:-1] + factor[1:]) / 2 * FRAME_S)])
    target = contour(melody, singer, offset + out_times, phase=float(rng.uniform(0, 2 * np.pi)))
    target_hz = np.where(voiced, 440.0 * 2.0 ** ((target - 69.0) / 12.0), 0.0)

    manipulation = call(sound, "To Manipulation", FRAME_S, PITCH_FLOOR_HZ, PITCH_CEILING_HZ)
    pitch_tier = call("Create PitchTier", "sung", 0.0, sound.duration)
    duration_tier = call("Create DurationTier", "sung", 0.0, sound.duration)
    for t, hz, k in zip(times, target_hz, factor):
        if hz > 0:
            call(pitch_tier, "Add point", float(t), float(hz))
        call(duration_tier, "Add point", float(t), float(k))
    call([pitch_tier, manipulation], "Replace pitch tier")
    call([duration_tier, manipulation], "Replace duration tier")
    sung = call(manipulation, "Get resynthesis (overlap-add)")
    return sung.values[0].astype(np.float32), out_times, target_hz


def f0_error_cents(audio: np.ndarray, rate: int, target_times: np.ndarray, target_hz: np.ndarray) -> float:
    """Median absolute pitch error (cents) of ``audio`` against the target contour, over frames voiced in both."""
    times, f0 = pitch_track(audio, rate)
    sung = target_hz > 0
    if not sung.any():
        return float("nan")
    wanted = np.interp(times, target_times[sung], target_hz[sung])
    nearest = target_hz[np.clip(np.searchsorted(target_times, times), 0, len(target_hz) - 1)]
    both = (f0 > 0) & (nearest > 0)  # frames the target sings and the output is voiced in
    if not both.any():
        return float("nan")
    return float(np.median(np.abs(1200.0 * np.log2(f0[both] / wanted[both]))))
