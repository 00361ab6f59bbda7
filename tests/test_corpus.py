"""The corpus renderer on tiny renders: exact mixtures, audible stems, clean splits, a consistent manifest, resuming,
and the parts it is made of (MIDI stem split, sung vocals, Hydrogen drums, mixing) measured on real output."""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest
import soundfile as sf

from stemclean.spectral import SAMPLE_RATE
from stemclean.train import corpus, drums, midi, mixing, songs, voices

FIRST_OPENMSX = "openmsx-5432gone_redfarn"  # first song of the catalog; all four stems play within its first second
SECONDS = 4.0


def _rms_db(audio: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-20))


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """Two 4 s renders, one openmsx song and one chorale, built through the public entry point."""
    out = tmp_path_factory.mktemp("corpus")
    chorale = songs.chorale_songs(1)[0].id
    entries = corpus.build(out, seed=0, chorales=1, seconds=SECONDS, only=[FIRST_OPENMSX, chorale])
    return out, entries


def _stems(out, entry):
    folder = out / entry["split"] / entry["id"]
    return {name: sf.read(folder / f"{name}.wav", dtype="float32", always_2d=True) for name in
            (*corpus.MIX_ORDER, "mixture")}


def test_mixture_is_the_exact_sum_of_the_stems(tiny_corpus):
    out, entries = tiny_corpus
    assert len(entries) == 2
    for entry in entries.values():
        loaded = _stems(out, entry)
        total = np.zeros_like(loaded["mixture"][0])
        for stem in corpus.MIX_ORDER:
            audio, rate = loaded[stem]
            assert rate == SAMPLE_RATE and audio.shape == (int(entry["duration_s"] * SAMPLE_RATE + 0.5), 2)
            total = total + audio
        assert np.array_equal(total, loaded["mixture"][0])
        assert sf.info(out / entry["split"] / entry["id"] / "mixture.wav").subtype == "FLOAT"


def test_every_stem_is_audible_and_the_mix_is_leveled(tiny_corpus):
    out, entries = tiny_corpus
    for entry in entries.values():
        loaded = _stems(out, entry)
        for stem in corpus.MIX_ORDER:
            assert _rms_db(loaded[stem][0]) > -50, (entry["id"], stem)
        assert np.max(np.abs(loaded["mixture"][0])) <= 0.98 + 1e-6
        assert mixing.SONG_RMS_DB[0] - 0.5 <= _rms_db(loaded["mixture"][0]) <= mixing.SONG_RMS_DB[1] + 0.5


def test_manifest_matches_the_files(tiny_corpus):
    out, entries = tiny_corpus
    manifest = json.loads((out / corpus.MANIFEST).read_text())
    assert {e["id"] for e in manifest["songs"]} == set(entries)
    folders = {p.name: p.parent.name for p in out.glob("*/*") if p.is_dir()}
    assert folders == {e["id"]: e["split"] for e in manifest["songs"]}
    for entry in manifest["songs"]:
        assert sf.info(out / entry["split"] / entry["id"] / "vocals.wav").duration == pytest.approx(entry["duration_s"],
                                                                                                     abs=1e-3)
    assert manifest["minutes"] == corpus.minutes_per_split(entries)
    assert sum(manifest["minutes"].values()) == pytest.approx(2 * (SECONDS + 2.0) / 60, abs=0.01)


def test_a_second_run_skips_finished_songs(tiny_corpus):
    out, entries = tiny_corpus
    files = [p for e in entries.values() for p in corpus.song_files(out, e["split"], e["id"])]
    before = {p: p.stat().st_mtime_ns for p in files}
    corpus.build(out, seed=0, chorales=1, seconds=SECONDS, only=list(entries))
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_rendering_is_deterministic(tiny_corpus, tmp_path):
    out, entries = tiny_corpus
    again = corpus.build(tmp_path, seed=0, chorales=0, seconds=SECONDS, only=[FIRST_OPENMSX])
    first = entries[FIRST_OPENMSX]
    assert again[FIRST_OPENMSX]["mix"] == first["mix"]
    repeat = sf.read(tmp_path / first["split"] / FIRST_OPENMSX / "mixture.wav", dtype="float32")[0]
    assert np.array_equal(repeat, _stems(out, first)["mixture"][0])


def _fake_catalog() -> list[songs.Song]:
    return [songs.Song(f"a-{i}", "a", "") for i in range(31)] + [songs.Song(f"b-{i}", "b", "") for i in range(40)]


def test_splits_are_disjoint_deterministic_and_cover_every_source():
    catalog = _fake_catalog()
    split_of = songs.assign_splits(catalog, seed=0)
    assert split_of == songs.assign_splits(list(reversed(catalog)), seed=0)
    assert split_of != songs.assign_splits(catalog, seed=1)
    assert set(split_of) == {s.id for s in catalog}  # each song in exactly one split
    for source, size in (("a", 31), ("b", 40)):
        counts = {split: sum(1 for s in catalog if s.source == source and split_of[s.id] == split)
                  for split in songs.SPLITS}
        assert counts["test"] == counts["val"] == round(size * 0.1)
        assert counts["train"] == size - 2 * round(size * 0.1)


def test_real_catalog_split_holds_out_openmsx_songs():
    catalog = songs.openmsx_songs()
    assert len(catalog) == 31
    split_of = songs.assign_splits(catalog, seed=0)
    assert sorted(split_of.values()).count("test") == 3
    assert split_of == songs.assign_splits(songs.openmsx_songs(), seed=0)


def test_stem_midi_keeps_every_non_note_event():
    mid = mido.MidiFile(songs.OPENMSX_DIR / "keep_on_rolling.mid")
    notes = midi.read_notes(mid)
    plan = midi.plan_stems(mid, notes)
    bass_only = midi.silence_notes(mid, [n for n in notes if plan.stem_of[n.on] != "bass"])

    def non_note(m):
        return [msg for track in m.tracks for msg in track if msg.type not in ("note_on", "note_off")]

    assert non_note(bass_only) == non_note(mid)
    kept = midi.read_notes(bass_only)
    assert kept and all(n.channel in plan.bass_channels for n in kept)
    assert len(kept) == sum(1 for n in notes if plan.stem_of[n.on] == "bass")
    assert abs(bass_only.length - mid.length) < 0.01  # tempo map and end of track untouched
    assert kept[0].start == pytest.approx(min(n.start for n in notes if plan.stem_of[n.on] == "bass"), abs=1e-6)


def test_stem_plan_uses_gm_rules_and_sings_a_monophonic_line():
    mid = mido.MidiFile(songs.OPENMSX_DIR / "keep_on_rolling.mid")
    notes = midi.read_notes(mid)
    plan = midi.plan_stems(mid, notes)
    assert plan.bass_channels == (8,)  # the only channel with a GM bass program (34)
    for note in notes:
        if note.channel == midi.DRUM_CHANNEL:
            assert plan.stem_of[note.on] == "drums"
    assert plan.melody_channel not in (midi.DRUM_CHANNEL, *plan.bass_channels)
    starts = np.array([n.start for n in plan.sung])
    ends = np.array([n.end for n in plan.sung])
    assert len(plan.sung) > 100 and np.all(ends[:-1] <= starts[1:] + 1e-9)


def _line(pitches, step=0.5, length=0.3, first=0.5):
    return [midi.Note((0, i), (0, i), 0, p, 90, first + i * step, first + i * step + length) for i, p in enumerate(pitches)]


def test_sung_notes_land_on_time_and_in_tune():
    line = _line([57, 60, 64, 55, 62, 59] * 3, step=0.6, length=0.35)
    voice = voices.sing(line, np.random.default_rng(0), int(12 * SAMPLE_RATE))
    frame = SAMPLE_RATE // 100
    rms = np.sqrt(np.mean(voice[: len(voice) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    offsets_ms = []
    for note in line:
        onset = int(note.start * 100)
        rise = onset - 15 + int(np.argmax(rms[onset - 15 : onset + 15] > 0.08 * rms.max()))
        offsets_ms.append(10 * (rise - onset))
    # consonant clusters ("sky") put the loud vowel later; the line itself must neither lag nor drift
    assert np.median(np.abs(offsets_ms)) <= 30 and np.max(np.abs(offsets_ms)) <= 80, offsets_ms
    long_note = voices.sing(_line([57], length=1.5), np.random.default_rng(1), 3 * SAMPLE_RATE)
    segment = long_note[int(1.0 * SAMPLE_RATE) : int(1.8 * SAMPLE_RATE)]
    lags = np.arange(SAMPLE_RATE // 400, SAMPLE_RATE // 150)  # 150-400 Hz
    corr = [np.dot(segment[:-lag], segment[lag:]) for lag in lags]
    f0 = SAMPLE_RATE / lags[int(np.argmax(corr))]
    assert abs(1200 * np.log2(f0 / 220.0)) < 25


def test_vibrato_swings_the_pitch_within_a_singers_range():
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    bent = voices.vibrato(np.sin(2 * np.pi * 220.0 * t).astype(np.float32), np.random.default_rng(4))
    rising = np.flatnonzero((bent[:-1] < 0) & (bent[1:] >= 0))[5:-5]  # skip the edges, where the delay clamps
    cents = 1200 * np.log2(SAMPLE_RATE / np.diff(rising) / 220.0)  # the pitch of each cycle
    low, high = voices.VIBRATO_CENTS
    assert low * 0.8 < cents.max() < high * 1.2 and -high * 1.2 < cents.min() < -low * 0.8
    assert abs(np.mean(cents)) < 5  # it swings around the written note, not off it
    swings = np.sum(np.diff(np.sign(cents - np.mean(cents))) > 0) / 2.0  # upward crossings per second
    assert voices.VIBRATO_RATE_HZ[0] * 0.8 < swings < voices.VIBRATO_RATE_HZ[1] * 1.2


def test_voice_range_is_safe_for_festival():
    moved = voices.fit_to_voice(np.array([72, 79, 84, 91, 60]))
    assert moved.max() <= 67 and moved.min() >= 45
    assert np.all((moved - np.array([72, 79, 84, 91, 60])) % 12 == 0)


def test_hydrogen_kit_triggers_real_samples_on_time():
    names = drums.usable_kits()
    assert len(names) >= 5
    kit = drums.load_kit(drums.HYDROGEN_KITS / names[0])
    hits = [midi.Note((0, 0), (0, 1), 9, 36, 110, 0.5, 0.6), midi.Note((0, 2), (0, 3), 9, 38, 100, 1.0, 1.1)]
    audio = drums.play(kit, hits, 2 * SAMPLE_RATE)
    energy = np.abs(audio).sum(axis=0)
    first = int(np.argmax(energy > 0.01 * energy.max()))
    assert first == pytest.approx(0.5 * SAMPLE_RATE, abs=64)
    assert np.abs(audio[:, : int(0.49 * SAMPLE_RATE)]).max() == 0
    assert kit.kind_for(36) == "kick" and kit.kind_for(127) is None


def test_pan_is_constant_power():
    tone = np.sin(np.linspace(0, 200, 10000)).astype(np.float32)
    for position in (-1.0, -0.3, 0.0, 0.5, 1.0):
        stereo = mixing.pan(tone, position)
        assert np.sum(stereo**2) == pytest.approx(2 * np.sum(tone**2), rel=1e-4)
    left = mixing.pan(tone, -1.0)
    assert np.abs(left[1]).max() < 1e-6


def test_render_degrade_benchmark_smoke_path(tiny_corpus, tmp_path):
    """CI's smoke path on real renders: rendered songs -> ladder damage -> the quality benchmark's metrics."""
    from benchmarks import quality

    out, entries = tiny_corpus
    entry = next(iter(entries.values())) if isinstance(entries, dict) else entries[0]
    results = quality.run(out, tmp_path / "no-spleeter", entry["split"], 3.0, (0.5,), 0, None, None, [], tmp_path / "img")
    by_key = {(s["source"], s["stem"], s["method"]): s for s in results["summary"]}
    ladder_in = by_key[("ladder t=0.5", "all", "identity")]["si_sdr"]
    assert abs(ladder_in - 20.0) < 1.0, "the ladder at t=0.5 must give the calibrated 20 dB SI-SDR"
    assert by_key[("clean", "all", "identity")]["si_sdr"] >= 99.0
    assert by_key[("ladder t=0.5", "all", "identity")]["mrstft"] > by_key[("clean", "all", "identity")]["mrstft"]
