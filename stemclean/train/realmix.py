"""One real-recording mix: a real speaker's phrases, sung on a melody line or kept spoken, over an excerpt of a real
instrumental soundtrack, or over a rendered corpus song's band while singing that song's melody in time, at a
vocal-to-accompaniment ratio spread like commercial songs'.

The vocals get a singer's mixing chain (EQ, compression, reverb, pan); the accompaniment is a finished production and
is only cut and faded. Both are scaled together to a song loudness, so the mixture is exactly their sum.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from stemclean.spectral import SAMPLE_RATE
from stemclean.train import mixing, recordings, singing

MIX_SECONDS = (30.0, 60.0)
VAR_DB = (-6.0, 6.0)  # vocals' RMS over the accompaniment's, over the whole mix
SUNG_SHARE = 0.75  # the rest stays speech: spoken word and rap over music are real cases
_INTRO_S = (0.0, 3.0)
_GAP_S = (0.25, 1.5)  # breath between phrases
_BREAK = (0.1, 3.0, 8.0)  # probability of an instrumental break after a phrase, and its length range (s)
_PHRASE_LEVEL_DB = 3.0  # phrase-to-phrase loudness spread (the singer's dynamics)
_QUIET_EXCERPT_DB = -45.0  # an excerpt this quiet (RMS dBFS) is mostly silence: draw another
_FADE_S = 0.02


@dataclass(frozen=True)
class Clip:
    """A recording of the catalog with its length, as the mixer picks from it."""

    recording: recordings.Recording
    seconds: float


def _fade(audio: np.ndarray) -> np.ndarray:
    """Short fades at both ends, so a cut excerpt does not start or end on a click."""
    n = min(int(_FADE_S * SAMPLE_RATE), audio.shape[-1] // 2)
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    audio = audio.copy()
    audio[..., :n] *= ramp
    audio[..., audio.shape[-1] - n:] *= ramp[::-1]
    return audio


def excerpt(tracks: list[Clip], length: int, rng: np.random.Generator,
            even_groups: bool = False) -> tuple[np.ndarray, dict]:
    """A stereo excerpt of ``length`` samples from a track drawn by duration, skipping near-silent stretches.

    With ``even_groups`` each soundtrack (group) is drawn equally often, its tracks by duration: a held-out split
    scored over several soundtracks should not be one long soundtrack's split."""
    long_enough = [t for t in tracks if t.seconds * SAMPLE_RATE >= length] or tracks
    weights = np.array([t.seconds for t in long_enough])
    if even_groups:
        groups = [t.recording.group for t in long_enough]
        weights = weights / np.array([sum(w for w, h in zip(weights, groups) if h == g) for g in groups])
    for _ in range(8):
        track = long_enough[int(rng.choice(len(long_enough), p=weights / weights.sum()))]
        start_s = float(rng.uniform(0.0, max(0.0, track.seconds - length / SAMPLE_RATE)))
        piece = recordings.load(track.recording, 2, start_s, length / SAMPLE_RATE)[:, :length]
        cut = np.zeros((2, length), dtype=np.float32)
        cut[:, : piece.shape[1]] = piece
        if 20 * np.log10(mixing.rms(cut) + 1e-12) > _QUIET_EXCERPT_DB:
            break
    info = {"package": track.recording.package, "group": track.recording.group, "file": track.recording.name,
            "offset_s": round(start_s, 3), "licence": recordings.licence_of(track.recording)}
    return _fade(cut), info


def _phrase(clip: Clip, melody: singing.Melody | None, offset: float, singer: singing.Singer | None,
            rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """One phrase at SAMPLE_RATE: the clip sung from ``offset`` into the melody, or as spoken. Returns the audio, the
    melody time it used and the f0 error (cents, NaN when spoken)."""
    audio, rate = recordings.decode(clip.recording)
    speech = audio.mean(axis=0)
    error, used = float("nan"), 0.0
    if melody is not None and singer is not None:
        speech, out_times, target_hz = singing.sing(speech, rate, melody, offset, singer, rng)
        error = singing.f0_error_cents(speech, rate, out_times, target_hz)
        used = speech.shape[0] / rate
    if rate != SAMPLE_RATE:
        speech = soxr.resample(speech, rate, SAMPLE_RATE, quality="HQ")
    return np.asarray(speech, dtype=np.float32), used, error


def speaking_pitch(clips: list[Clip]) -> float:
    """The speaker's median speaking f0 (Hz) over a few clips; 0 when none is voiced."""
    voiced = []
    for clip in clips:
        audio, rate = recordings.decode(clip.recording)
        voiced.append(singing.pitch_track(audio.mean(axis=0), rate)[1])
    f0 = np.concatenate(voiced)
    return float(np.median(f0[f0 > 0])) if (f0 > 0).any() else 0.0


def vocal_line(clips: list[Clip], lines: list[dict], length: int, rng: np.random.Generator,
               in_time: bool = False) -> tuple[np.ndarray, dict]:
    """A mono vocal track of ``length`` samples: consecutive clips of one speaker from a random start, placed with
    breaths and breaks between them, sung on one of the melody ``lines`` (``SUNG_SHARE`` of the mixes) or spoken.

    ``in_time``: the line is the accompaniment's own melody on the mix's clock, so each phrase starts on a note
    onset and sings the notes sounding at its time, in the song's key."""
    start = int(rng.integers(len(clips)))
    order = [clips[(start + i) % len(clips)] for i in range(len(clips))]
    sung = rng.random() < SUNG_SHARE
    info: dict = {"mode": "sung" if sung else "spoken"}
    melody, singer, offset = None, None, 0.0
    if sung:
        singer = singing.draw_singer(rng, speaking_pitch(order[:3]))
        line_index = int(rng.integers(len(lines)))
        melody = singing.melody_for([tuple(n) for n in lines[line_index]["notes"]], singer, keep_time=in_time)
        offset = 0.0 if in_time else float(rng.uniform(0, melody.seconds / 2))
        info.update(singer=asdict(singer), melody=lines[line_index]["song"], melody_start_s=round(offset, 2))
    voice = np.zeros(length, dtype=np.float32)
    cursor = int(rng.uniform(*_INTRO_S) * SAMPLE_RATE)
    used, errors = [], []
    for clip in order:
        if in_time and melody is not None:
            onsets = melody.starts[melody.starts * SAMPLE_RATE >= cursor]
            if not len(onsets):
                break
            cursor, offset = int(onsets[0] * SAMPLE_RATE), float(onsets[0])
        if cursor >= length - SAMPLE_RATE // 2:
            break
        if clip.seconds * (singing.STRETCH[1] if sung else 1.0) * SAMPLE_RATE > length - cursor:
            continue  # cannot fit even before it is sung
        phrase, melody_s, error = _phrase(clip, melody, offset, singer, rng)
        if phrase.shape[0] > length - cursor or mixing.rms(phrase) < 1e-5:
            continue
        level = 10 ** (rng.uniform(-_PHRASE_LEVEL_DB, _PHRASE_LEVEL_DB) / 20) / mixing.rms(phrase)
        voice[cursor:cursor + phrase.shape[0]] = phrase * np.float32(level)
        used.append({"file": clip.recording.name, "package": clip.recording.package,
                     "licence": recordings.licence_of(clip.recording)})
        errors.append(error)
        offset = (offset + melody_s + rng.uniform(*_GAP_S)) % max(melody.seconds, 1e-3) if melody else 0.0
        pause = rng.uniform(*_BREAK[1:]) if rng.random() < _BREAK[0] else rng.uniform(*_GAP_S)
        cursor += phrase.shape[0] + int(pause * SAMPLE_RATE)
    if not used:
        raise RuntimeError(f"no phrase of {order[0].recording.group} fits in {length / SAMPLE_RATE:.0f} s")
    info["clips"] = used
    if sung:
        info["f0_error_cents"] = round(float(np.nanmedian(errors)), 2) if np.isfinite(errors).any() else None
    return voice, info


def render(speaker: list[Clip], tracks: list[Clip], lines: list[dict], rng: np.random.Generator,
           mix_seconds: tuple[float, float] = MIX_SECONDS,
           even_groups: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """Stereo float32 ``vocals`` and ``accompaniment`` of one mix of one speaker's clips over one of the soundtrack
    tracks (each soundtrack equally often with ``even_groups``), sung on one of the ``lines``, and what the manifest
    records about it."""
    length = int(rng.uniform(*mix_seconds) * SAMPLE_RATE)
    accompaniment, music = excerpt(tracks, length, rng, even_groups)
    voice, vocal_info = vocal_line(speaker, lines, length, rng)
    return _mix(speaker, voice, vocal_info, accompaniment, music, rng)


def render_over_song(speaker: list[Clip], song: Path, line: dict, rng: np.random.Generator,
                     mix_seconds: tuple[float, float] = MIX_SECONDS) -> tuple[dict[str, np.ndarray], dict]:
    """As ``render``, over an excerpt of a rendered corpus song (its drums, bass and other, in ``song``), the voice
    singing the song's own melody ``line`` in time: real vocals over a rendered band."""
    frames = sf.info(song / "drums.wav").frames
    length = min(int(rng.uniform(*mix_seconds) * SAMPLE_RATE), frames)
    # start shortly before a random sung note, so the excerpt has a melody to sing
    onset = line["notes"][int(rng.integers(len(line["notes"])))][0] - rng.uniform(*_INTRO_S)
    start = int(np.clip(onset * SAMPLE_RATE, 0, frames - length))
    accompaniment = sum(sf.read(song / f"{stem}.wav", start=start, stop=start + length, dtype="float32",
                                always_2d=True)[0].T for stem in ("drums", "bass", "other"))
    seconds = start / SAMPLE_RATE
    notes = [[a - seconds, b - seconds, p] for a, b, p in line["notes"] if a >= seconds]
    if len(notes) < 2:
        raise RuntimeError(f"no sung notes in the excerpt of {song.name} at {seconds:.0f} s")
    voice, vocal_info = vocal_line(speaker, [{**line, "notes": notes}], length, rng, in_time=True)
    music = {"package": "rendered corpus", "group": song.name, "file": str(song), "offset_s": round(seconds, 3),
             "licence": "rendered: see the corpus manifest"}
    return _mix(speaker, voice, vocal_info, _fade(accompaniment.astype(np.float32)), music, rng)


def _mix(speaker: list[Clip], voice: np.ndarray, vocal_info: dict, accompaniment: np.ndarray, music: dict,
         rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict]:
    """The vocal chain and pan on ``voice``, the drawn vocal-to-accompaniment ratio and loudness; the two stems and
    the manifest entry."""
    # a speaker group may span packages (one language's volunteers): each clip records its own package and licence
    vocal_info = {"group": speaker[0].recording.group, **vocal_info}
    position = float(rng.uniform(-0.3, 0.3))
    vocals = mixing.stem_chain(rng, "vocals")(mixing.pan(voice, position), SAMPLE_RATE, reset=True).astype(np.float32)
    var_db = float(rng.uniform(*VAR_DB))
    vocals *= np.float32(10 ** (var_db / 20) * mixing.rms(accompaniment) / max(mixing.rms(vocals), 1e-9))
    scale, _ = mixing.loudness_scale(vocals + accompaniment, rng)
    # the stems are stored as 16-bit FLAC, which clips above full scale: keep each stem below the ceiling too
    scale *= min(1.0, mixing.PEAK_CEILING / (scale * max(np.abs(vocals).max(), np.abs(accompaniment).max())))
    stems = {"vocals": vocals * np.float32(scale), "accompaniment": accompaniment * np.float32(scale)}
    info = {"duration_s": round(voice.shape[0] / SAMPLE_RATE, 3), "var_db": round(var_db, 2),
            "pan": round(position, 3),
            "mixture_rms_db": round(20 * np.log10(mixing.rms(stems["vocals"] + stems["accompaniment"])), 2),
            "vocals": vocal_info, "accompaniment": music}
    return stems, info
