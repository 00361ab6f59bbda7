"""Block streaming, checks on input files, and atomic writing with the clip modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from stemclean import audio


def _stream(lengths, channels=2):
    start = 0
    for n in lengths:
        yield np.arange(start, start + n, dtype=np.float32)[None].repeat(channels, axis=0)
        start += n


def test_rebuffer_regroups_without_losing_or_reordering_samples():
    blocks = list(audio.rebuffer(_stream([5, 17, 3, 40, 1]), 10))
    assert [b.shape[1] for b in blocks] == [10] * 6 + [6]
    assert np.array_equal(np.concatenate(blocks, axis=1)[0], np.arange(66))


def test_fixed_length_trims_and_pads():
    trimmed = np.concatenate(list(audio.fixed_length(_stream([30, 30]), 45)), axis=1)
    assert np.array_equal(trimmed[0], np.arange(45))
    padded = np.concatenate(list(audio.fixed_length(_stream([30]), 100)), axis=1)
    assert padded.shape == (2, 100) and not padded[:, 30:].any()


def test_streamed_resampling_matches_whole_file_resampling():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 48000)).astype(np.float32)
    blocks = (x[:, i : i + 7000] for i in range(0, x.shape[1], 7000))
    length = audio.resampled_length(48000, 48000, 44100)
    streamed = np.concatenate(list(audio.fixed_length(audio.resampled(blocks, 48000, 44100, 2), length)), axis=1)
    whole = soxr.resample(x.T, 48000, 44100).T
    assert streamed.shape == (2, 44100)
    assert np.max(np.abs(streamed[:, 500:-500] - whole[:, 500:-500])) < 1e-4


def test_channel_matching():
    stereo = np.array([[1.0, 3.0], [3.0, 5.0]], dtype=np.float32)
    assert np.array_equal(next(audio.with_channels(iter([stereo]), 1)), [[2.0, 4.0]])
    assert np.array_equal(next(audio.with_channels(iter([stereo[:1]]), 2)), [[1.0, 3.0], [1.0, 3.0]])


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "not a readable audio file"), (b"hello, this is text\n" * 10, "not a readable audio file")],
)
def test_files_that_are_not_audio_are_refused(tmp_path, content, message):
    path = tmp_path / "fake.wav"
    path.write_bytes(content)
    with pytest.raises(audio.AudioError, match=message):
        audio.file_source(path)


def test_empty_missing_and_nan_files_are_refused(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2), np.float32), 44100)
    with pytest.raises(audio.AudioError, match="no audio"):
        audio.file_source(empty)
    with pytest.raises(audio.AudioError, match="no such file"):
        audio.file_source(tmp_path / "missing.wav")
    nan = tmp_path / "nan.wav"
    data = np.zeros((1000, 2), np.float32)
    data[500, 1] = np.inf
    sf.write(nan, data, 44100, subtype="FLOAT")
    source = audio.file_source(nan)
    with pytest.raises(audio.AudioError, match=r"infinite or absurd sample \(inf.* at 0:00.011 in channel 2"):
        list(source.read())


def test_sum_source_adds_stems(tmp_path):
    a, b = np.full((100, 2), 0.25, np.float32), np.full((80, 2), 0.5, np.float32)
    sf.write(tmp_path / "a.wav", a, 8000, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", b, 8000, subtype="FLOAT")
    total = audio.sum_source([audio.file_source(tmp_path / n) for n in ("a.wav", "b.wav")], "sum")
    summed = np.concatenate(list(total.read()), axis=1)
    assert total.frames == 100 and np.allclose(summed[:, :80], 0.75) and np.allclose(summed[:, 80:], 0.25)


def _loud(n=1000):
    return [np.full((1, n), 2.0, np.float32), np.full((1, n), -0.5, np.float32)]


def test_clip_modes(tmp_path):
    out = tmp_path / "out.wav"
    audio.write(iter(_loud()), out, 8000, 1, "WAV", "FLOAT", "rescale")
    data, _ = sf.read(out)
    assert np.max(np.abs(data)) == pytest.approx(1.0) and data[-1] == pytest.approx(-0.25)
    audio.write(iter(_loud()), out, 8000, 1, "WAV", "FLOAT", "clamp", overwrite=True)
    data, _ = sf.read(out)
    assert data[0] == 1.0 and data[-1] == -0.5
    audio.write(iter(_loud()), out, 8000, 1, "WAV", "FLOAT", "none", overwrite=True)
    assert sf.read(out)[0][0] == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]  # no scratch or temp files left


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    out = tmp_path / "out.wav"
    out.write_bytes(b"previous")

    def failing():
        yield np.zeros((1, 100), np.float32)
        raise audio.AudioError("broken input")

    for mode in audio.CLIP_MODES:
        with pytest.raises(audio.AudioError):
            audio.write(failing(), out, 8000, 1, "WAV", "PCM_16", mode)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"] and out.read_bytes() == b"previous"


def test_output_format_and_subtype_follow_the_input_unless_asked():
    assert audio.output_format(None, None, "FLAC") == "FLAC"
    assert audio.output_format(None, Path("x.wav"), "FLAC") == "WAV"
    assert audio.output_format("flac", Path("x.FLAC"), "WAV") == "FLAC"
    assert audio.output_format(None, Path("x.aif"), "WAV") == "AIFF"
    with pytest.raises(audio.AudioError, match="the extension says wav but --format says flac"):
        audio.output_format("flac", Path("x.wav"), "WAV")
    with pytest.raises(audio.AudioError, match="unknown audio extension .xyz"):
        audio.output_format(None, Path("x.xyz"), "WAV")
    with pytest.raises(audio.AudioError, match="unknown output format"):
        audio.output_format("mp4", None, "WAV")
    source = audio.Source("s", 44100, 2, 1, lambda: iter(()), "WAV", "FLOAT")
    assert audio.output_subtype("WAV", None, source) == "FLOAT"
    assert audio.output_subtype("FLAC", None, source) == "PCM_16"  # FLAC has no float
    with pytest.raises(audio.AudioError, match="not available"):
        audio.output_subtype("FLAC", "FLOAT", source)
