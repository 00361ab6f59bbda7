"""Read a MIDI song into timed notes, decide which stem each note belongs to, and write one MIDI file per stem.

A stem's MIDI file is the whole song with only the other stems' note messages removed: program changes, controllers,
pitch bend and tempo stay in every file, so the synthesizer's state in each stem render matches the full song.
"""

from __future__ import annotations

from dataclasses import dataclass

import mido
import numpy as np

DRUM_CHANNEL = 9  # General MIDI channel 10
GM_BASS_PROGRAMS = range(32, 40)  # GM programs 33-40 (acoustic bass .. synth bass 2), 0-based
CORPUS_STEMS = ("vocals", "drums", "bass", "other")

# A channel whose notes sit this low on average becomes the bass when no channel uses a GM bass program.
_LOW_REGISTER_PITCH = 52
# Notes shorter than this are dropped from the sung line: a voice cannot articulate a syllable in less.
_MIN_SUNG_SECONDS = 0.07


@dataclass(frozen=True)
class Note:
    """One note: where its on/off messages are (track, index) and when it sounds (seconds, tempo map applied)."""

    on: tuple[int, int]
    off: tuple[int, int]
    channel: int
    pitch: int
    velocity: int
    start: float
    end: float


def _tick_to_seconds(mid: mido.MidiFile):
    """A function mapping absolute ticks to seconds through the song's tempo changes (from every track)."""
    changes = sorted(
        (tick, msg.tempo)
        for track in mid.tracks
        for tick, msg in zip(np.cumsum([m.time for m in track]), track)
        if msg.type == "set_tempo"
    )
    ticks, seconds, tempo, last_tick, last_sec = [0], [0.0], 500000, 0, 0.0
    for tick, new_tempo in changes:
        last_sec += (tick - last_tick) * tempo / (1e6 * mid.ticks_per_beat)
        last_tick, tempo = tick, new_tempo
        ticks.append(tick)
        seconds.append(last_sec)
    tempos = [500000] + [t for _, t in changes]

    def convert(tick: int) -> float:
        i = int(np.searchsorted(ticks, tick, side="right")) - 1
        return seconds[i] + (tick - ticks[i]) * tempos[i] / (1e6 * mid.ticks_per_beat)

    return convert


def read_notes(mid: mido.MidiFile) -> list[Note]:
    """All notes of the song, paired on/off, sorted by start time."""
    to_seconds = _tick_to_seconds(mid)
    notes = []
    for t_index, track in enumerate(mid.tracks):
        tick, open_notes = 0, {}
        for m_index, msg in enumerate(track):
            tick += msg.time
            if msg.type not in ("note_on", "note_off"):
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                open_notes.setdefault(key, []).append((m_index, tick, msg.velocity))
            elif open_notes.get(key):
                on_index, on_tick, velocity = open_notes[key].pop(0)
                notes.append(
                    Note((t_index, on_index), (t_index, m_index), msg.channel, msg.note, velocity,
                         to_seconds(on_tick), to_seconds(tick))
                )
    return sorted(notes, key=lambda n: (n.start, -n.pitch))


def skyline(notes: list[Note]) -> list[Note]:
    """The monophonic top line of ``notes``: at each onset the highest note, cut where the next sung note starts."""
    line: list[Note] = []
    for note in sorted(notes, key=lambda n: (n.start, -n.pitch)):
        if line and note.start - line[-1].start < 0.03:
            continue  # a lower note of the same chord
        if line and line[-1].end > note.start:
            prev = line[-1]
            line[-1] = Note(prev.on, prev.off, prev.channel, prev.pitch, prev.velocity, prev.start, note.start)
        line.append(note)
    return [n for n in line if n.end - n.start >= _MIN_SUNG_SECONDS]


def _melodiousness(notes: list[Note], song_seconds: float) -> float:
    """How much a channel sounds like a lead line: monophonic, often playing, in a high register."""
    line = skyline(notes)
    if not line or song_seconds <= 0:
        return 0.0
    coverage = sum(n.end - n.start for n in line) / song_seconds
    monophony = len(line) / len(notes)
    register = np.clip((np.mean([n.pitch for n in line]) - 48) / 24, 0.2, 1.5)
    return float(min(coverage, 1.0) * monophony * register)


@dataclass(frozen=True)
class StemPlan:
    """Which stem every note goes to; ``sung`` is the monophonic line the voice sings instead of its instrument."""

    stem_of: dict[tuple[int, int], str]  # note-on position -> stem
    sung: list[Note]
    melody_channel: int | None
    bass_channels: tuple[int, ...]


def _channel_programs(mid: mido.MidiFile) -> dict[int, int]:
    """First program change per channel (0 when a channel never changes program)."""
    programs: dict[int, int] = {}
    for track in mid.tracks:
        for msg in track:
            if msg.type == "program_change":
                programs.setdefault(msg.channel, msg.program)
    return programs


def plan_stems(mid: mido.MidiFile, notes: list[Note]) -> StemPlan:
    """Assign notes to vocals/drums/bass/other: drums by channel 10, bass by GM program, vocals = the most melodic line."""
    programs = _channel_programs(mid)
    by_channel: dict[int, list[Note]] = {}
    for note in notes:
        by_channel.setdefault(note.channel, []).append(note)
    pitched = {c: ns for c, ns in by_channel.items() if c != DRUM_CHANNEL}
    bass = tuple(c for c in pitched if programs.get(c, 0) in GM_BASS_PROGRAMS)
    if not bass and len(pitched) > 1:
        lowest = min(pitched, key=lambda c: np.mean([n.pitch for n in pitched[c]]))
        if np.mean([n.pitch for n in pitched[lowest]]) < _LOW_REGISTER_PITCH:
            bass = (lowest,)
    song_seconds = max((n.end for n in notes), default=0.0)
    candidates = {c: _melodiousness(ns, song_seconds) for c, ns in pitched.items() if c not in bass}
    melody = max(candidates, key=candidates.get) if candidates and max(candidates.values()) > 0 else None
    sung = skyline(pitched[melody]) if melody is not None else []
    sung_on = {n.on for n in sung}
    stem_of = {}
    for note in notes:
        if note.channel == DRUM_CHANNEL:
            stem_of[note.on] = "drums"
        elif note.channel in bass:
            stem_of[note.on] = "bass"
        elif note.on in sung_on:
            stem_of[note.on] = "vocals"
        else:
            stem_of[note.on] = "other"
    return StemPlan(stem_of, sung, melody, bass)


def silence_notes(mid: mido.MidiFile, notes: list[Note]) -> mido.MidiFile:
    """A copy of ``mid`` in which ``notes`` do not sound: their note-ons get velocity 0 (a note-off in MIDI).

    Every message and delta time stays in place. Deleting the messages instead made fluidsynth 2.3.1's file renderer
    run forever on some songs (openmsx chuggachugga), writing an ever-growing WAV.
    """
    mute = {n.on for n in notes}
    out = mido.MidiFile(type=mid.type, ticks_per_beat=mid.ticks_per_beat)
    for t_index, track in enumerate(mid.tracks):
        out.tracks.append(mido.MidiTrack(
            msg.copy(velocity=0) if (t_index, m_index) in mute else msg for m_index, msg in enumerate(track)
        ))
    return out
