"""The real ``stemclean`` command: Typer's CliRunner in-process, and subprocesses for pipes and exit codes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, run_cli, run_readme_line, write_gain_model
from typer.testing import CliRunner

import stemclean
from stemclean import engine
from stemclean.cli import app
from stemclean.stems import STEM_TYPES

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, list(map(str, args)))


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_writes_the_default_output_beside_the_stem(song, cli_env):
    result = _invoke("run", song["stem"], "--mix", song["mix"], "--steps", "1", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    out = song["stem"].with_name("vocals_clean.wav")
    assert summary["output"] == str(out) and summary["stem_type"] == "vocals" and summary["steps"] == 1
    stem, rate = sf.read(song["stem"], dtype="float32")
    cleaned, out_rate = sf.read(out, dtype="float32")
    info = sf.info(out)
    assert (out_rate, cleaned.shape, info.subtype) == (rate, stem.shape, "FLOAT")
    assert np.sum(cleaned * stem) / np.sum(stem * stem) == pytest.approx(0.5, rel=1e-4)


def test_format_subtype_and_strength_options(song, cli_env):
    result = _invoke(
        "run", song["stem"], "-m", song["mix"], "--format", "flac", "--subtype", "PCM_24", "--strength", "0"
    )
    assert result.exit_code == 0, result.output
    out = song["stem"].with_name("vocals_clean.flac")
    assert sf.info(out).subtype == "PCM_24"
    stem, _ = sf.read(song["stem"])
    assert np.max(np.abs(sf.read(out)[0] - stem)) < 2**-22  # strength 0: the input, to 24-bit precision


def test_clip_modes_through_the_cli(tmp_path, song, monkeypatch):
    monkeypatch.setenv("STEMCLEAN_MODEL", str(write_gain_model(tmp_path / "loud.onnx", stem_gain=8.0)))
    peaks = {}
    for mode in ("rescale", "clamp", "none"):
        out = tmp_path / f"{mode}.wav"
        result = _invoke("run", song["stem"], "-m", song["mix"], "-o", out, "-s", "1", "--clip-mode", mode)
        assert result.exit_code == 0, result.output
        peaks[mode] = np.max(np.abs(sf.read(out)[0]))
    assert peaks["rescale"] == pytest.approx(1.0, abs=1e-6)
    assert peaks["clamp"] == 1.0
    assert peaks["none"] > 2.0


def test_existing_output_needs_overwrite(song, cli_env):
    out = song["stem"].with_name("done.wav")
    out.write_bytes(b"keep me")
    result = _invoke("run", song["stem"], "-m", song["mix"], "-o", out)
    assert result.exit_code == 2 and "--overwrite" in result.stderr and out.read_bytes() == b"keep me"
    assert _invoke("run", song["stem"], "-m", song["mix"], "-o", out, "--overwrite").exit_code == 0
    assert sf.info(out).frames == sf.info(song["stem"]).frames


def _bad_inputs(tmp_path, song):
    """Each case: (name, extra setup -> argv, expected exit code, words the error must contain)."""
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    zero = tmp_path / "zero.wav"
    zero.write_bytes(b"")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2), np.float32), 44100)
    nan = tmp_path / "nan.wav"
    data = sf.read(song["stem"], dtype="float32")[0]
    data[1000] = np.nan
    sf.write(nan, data, 44100, subtype="FLOAT")
    double = tmp_path / "double.wav"
    mix = sf.read(song["mix"], dtype="float32")[0]
    sf.write(double, np.concatenate([mix, mix]), 44100, subtype="FLOAT")
    stem, mixp = song["stem"], song["mix"]
    return [
        ("missing stem", ["run", tmp_path / "nope.wav", "-m", mixp], 1, "no such file"),
        ("missing mix", ["run", stem, "-m", tmp_path / "nope.wav"], 1, "no such file"),
        ("text file", ["run", text, "-m", mixp], 1, "not a readable audio file"),
        ("zero bytes", ["run", zero, "-m", mixp], 1, "not a readable audio file"),
        ("empty audio", ["run", empty, "-m", mixp], 1, "no audio"),
        ("NaN samples", ["run", nan, "-m", mixp, "-o", tmp_path / "o.wav"], 1, "NaN"),
        ("output is input", ["run", stem, "-m", mixp, "-o", stem, "--overwrite"], 2, "is one of the inputs"),
        ("output is the mix", ["run", stem, "-m", mixp, "-o", mixp, "--overwrite"], 2, "is one of the inputs"),
        ("steps 0", ["run", stem, "-m", mixp, "--steps", "0"], 2, "--steps"),
        ("steps 9", ["run", stem, "-m", mixp, "--steps", "9"], 2, "--steps"),
        ("missing output dir", ["run", stem, "-m", mixp, "-o", tmp_path / "no" / "o.wav"], 2, "does not exist"),
        ("mix twice as long", ["run", stem, "-m", double, "-o", tmp_path / "o.wav"], 1, "longer than the stem"),
        ("unknown format", ["run", stem, "-m", mixp, "--format", "mp4"], 2, "unknown output format"),
        ("subtype the format lacks", ["run", stem, "-m", mixp, "--format", "flac", "--subtype", "FLOAT"], 2, "subtype"),
        ("negative strength", ["run", stem, "-m", mixp, "--strength", "-1"], 2, "strength must be"),
        ("unknown device", ["run", stem, "-m", mixp, "--device", "tpu"], 2, "unknown device"),
        ("batch strength", ["batch", tmp_path, "--mix-from-stems", "--strength", "nan"], 2, "strength must be"),
        ("batch format", ["batch", tmp_path, "--mix-from-stems", "--format", "mp4"], 2, "unknown output format"),
        ("missing model", ["run", stem, "-m", mixp, "--model", tmp_path / "none.onnx"], 1, "model not found"),
    ]


def test_every_bad_input_is_one_line_and_leaves_no_output(tmp_path, song, cli_env):
    for name, argv, code, words in _bad_inputs(tmp_path, song):
        before = {p: _digest(p) for p in tmp_path.iterdir() if p.is_file()}
        result = _invoke(*argv)
        assert result.exit_code == code, (name, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and lines[0].startswith("error:"), (name, result.stderr)
        assert "Traceback" not in result.output and result.stdout == "", name
        after = {p: _digest(p) for p in tmp_path.iterdir() if p.is_file()}
        assert after == before, f"{name}: files changed or appeared"


def test_debug_shows_the_traceback(song, cli_env, tmp_path):
    result = run_cli("run", str(tmp_path / "nope.wav"), "-m", str(song["mix"]), "--debug", env=cli_env)
    assert result.returncode == 1 and b"Traceback" in result.stderr and b"AudioError" in result.stderr


@pytest.mark.parametrize(
    ("code", "extra"),
    [
        (0, ["-q"]),  # README: 0 success
        (1, ["--model", "none.onnx"]),  # 1 a file failed (missing model)
        (2, ["--strength", "-1"]),  # 2 a usage error (bad option)
    ],
)
def test_each_documented_exit_code_in_a_real_process(song, cli_env, tmp_path, code, extra):
    out = tmp_path / "out.wav"
    done = run_cli("run", str(song["stem"]), "-m", str(song["mix"]), "-o", str(out), *extra, env=cli_env, cwd=tmp_path)
    assert done.returncode == code, done.stderr
    assert done.stdout == b"" and out.exists() == (code == 0)
    assert done.stderr == b"" if code == 0 else done.stderr.startswith(b"error:") and done.stderr.count(b"\n") == 1


@pytest.mark.parametrize("umask", [0o002, 0o077])
def test_outputs_get_the_permissions_of_a_normal_write(song, cli_env, tmp_path, umask):
    out = tmp_path / "out.wav"
    argv = ["run", str(song["stem"]), "-m", str(song["mix"]), "-o", str(out)]
    done = run_cli(*argv, env=cli_env, preexec_fn=lambda: os.umask(umask))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_pipe_stdin_to_stdout(song, cli_env):
    stem_bytes = song["stem"].read_bytes()
    result = run_cli("run", "-", "-m", str(song["mix"]), "-o", "-", "-s", "1", env=cli_env, stdin=stem_bytes)
    assert result.returncode == 0, result.stderr
    cleaned, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    stem, _ = sf.read(song["stem"], dtype="float32")
    assert rate == 44100 and cleaned.shape == stem.shape
    assert np.sum(cleaned * stem) / np.sum(stem * stem) == pytest.approx(0.5, rel=1e-3)


def test_stdin_stem_type_comes_from_the_option_else_the_output_name(song, tmp_path, monkeypatch):
    """A graph with one gain per stem type shows which type the engine used; the summary line names it too."""
    gains = dict.fromkeys(STEM_TYPES, 1.0) | {"vocals": 0.5, "drums": 0.25, "unknown": 0.75}
    model = write_gain_model(tmp_path / "typed.onnx", stem_gain=list(gains.values()))
    env = {**os.environ, "STEMCLEAN_MODEL": str(model), "PYTHONPATH": str(REPO)}
    stem_bytes, stem = song["stem"].read_bytes(), sf.read(song["stem"], dtype="float32")[0]
    cases = [
        (["-o", str(tmp_path / "lead_vocals.wav")], "vocals"),
        (["-o", "-", "--stem-type", "drums"], "drums"),
        (["-o", str(tmp_path / "vocals_out.wav"), "--stem-type", "drums", "--overwrite"], "drums"),
        (["-o", "-"], "unknown"),
    ]
    for extra, stem_type in cases:
        done = run_cli("run", "-", "-m", str(song["mix"]), "-s", "1", *extra, env=env, stdin=stem_bytes)
        assert done.returncode == 0, done.stderr
        cleaned = sf.read(io.BytesIO(done.stdout) if extra[1] == "-" else extra[1], dtype="float32")[0]
        assert np.sum(cleaned * stem) / np.sum(stem * stem) == pytest.approx(gains[stem_type], rel=1e-3), extra
        assert f": {stem_type}" in done.stderr.decode(), (extra, done.stderr)
    assert b"--stem-type" in done.stderr  # the unknown case says how to set it


def test_readme_pipe_as_written(tmp_path, song, cli_env):
    """README: sox decodes to a WAV stream, stemclean cleans it as vocals, sox encodes the result."""
    sf.write(tmp_path / "vocals.flac", sf.read(song["stem"])[0], 44100)
    song["mix"].rename(tmp_path / "song.wav")
    done = run_readme_line("sox vocals.flac -t wav - | stemclean run -", tmp_path, cli_env)
    assert done.returncode == 0, done.stderr
    stem = sf.read(tmp_path / "vocals.flac", dtype="float32")[0]
    cleaned = sf.read(tmp_path / "vocals_clean.flac", dtype="float32")[0]
    assert cleaned.shape == stem.shape
    assert np.sum(cleaned * stem) / np.sum(stem * stem) == pytest.approx(0.5, rel=1e-3)
    assert "stdout: vocals;" in done.stderr


def test_pipe_flac_in_and_json_goes_to_stderr_when_audio_is_on_stdout(song, cli_env, tmp_path):
    flac = tmp_path / "stem.flac"
    sf.write(flac, sf.read(song["stem"])[0], 44100)
    result = run_cli("run", "-", "-m", str(song["mix"]), "-o", "-", "--json", env=cli_env, stdin=flac.read_bytes())
    assert result.returncode == 0, result.stderr
    assert sf.info(io.BytesIO(result.stdout)).format == "WAV"
    assert json.loads(result.stderr)["stem"] == "<stdin>"


def test_version_and_help():
    assert _invoke("--version").stdout.strip() == f"stemclean {stemclean.__version__}"
    assert "<bool>" not in _invoke("--help").stdout
    for command, usage in (("run", "[OPTIONS] STEM"), ("batch", "[OPTIONS] ROOT"), ("info", "[OPTIONS]")):
        assert command in _invoke("--help").stdout
        text = _invoke(command, "--help").stdout
        assert f" {command} {usage}" in text and "<bool>" not in text and "{" not in text, text


def test_info_summarises_the_card_and_json_has_all_of_it(tmp_path, gain_model):
    card = {
        "name": "stemclean-test",
        "size_mb": 1.5,
        "metrics": [{"source": "spleeter", "method": "stemclean@auto", "delta_si_sdr": 0.123456789, "sir": 16.6666,
                     "sar": 9.7225123}],
        "real_recordings": {"splits": {"train": {"mixes": 30, "hours": 0.5, "spleeter_pairs": 25},
                                       "val": {"mixes": 4, "hours": 0.06, "spleeter_pairs": 4}}},
    }
    gain_model.with_suffix(".json").write_text(json.dumps(card))
    result = _invoke("info", "--model", gain_model, "--json")
    assert result.exit_code == 0, result.output
    details = json.loads(result.stdout)
    assert details["card"] == card and details["metadata"]["version"] == "test-gain-graph"
    assert "CPUExecutionProvider" in details["providers"] and details["versions"]["stemclean"]
    assert details["auto_provider"] == engine.providers_for("auto")[0]
    human = _invoke("info", "--model", gain_model).stdout
    assert "stemclean-test" in human and "1.5 MB" in human and f"auto picks {details['auto_provider']}" in human
    assert "spleeter: SI-SDR gain +0.12 dB, SIR 16.7 dB, SAR 9.7 dB" in human and "0.1234" not in human
    assert "real recordings: 34 mixes, 0.6 hours (train 30, val 4; 29 with Spleeter pairs)" in human
    assert f"onnxruntime {details['versions']['onnxruntime']}" in human and "{" not in human
    missing = _invoke("info", "--model", tmp_path / "none.onnx")
    assert missing.exit_code == 0 and "(not found)" in missing.stdout


def test_info_into_a_reader_that_left_exits_quietly(cli_env):
    """`stemclean info | head -1`: the reader is gone before info writes, which is no failure."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stemclean", "info"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env
    )
    process.stdout.close()
    stderr = process.stderr.read()
    assert (process.wait(), stderr) == (0, b"")
