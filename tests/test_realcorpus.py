"""The real-recordings corpus: decoding of every source format on real files from the Debian packages, splits by
speaker and soundtrack, exact mixtures, real speech made to sing, and the loader training code calls.

Needs the Debian packages named in docs/TRAINING.md; a test whose package is missing is skipped and says which."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemclean.spectral import SAMPLE_RATE
from stemclean.train import mixing, realcorpus, realmix, recordings, singing

# Small packages that between them give every split speakers (many languages) and a soundtrack (three packages).
TINY_PACKAGES = ["klettres-data", "ktuberling-data", "drascula-music", "singularity-music", "nexuiz-music"]


def _installed(package: str) -> bool:
    return bool(recordings.PACKAGES[package].find())


def needs(*packages: str):
    missing = [p for p in packages if not _installed(p)]
    return pytest.mark.skipif(bool(missing), reason=f"apt-get install {' '.join(missing)}")


def _first(package: str, suffix: str) -> recordings.Recording:
    return next(r for r in recordings.PACKAGES[package].find() if (r.member or r.path).endswith(suffix))


def _check_decoded(rec: recordings.Recording, rate: int, frames: int) -> np.ndarray:
    audio, got_rate = recordings.decode(rec)
    assert got_rate == rate and audio.dtype == np.float32 and audio.shape[1] == frames
    # lossy codecs may overshoot full scale a little; a wrong sample format would be far off
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.1 and mixing.rms(audio) > 1e-3
    resampled = recordings.load(rec, channels=2)
    assert resampled.shape[0] == 2 and abs(resampled.shape[1] - frames * SAMPLE_RATE / rate) <= 2
    return audio


@pytest.mark.parametrize(("package", "suffix", "field", "value"), [
    pytest.param("ktuberling-data", ".opus", "subtype", "OPUS", marks=needs("ktuberling-data")),
    pytest.param("klettres-data", ".ogg", "subtype", "VORBIS", marks=needs("klettres-data")),
    pytest.param("ktuberling-data", ".wav", "format", "WAV", marks=needs("ktuberling-data")),
])
def test_decodes_each_file_format(package, suffix, field, value):
    rec = _first(package, suffix)
    info = sf.info(rec.path)
    assert getattr(info, field) == value
    _check_decoded(rec, info.samplerate, info.frames)
    assert recordings.duration(rec) == pytest.approx(info.duration)


@needs("nexuiz-music")
def test_decodes_ogg_inside_a_pk3_archive():
    import io
    import zipfile

    members = recordings.PACKAGES["nexuiz-music"].find()
    with zipfile.ZipFile(members[0].path) as z:
        smallest = min(members, key=lambda r: z.getinfo(r.member).file_size)
        info = sf.info(io.BytesIO(z.read(smallest.member)))
    audio = _check_decoded(smallest, info.samplerate, info.frames)
    assert audio.shape[0] == info.channels
    assert recordings.duration(smallest) == pytest.approx(info.duration)


@needs("drascula")
def test_decodes_drascula_raw_8bit_speech():
    rec = _first("drascula", "1.ALS")
    size = Path(rec.path).stat().st_size
    audio = _check_decoded(rec, recordings.DRASCULA_RATE, size - 32 - 64)
    assert abs(float(audio.mean())) < 0.01  # unsigned samples centred on 128: read as signed they would not be
    _, f0 = singing.pitch_track(audio[0], recordings.DRASCULA_RATE)
    assert (f0 > 0).mean() > 0.2  # a voice, not noise: the header and tail are cut and the samples read right
    assert not any(Path(r.path).stem.startswith("S") and Path(r.path).stem[1:].isdigit()
                   for r in recordings.PACKAGES["drascula"].find())  # S<n>.ALS are sound effects


def test_splits_are_disjoint_cover_every_group_and_respect_shares():
    rng = np.random.default_rng(0)
    seconds = {f"g{i}": float(rng.uniform(10, 200)) for i in range(60)}
    split_of = realcorpus.split_groups(seconds, seed=3)
    assert split_of == realcorpus.split_groups(dict(reversed(seconds.items())), seed=3)
    assert set(split_of) == set(seconds)
    total = sum(seconds.values())
    for split, share in realcorpus.SHARES.items():
        held = sum(s for g, s in seconds.items() if split_of[g] == split)
        assert share * total * 0.75 <= held <= share * total * 1.25, split
    one_big = {"huge": 1000.0, **{f"small{i}": 10.0 for i in range(30)}}
    assert realcorpus.split_groups(one_big, seed=0)["huge"] == "train"  # too big for a held-out split's share


@needs(*TINY_PACKAGES)
def test_a_package_pinned_to_train_moves_no_other_group(tmp_path, monkeypatch):
    """A soundtrack added later joins training alone: every group already in the catalog keeps its split."""
    before = realcorpus.catalog(tmp_path / "before", seed=0, packages=TINY_PACKAGES)
    tracks = tmp_path / "soundtrack"
    tracks.mkdir()
    for i in range(3):  # a long soundtrack, which split_groups alone could have given a held-out split
        sf.write(tracks / f"{i}.wav", 0.1 * np.sin(np.arange(SAMPLE_RATE * 60) * (0.01 + i / 100)), SAMPLE_RATE)
    added = recordings.Package("new-soundtrack", recordings.MUSIC, "GPL-2+",
                               lambda: [recordings.Recording("new-soundtrack", str(p), "new-soundtrack")
                                        for p in sorted(tracks.glob("*.wav"))], split="train")
    monkeypatch.setitem(recordings.PACKAGES, added.name, added)
    after = realcorpus.catalog(tmp_path / "after", seed=0, packages=[*TINY_PACKAGES, added.name])
    assert {r["split"] for r in after if r["package"] == added.name} == {"train"}
    split_before = {(r["path"], r["member"]): r["split"] for r in before}
    assert {(r["path"], r["member"]): r["split"] for r in after if r["package"] != added.name} == split_before


def test_held_out_mixes_draw_each_soundtrack_evenly(tmp_path):
    """Val's mixes draw a short soundtrack as often as a long one (even_groups); training's draw by duration."""
    clips = []
    for group, tracks in (("long", 9), ("short", 1)):  # nine times the music in the long soundtrack
        for i in range(tracks):
            path = tmp_path / f"{group}-{i}.wav"
            sf.write(path, 0.1 * np.sin(np.arange(SAMPLE_RATE * 3) * 0.05), SAMPLE_RATE)
            clips.append(realmix.Clip(recordings.Recording("drascula-music", str(path), group), 3.0))
    for even, expected in ((False, 0.1), (True, 0.5)):
        rng = np.random.default_rng(0)
        drawn = [realmix.excerpt(clips, SAMPLE_RATE, rng, even_groups=even)[1]["group"] for _ in range(1000)]
        assert abs(drawn.count("short") / len(drawn) - expected) < 0.05


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    missing = [p for p in TINY_PACKAGES if not _installed(p)]
    if missing:
        pytest.skip(f"apt-get install {' '.join(missing)}")
    out = tmp_path_factory.mktemp("real")
    entries = realcorpus.build(out, hours=7 * 7 / 3600, packages=TINY_PACKAGES, mix_seconds=(6.0, 8.0), chorales=1)
    return out, entries


def test_mixture_is_the_exact_sum_and_the_ratio_is_as_recorded(tiny):
    out, entries = tiny
    assert {e["split"] for e in entries.values()} == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        for pair in realcorpus.load_pairs(out, split):
            vocals, rate = sf.read(pair["vocals"], dtype="float32", always_2d=True)
            accompaniment, _ = sf.read(pair["accompaniment"], dtype="float32", always_2d=True)
            assert rate == SAMPLE_RATE and vocals.shape == accompaniment.shape and vocals.shape[1] == 2
            assert np.array_equal(realcorpus.mixture(pair), vocals + accompaniment)
            assert np.array_equal(realcorpus.mixture(pair, 100, 200), (vocals + accompaniment)[100:200])
            assert np.abs(vocals + accompaniment).max() <= mixing.PEAK_CEILING + 1e-4
            ratio = 20 * np.log10(mixing.rms(vocals) / mixing.rms(accompaniment))
            assert ratio == pytest.approx(entries[pair["id"]]["var_db"], abs=0.05)
            assert realmix.VAR_DB[0] <= entries[pair["id"]]["var_db"] <= realmix.VAR_DB[1]


def test_speakers_soundtracks_and_melodies_never_cross_splits(tiny):
    out, entries = tiny
    rows = json.loads((out / "recordings.json").read_text())["recordings"]
    row_of_file = {recordings.Recording(r["package"], r["path"], r["group"], r["member"]).name: r for r in rows}
    groups: dict[str, set] = {}
    for row in rows:
        groups.setdefault(row["split"], set()).add(row["group"])
    assert not (groups["train"] & groups["test"]) and not (groups["train"] & groups["val"])
    assert not (groups["val"] & groups["test"])
    melody_split = {line["song"]: line["split"] for line in json.loads((out / "melodies.json").read_text())}
    for entry in entries.values():
        used = [clip["file"] for clip in entry["vocals"]["clips"]] + [entry["accompaniment"]["file"]]
        assert {row_of_file[f]["split"] for f in used} == {entry["split"]}
        if entry["vocals"]["mode"] == "sung":
            assert melody_split[entry["vocals"]["melody"]] == entry["split"]
        for clip in entry["vocals"]["clips"]:
            assert clip["package"] == row_of_file[clip["file"]]["package"]
            assert clip["licence"] == recordings.PACKAGES[clip["package"]].licence
        assert entry["accompaniment"]["licence"]


def test_a_second_run_skips_finished_mixes(tiny):
    out, entries = tiny
    files = sorted((out / "corpus").rglob("*.flac"))
    before = {p: p.stat().st_mtime_ns for p in files}
    realcorpus.build(out, hours=7 * 7 / 3600, packages=TINY_PACKAGES, mix_seconds=(6.0, 8.0), chorales=1)
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_voices_benchmark_measures_how_much_of_the_voice_is_kept(tiny, tmp_path):
    from benchmarks import voices

    out, entries = tiny
    real = tmp_path / "real"
    real.mkdir()
    (real / "corpus").symlink_to(out / "corpus")
    for pair in realcorpus.load_pairs(out, "val"):  # a separator that keeps half of the voice and none of the music
        folder = real / "spleeter" / "val" / pair["id"]
        folder.mkdir(parents=True)
        vocals = sf.read(pair["vocals"], dtype="float32")[0]
        sf.write(folder / "vocals.flac", 0.5 * vocals, SAMPLE_RATE)
        sf.write(folder / "accompaniment.flac", sf.read(pair["accompaniment"], dtype="float32")[0], SAMPLE_RATE)
    table = voices.run(tmp_path / "no-rendered-corpus", tmp_path, real, "val", 5.0, None)
    assert set(table) and all(kind.startswith("real, ") for kind in table)
    assert sum(row["pairs"] for row in table.values()) == len(realcorpus.load_pairs(out, "val"))
    for row in table.values():
        assert row["kept"] == pytest.approx(0.5, abs=0.01) and row["si_sdr"] > 60  # a scaled copy is exact


def test_every_mix_gets_its_separator_pair_read_from_the_summed_stems(tiny, tmp_path, monkeypatch):
    import shutil
    import sys

    from stemclean.train import separators

    out, entries = tiny
    shutil.copytree(out / "corpus", tmp_path / "corpus")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    worker = tmp_path / "halves.py"  # a stand-in separator: half of the mixture into each stem
    worker.write_text("import sys, numpy as np\nm = np.load(sys.argv[1])\n"
                      "[np.save(f'{sys.argv[2]}/{n}.npy', 0.5 * m) for n in ('vocals', 'accompaniment')]\n")
    monkeypatch.setattr(separators, "WORKER", worker)
    assert realcorpus.separate(tmp_path, venv) == len(entries)
    assert realcorpus.separate(tmp_path, venv) == 0
    for split in ("train", "val", "test"):
        for pair in realcorpus.load_pairs(tmp_path, split):
            estimate = sf.read(pair["spleeter_vocals"], dtype="float32")[0]
            assert np.abs(estimate - 0.5 * realcorpus.mixture(pair)).max() <= 1.0 / 32768


def test_realism_ratio_is_only_given_where_the_rendered_gain_is_positive():
    from benchmarks import voices

    assert voices.realism_ratio(1.5, 2.0) == pytest.approx(0.75)
    assert voices.realism_ratio(-0.2, -0.1) is None and voices.realism_ratio(0.5, 0.0) is None


def test_load_pairs_lists_spleeter_estimates_once_both_exist(tiny, tmp_path):
    out, entries = tiny
    pair = realcorpus.load_pairs(out, "test")[0]
    assert pair["spleeter_vocals"] is None and pair["speaker"] and pair["soundtrack"]
    assert pair["accompaniment_kind"] == "soundtrack" and pair["mode"] in ("sung", "spoken")
    folder = out / "spleeter" / "test" / pair["id"]
    folder.mkdir(parents=True, exist_ok=True)
    silence = np.zeros((10, 2), dtype=np.float32)
    sf.write(folder / "vocals.flac", silence, SAMPLE_RATE)
    assert realcorpus.load_pairs(out, "test")[0]["spleeter_vocals"] is None
    sf.write(folder / "accompaniment.flac", silence, SAMPLE_RATE)
    again = next(p for p in realcorpus.load_pairs(out, "test") if p["id"] == pair["id"])
    assert again["spleeter_vocals"] == folder / "vocals.flac"
    assert realcorpus.load_pairs(out, "nosuchsplit") == []


@needs("fillets-ng-data-nl")
def test_real_speech_sings_the_melody_in_a_singers_range():
    rec = _first("fillets-ng-data-nl", "let-v-oko.ogg")  # the big fish, 9 s of acted Dutch
    audio, rate = recordings.decode(rec)
    speech = audio.mean(axis=0)
    _, spoken = singing.pitch_track(speech, rate)
    singer = singing.draw_singer(np.random.default_rng(0), float(np.median(spoken[spoken > 0])))
    assert singer.range == "male"  # he speaks around 150 Hz
    notes = [(0.5 * i, 0.5 * i + 0.45, p) for i, p in enumerate([50, 53, 57, 55, 52, 48, 50, 60] * 4)]
    melody = singing.melody_for(notes, singer)
    assert melody.pitches.min() >= singing.RANGES["male"][0] and melody.pitches.max() <= singing.RANGES["male"][1]
    sung, times, target_hz = singing.sing(speech, rate, melody, 0.0, singer, np.random.default_rng(1))
    assert len(sung) / len(speech) == pytest.approx(singer.stretch, rel=0.1)
    assert singing.f0_error_cents(sung, rate, times, target_hz) < 20
    # against the written notes (no vibrato or glide), the error stays within a singer's expression
    frame_times, f0 = singing.pitch_track(sung, rate)
    index = np.clip(np.searchsorted(melody.starts, frame_times, side="right") - 1, 0, len(notes) - 1)
    written = 440.0 * 2 ** ((melody.pitches[index] - 69) / 12)
    voiced = f0 > 0
    assert voiced.mean() > 0.3
    assert np.median(np.abs(1200 * np.log2(f0[voiced] / written[voiced]))) < singer.vibrato_cents + 30
    # unvoiced sounds (consonants, breath) keep their length: the stretch went into the voiced parts
    assert (f0 == 0).sum() == pytest.approx((spoken == 0).sum(), rel=0.35)


@needs("fillets-ng-data-nl")
def test_a_real_voice_sings_a_rendered_songs_melody_in_time(tmp_path):
    rng = np.random.default_rng(0)
    song = tmp_path / "song"
    song.mkdir()
    for stem in ("drums", "bass", "other"):  # a stand-in band: quiet noise
        sf.write(song / f"{stem}.wav", 0.01 * rng.standard_normal((12 * SAMPLE_RATE, 2)), SAMPLE_RATE,
                 subtype="FLOAT")
    pitches = [57, 60, 64, 62, 59, 55]
    line = {"song": "song", "split": "test", "sung": True,
            "notes": [[0.5 + 0.8 * i, 1.25 + 0.8 * i, pitches[i % 6]] for i in range(14)]}
    speaker = [realmix.Clip(r, recordings.duration(r)) for r in recordings.PACKAGES["fillets-ng-data-nl"].find()
               if r.group == "fillets-nl:v"][:20]
    errors = []
    for seed in range(6):
        stems, info = realmix.render_over_song(speaker, song, line, np.random.default_rng(seed), (10.0, 10.0))
        assert stems["vocals"].shape == stems["accompaniment"].shape == (2, 10 * SAMPLE_RATE)
        if info["vocals"]["mode"] != "sung":
            continue
        times, f0 = singing.pitch_track(stems["vocals"].mean(axis=0), SAMPLE_RATE)
        starts = np.array([n[0] for n in line["notes"]]) - info["accompaniment"]["offset_s"]
        index = np.searchsorted(starts, times, side="right") - 1
        heard = (f0 > 0) & (index >= 0)
        written = np.array([n[2] for n in line["notes"]])[index[heard]]
        off = 1200 * np.log2(f0[heard] / (440 * 2 ** ((written - 69) / 12)))
        errors.append(float(np.median(np.abs((off + 600) % 1200 - 600))))
    # the song's notes at the song's times, moved only by whole octaves into the singer's range (out of time, most
    # of these draws land hundreds of cents off)
    assert len(errors) >= 2 and max(errors) < 50, errors


def test_mixes_over_rendered_songs_wait_for_the_whole_rendered_corpus(tmp_path):
    from stemclean.train import corpus

    lines = [{"song": "a", "split": "train", "sung": True, "notes": []},
             {"song": "b", "split": "test", "sung": True, "notes": []}]
    entries = []
    for song in ("a", "b"):
        entries.append({"id": song, "split": "train" if song == "a" else "test", "seconds_limit": None})
        for path in corpus.song_files(tmp_path, entries[-1]["split"], song):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    (tmp_path / corpus.MANIFEST).write_text(json.dumps({"songs": entries[:1]}))
    assert realcorpus.rendered_songs(tmp_path, lines) == {}  # b has no manifest entry yet
    (tmp_path / corpus.MANIFEST).write_text(json.dumps({"songs": entries}))
    assert set(realcorpus.rendered_songs(tmp_path, lines)) == {"a", "b"}
    corpus.song_files(tmp_path, "test", "b")[0].unlink()
    assert realcorpus.rendered_songs(tmp_path, lines) == {}


def test_contour_glides_between_notes_and_swings_with_vibrato():
    singer = singing.Singer("female", 1.5, 0.1, 5.5, 50.0, 0.2)
    melody = singing.Melody(np.array([0.0, 1.0]), np.array([1.0, 2.0]), np.array([60.0, 64.0]))
    times = np.arange(0, 2, singing.FRAME_S)
    pitch = singing.contour(melody, singer, times)
    straight = times < 0.2
    assert np.allclose(pitch[straight & (times < 0.9)], 60.0)  # no vibrato before the delay
    held = (times > 0.45) & (times < 0.9)
    assert pitch[held].max() == pytest.approx(60.5, abs=0.05) and pitch[held].min() == pytest.approx(59.5, abs=0.05)
    at_change = pitch[(times > 0.97) & (times < 1.03)]
    assert 60.3 < at_change.mean() < 63.7  # a glide, not a jump


def test_a_per_file_licence_comes_from_its_files_paragraph(tmp_path, monkeypatch):
    """ufoai-music and gcin-voice license their files differently; the manifest must name each file's licence."""
    (tmp_path / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2010 Someone\nLicense: GPL-2+\n\n"
        "Files: base/music/theme.ogg\n base/music/battle.ogg\nCopyright: 2011 A Composer\nLicense: CC-BY-SA-3.0\n")
    monkeypatch.setattr(recordings.Package, "copyright", property(lambda self: str(tmp_path / "copyright")))
    per_track = recordings.Package("soundtrack", recordings.MUSIC, "GPL-2+ or CC-BY-SA-3.0 (per track)", list,
                                   source_path=lambda r: f"base/{r.member}")
    archive = "/usr/share/games/soundtrack/music.pk3"

    def licence(member: str, package: recordings.Package = per_track) -> str:
        return recordings.licence_of(recordings.Recording("soundtrack", archive, "soundtrack", member), package)

    assert licence("music/battle.ogg") == "CC-BY-SA-3.0"
    assert licence("music/credits.ogg") == "GPL-2+"
    whole = recordings.Package("soundtrack", recordings.MUSIC, "GPL-2+", list)  # one licence: the file is not read
    assert licence("music/battle.ogg", whole) == "GPL-2+"


def test_the_soundtrack_screen_scores_each_track_by_its_own_excerpts(tmp_path, monkeypatch):
    """Excerpts of many tracks share Spleeter calls; each track must read its own excerpts' share, not a neighbour's."""
    from stemclean.train import screen

    tracks = tmp_path / "soundtrack"
    tracks.mkdir()
    # a quiet short track right after a loud one: reading a neighbour's samples would move its share by decibels
    amplitudes = {"long.wav": (40.0, 0.2), "short.wav": (5.0, 0.05), "middle.wav": (35.0, 0.1), "tail.wav": (40.0, 0.2)}
    for name, (seconds, amplitude) in amplitudes.items():
        t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
        sf.write(tracks / name, amplitude * np.sin(2 * np.pi * 220 * t), SAMPLE_RATE, subtype="FLOAT")
    package = recordings.Package("fake-soundtrack", recordings.MUSIC, "GPL-2+",
                                 lambda: [recordings.Recording("fake-soundtrack", str(tracks / n), "fake")
                                          for n in amplitudes], split="train")
    monkeypatch.setitem(recordings.PACKAGES, package.name, package)
    monkeypatch.setattr(screen, "CALL_S", 40.0)  # two calls, the first holding excerpts of three tracks
    calls = []

    def cubing_separator(mixture, venv):
        """'Vocals' x**3 / 0.04: a sine of amplitude A reads (5/8) A**4 / 0.04**2 of its energy as vocals."""
        calls.append(mixture.shape[1])
        return {"vocals": mixture ** 3 / np.float32(0.04), "accompaniment": mixture}

    monkeypatch.setattr(screen.separators, "spleeter", cubing_separator)
    shares = screen.vocal_share_db(package.name)
    assert len(calls) == 2
    expected = {str(tracks / n): 10 * np.log10(5 / 8 * a**4 / 0.04**2) for n, (_, a) in amplitudes.items()}
    assert shares == pytest.approx(expected, abs=0.05)
    assert [e.shape[1] for e in screen.excerpts(package.find()[0], 40.0)] == [int(screen.EXCERPT_S * SAMPLE_RATE)] * 2
