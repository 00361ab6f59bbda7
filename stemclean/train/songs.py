"""The songs the corpus is rendered from, and their deterministic train/val/test split.

Two sources, both offline: the MIDI songs of Debian's ``openttd-openmsx``, and four-part Bach chorales from the
``music21`` corpus, turned into General MIDI with instruments and a drum groove chosen per song from its seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from stemclean.train.midi import DRUM_CHANNEL, GM_BASS_PROGRAMS

OPENMSX_DIR = Path("/usr/share/games/openttd/baseset/openmsx")
SPLITS = ("train", "val", "test")
_VAL_FRACTION = 0.1
_TEST_FRACTION = 0.1

# GM programs (0-based) for the chorale's alto and tenor: pianos, organs, guitars, strings, brass, reeds, pipes, pads.
_INNER_PROGRAMS = (0, 1, 4, 16, 19, 24, 25, 40, 42, 48, 49, 56, 60, 61, 65, 68, 71, 73, 80, 88, 89)
# Program for the sung soprano's channel; its notes are removed from the instruments and sung instead.
_LEAD_PROGRAM = 73
_CHORALE_PARTS = ("Soprano", "Alto", "Tenor", "Bass")
_TICKS_PER_BEAT = 480


@dataclass(frozen=True)
class Song:
    """One corpus song: ``id`` names its folder; ``source`` is 'openmsx' or 'music21'; ``ref`` a path or corpus name."""

    id: str
    source: str
    ref: str


def song_seed(seed: int, song_id: str) -> int:
    """A per-song seed that depends only on the corpus seed and the song id (not on rendering order)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{song_id}".encode()).digest()[:8], "little")


def openmsx_songs() -> list[Song]:
    """The openttd-openmsx MIDI songs, sorted by file name."""
    if not OPENMSX_DIR.is_dir():
        raise FileNotFoundError(f"{OPENMSX_DIR} not found: install the Debian package openttd-openmsx")
    return [Song(f"openmsx-{p.stem}", "openmsx", str(p)) for p in sorted(OPENMSX_DIR.glob("*.mid"))]


def chorale_songs(count: int) -> list[Song]:
    """The first ``count`` Bach chorales (by corpus file name) that have exactly Soprano, Alto, Tenor and Bass parts."""
    from music21 import corpus

    songs = []
    for path in sorted(corpus.getComposer("bach"), key=lambda p: p.name):
        if len(songs) >= count:
            break
        score = corpus.parse(path)
        if tuple(p.partName for p in score.parts) == _CHORALE_PARTS:
            name = path.name.rsplit(".", 1)[0]
            songs.append(Song(f"bach-{name.replace('.', '_')}", "music21", f"bach/{path.name}"))
    return songs


def assign_splits(songs: list[Song], seed: int) -> dict[str, str]:
    """Song id -> split. Each source is shuffled with the seed and cut 80/10/10, so every split has both sources."""
    split_of = {}
    for source in sorted({s.source for s in songs}):
        ids = sorted(s.id for s in songs if s.source == source)
        order = np.random.default_rng(song_seed(seed, source)).permutation(len(ids))
        n_test = max(1, round(len(ids) * _TEST_FRACTION))
        n_val = max(1, round(len(ids) * _VAL_FRACTION))
        for rank, index in enumerate(order):
            split_of[ids[index]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return split_of


def _drum_groove(rng: np.random.Generator, beats: float, beats_per_bar: int) -> list[tuple[float, int, int]]:
    """(beat, GM drum note, velocity) for a seeded groove: kick, backbeat snare, eighth or quarter hats, bar crashes."""
    hat = int(rng.choice([42, 42, 51]))
    hat_step = float(rng.choice([0.5, 1.0]))
    hits = []
    for bar_start in np.arange(0.0, beats, beats_per_bar):
        hits.append((bar_start, 49 if rng.random() < 0.15 else 36, 100))
        for beat in range(beats_per_bar):
            at = bar_start + beat
            if beat % 2 == 1:
                hits.append((at, 38, int(rng.integers(80, 115))))
            elif beat > 0:
                hits.append((at, 36, int(rng.integers(80, 110))))
        for step in np.arange(0.0, beats_per_bar, hat_step):
            hits.append((bar_start + step, hat, int(rng.integers(55, 90))))
    return [h for h in hits if h[0] < beats]


def chorale_midi(song: Song, rng: np.random.Generator, repeats: int = 2) -> mido.MidiFile:
    """A General MIDI rendition of a chorale: sung soprano line, instrumental alto/tenor, GM bass, and drums.

    The chorale is played ``repeats`` times (as verses) at a seeded tempo.
    """
    from music21 import corpus

    score = corpus.parse(song.ref)
    tempo_bpm = float(rng.uniform(66, 100))
    programs = [_LEAD_PROGRAM, *rng.choice(_INNER_PROGRAMS, size=2), int(rng.choice(list(GM_BASS_PROGRAMS)))]
    length_beats = float(score.highestTime)
    time_signature = score.recurse().getElementsByClass("TimeSignature").first()
    beats_per_bar = int(time_signature.numerator) if time_signature is not None else 4
    events: list[tuple[int, int, mido.Message]] = []  # (tick, order, message): offs sort before ons at equal ticks
    for channel, (part, program) in enumerate(zip(score.parts, programs)):
        events.append((0, 0, mido.Message("program_change", channel=channel, program=int(program))))
        for verse in range(repeats):
            for element in part.flatten().notes:
                for pitch in element.pitches:
                    start = (verse * length_beats + float(element.offset)) * _TICKS_PER_BEAT
                    end = start + float(element.quarterLength) * _TICKS_PER_BEAT
                    velocity = int(rng.integers(70, 100))
                    events.append((int(start), 2, mido.Message("note_on", channel=channel, note=pitch.midi,
                                                               velocity=velocity)))
                    events.append((int(end) - 1, 1, mido.Message("note_off", channel=channel, note=pitch.midi)))
    for beat, note, velocity in _drum_groove(rng, length_beats * repeats, beats_per_bar):
        tick = int(beat * _TICKS_PER_BEAT)
        events.append((tick, 2, mido.Message("note_on", channel=DRUM_CHANNEL, note=note, velocity=velocity)))
        events.append((tick + _TICKS_PER_BEAT // 4, 1, mido.Message("note_off", channel=DRUM_CHANNEL, note=note)))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0)])
    clock = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=tick - clock))
        clock = tick
    midi = mido.MidiFile(type=1, ticks_per_beat=_TICKS_PER_BEAT)
    midi.tracks.append(track)
    return midi


def load_midi(song: Song, rng: np.random.Generator) -> mido.MidiFile:
    """The song as a MIDI file object."""
    if song.source == "openmsx":
        return mido.MidiFile(song.ref)
    return chorale_midi(song, rng)
