"""``stemclean batch`` on demucs and audio-separator layouts, through the real CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import demucs_tree, run_cli, run_readme_line, tone_mix
from typer.testing import CliRunner

from stemclean import batch
from stemclean.cli import app

runner = CliRunner()
RATE = 44100


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, RATE, subtype="FLOAT" if path.suffix == ".wav" else None)
    return path


def _batch(*args):
    return runner.invoke(app, ["batch", *map(str, args)])


def test_demucs_layout_with_mix_dir_mirrors_the_tree_and_resumes(tmp_path, cli_env):
    separated, songs = demucs_tree(tmp_path)
    out = tmp_path / "cleaned"
    result = _batch(separated, "--mix-dir", songs, "-o", out, "--steps", "1", "--json")
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert [r["status"] for r in results] == ["cleaned"] * 8
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav"))
    assert written == sorted(
        f"htdemucs/{t}/{s}_clean.wav" for t in ("song_a", "song_b") for s in ("bass", "drums", "other", "vocals")
    )
    drums = sf.read(separated / "htdemucs" / "song_a" / "drums.wav")[0]
    assert sf.read(out / "htdemucs" / "song_a" / "drums_clean.wav")[0].shape == drums.shape
    assert {r["stem_type"] for r in results} == {"vocals", "drums", "bass", "other"}

    again = _batch(separated, "--mix-dir", songs, "-o", out, "--json")
    assert again.exit_code == 0 and {r["status"] for r in json.loads(again.stdout)} == {"skipped"}
    forced = _batch(separated, "--mix-dir", songs, "-o", out, "--json", "--overwrite", "-s", "1")
    assert {r["status"] for r in json.loads(forced.stdout)} == {"cleaned"}


@pytest.mark.parametrize(
    ("line", "cleaned"),
    [
        ("stemclean run separated/", ["vocals"]),
        ("stemclean batch separated --mix-dir", ["vocals", "drums", "bass", "other"]),
        ("stemclean batch separated --mix-from-stems", ["vocals", "drums", "bass", "other"]),
        ("stemclean batch separated/htdemucs/song ", ["vocals", "drums", "bass", "other"]),
    ],
)
def test_readme_demucs_examples_as_written(tmp_path, cli_env, line, cleaned):
    """README's lines after demucs, run in a folder that holds song.wav and demucs' separated/."""
    separated, songs = demucs_tree(tmp_path, tracks=("song",))
    (songs / "song.wav").rename(tmp_path / "song.wav")
    done = run_readme_line(line, tmp_path, cli_env)
    assert done.returncode == 0, done.stderr
    song = separated / "htdemucs" / "song"
    assert sorted(p.name for p in song.glob("*_clean.wav")) == sorted(f"{name}_clean.wav" for name in cleaned)
    for name in cleaned:
        stem = sf.read(song / f"{name}.wav", dtype="float32")[0]
        out = sf.read(song / f"{name}_clean.wav", dtype="float32")[0]
        assert np.sum(out * stem) / np.sum(stem * stem) == pytest.approx(0.5, rel=1e-3), name


def test_mix_dir_holding_root_by_absolute_path(tmp_path):
    demucs_tree(tmp_path, tracks=("song",))
    (tmp_path / "songs" / "song.wav").rename(tmp_path / "song.wav")
    jobs = batch.plan(tmp_path / "separated", None, tmp_path.resolve(), None)
    assert sorted(j.stem.name for j in jobs) == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    assert {j.mix for j in jobs} == {tmp_path.resolve() / "song.wav"}


def test_the_summary_table_shows_whole_paths_at_120_columns(tmp_path, cli_env):
    deep = tmp_path.joinpath(*["a_folder_with_a_rather_long_name"] * 4)
    separated, _ = demucs_tree(deep, tracks=("a_song_with_a_long_title",))
    done = run_cli("batch", str(separated), "--mix-from-stems", "-s", "1", env={**cli_env, "COLUMNS": "120"})
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stderr.decode().splitlines() if line.startswith("│")]
    assert max(len(line) for line in rows) <= 120
    stem_column = "".join(line.split("│")[1].strip() for line in rows)
    for stem in separated.rglob("*.wav"):
        if not stem.stem.endswith("_clean"):
            assert str(stem) in stem_column


def test_mp3_mixes_are_found_and_their_padding_tolerated(tmp_path, cli_env):
    separated, songs = demucs_tree(tmp_path, tracks=("song_a",))
    wav = songs / "song_a.wav"
    sf.write(songs / "song_a.mp3", sf.read(wav)[0], RATE)
    wav.unlink()
    result = _batch(separated, "--mix-dir", songs, "-s", "1", "--json")
    assert result.exit_code == 0, result.output
    assert {r["status"] for r in json.loads(result.stdout)} == {"cleaned"}


def test_audio_separator_names_with_mix_from_stems(tmp_path, mix_model, monkeypatch):
    """With a graph that returns its mix, each output is the sum of the track's stems."""
    monkeypatch.setenv("STEMCLEAN_MODEL", str(mix_model))
    vocals, _ = tone_mix(1.0, RATE, seed=1)
    backing, _ = tone_mix(1.0, RATE, seed=2)
    _write(tmp_path / "My Song_(Vocals)_UVR-MDX-NET.wav", vocals)
    _write(tmp_path / "My Song_(Instrumental)_UVR-MDX-NET.wav", 0.5 * backing)
    result = _batch(tmp_path, "--mix-from-stems", "-s", "1", "--json")
    assert result.exit_code == 0, result.output
    by_type = {r["stem_type"]: r for r in json.loads(result.stdout)}
    assert set(by_type) == {"vocals", "accompaniment"}
    cleaned = sf.read(tmp_path / "My Song_(Vocals)_UVR-MDX-NET_clean.wav")[0]
    assert np.max(np.abs(cleaned - (vocals + 0.5 * backing))) < 1e-4


def test_a_failed_track_does_not_stop_the_others(tmp_path, cli_env):
    separated, songs = demucs_tree(tmp_path)
    (songs / "song_b.wav").unlink()
    result = _batch(separated, "--mix-dir", songs, "-s", "1")
    assert result.exit_code == 1
    assert "no mix for track 'song_b'" in result.stderr and "4 cleaned" in result.stderr and "4 failed" in result.stderr
    assert len(list((separated / "htdemucs" / "song_a").glob("*_clean.wav"))) == 4
    assert not list((separated / "htdemucs" / "song_b").glob("*_clean*"))


def test_parallel_jobs_give_the_same_audio(tmp_path, cli_env):
    separated, songs = demucs_tree(tmp_path, tracks=("song_a",))
    serial = _batch(separated, "--mix-dir", songs, "-o", tmp_path / "serial", "-s", "2")
    parallel = _batch(separated, "--mix-dir", songs, "-o", tmp_path / "parallel", "-s", "2", "-j", "2")
    assert serial.exit_code == parallel.exit_code == 0, parallel.output
    for out in (tmp_path / "serial").rglob("*.wav"):
        twin = tmp_path / "parallel" / out.relative_to(tmp_path / "serial")
        assert np.array_equal(sf.read(out)[0], sf.read(twin)[0])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "exactly one of --mix-dir"),
        (["--mix-from-stems", "--mix-dir", "."], "exactly one of --mix-dir"),
        (["--mix-from-stems", "-j", "0"], "--jobs"),
    ],
)
def test_batch_usage_errors(tmp_path, cli_env, args, words):
    result = _batch(tmp_path, *args)
    assert result.exit_code == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_nothing_to_clean_is_an_error(tmp_path, cli_env):
    (tmp_path / "readme.txt").write_text("no audio here")
    result = _batch(tmp_path, "--mix-from-stems")
    assert result.exit_code == 1 and "no stems found" in result.stderr


def test_mixes_and_outputs_are_not_taken_for_stems(tmp_path):
    for name in ("t/vocals.wav", "t/mixture.wav", "t/vocals_clean.wav", "t/notes.wav", "x_(Drums)_demucs.flac"):
        _write(tmp_path / name, np.zeros((10, 1), np.float32))
    jobs = batch.plan(tmp_path, None, None, None)
    assert sorted((j.stem.name, j.track, j.stem_type) for j in jobs) == [
        ("vocals.wav", "t", "vocals"),
        ("x_(Drums)_demucs.flac", "x", "drums"),
    ]
