"""Faults and hostile input, through the real command in subprocesses: signals at any moment, broken and absurd
audio, formats that cannot hold the audio, crashing workers, outputs that appear mid-run, two batches on one tree.

The rule each test checks: no hang, no traceback, no wrong file with exit 0, no leftovers, nothing replaced silently.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import demucs_tree, run_cli, start_cli, tone_mix, write_song

from stemclean import interrupts

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _strict_json(text: str | bytes):
    """Parse JSON as any other program would: a bare NaN or Infinity is an error."""
    return json.loads(text, parse_constant=lambda word: pytest.fail(f"not JSON: {word}"))


def _group(pgid: int) -> list[int]:
    """Live processes in a process group, read from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid) and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def _sigint_blocked(pid: int) -> bool:
    """Whether the process holds SIGINT back, as ``python -m stemclean`` does while its libraries load."""
    with open(f"/proc/{pid}/status") as f:
        mask = next(line.split()[1] for line in f if line.startswith("SigBlk:"))
    return bool(int(mask, 16) & (1 << (signal.SIGINT - 1)))


def _wait_until(condition, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _hidden(root: Path) -> list[str]:
    """Temporary files, scratch folders and locks anywhere under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*"))


def _ours(tmpdir: Path) -> list[str]:
    """What stemclean left in a $TMPDIR (other programs may keep files there too)."""
    return sorted(p.name for p in tmpdir.iterdir() if p.name.startswith("stemclean"))


def _scratch_in(folder: Path):
    return lambda: any(p.name.endswith(".stemclean.tmp") for p in folder.rglob(".*"))


def _stop(process: subprocess.Popen, signum: int, timeout: float = 10.0) -> tuple[int, str, float]:
    """Send ``signum`` to the whole group (as a terminal does), and return (exit code, stderr, seconds to exit)."""
    sent = time.monotonic()
    os.killpg(process.pid, signum)
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"still running {timeout} s after {signal.Signals(signum).name}")
    return process.returncode, err.decode(), time.monotonic() - sent


@pytest.fixture
def long_song(tmp_path) -> dict[str, Path]:
    """A 30 s song: long enough that a signal lands in the middle of the cleaning."""
    return write_song(tmp_path, 30.0)


# Interrupts


def test_a_stop_signal_waits_for_a_held_step_even_when_another_thread_takes_it():
    """The kernel may hand a process-wide signal to any thread that does not block it (a progress display's); the
    main thread's handler must still wait for the held step's end, as it does when the main thread takes it."""
    saved = {signum: signal.getsignal(signum) for signum in interrupts.SIGNALS}
    other = threading.Thread(target=time.sleep, args=(1.0,))  # a thread with the signals unblocked
    other.start()
    steps = []
    try:
        interrupts.install()
        with pytest.raises(interrupts.Interrupted):
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)  # the other thread has taken it by now
                steps.append("finished")
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        other.join()
    assert steps == ["finished"]


def test_a_stopped_command_stays_deaf_to_further_signals_until_it_exits():
    """A second Ctrl-C that lands after the cleanup, while the interpreter shuts down, must not end the process by
    SIGINT (exit -2 in CI) instead of with the 130 that was promised."""
    import typer

    from stemclean import cli

    saved = {signum: signal.getsignal(signum) for signum in interrupts.SIGNALS}
    try:
        with pytest.raises(typer.Exit) as stopped:
            with cli._reported(debug=False):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1.0)  # the handler raises long before this ends
        after = {signum: signal.getsignal(signum) for signum in interrupts.SIGNALS}
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert stopped.value.exit_code == 130
    assert set(after.values()) == {signal.SIG_IGN}


@pytest.mark.parametrize("moment", ["starting", "loading", "writing", "between files", "twice"])
def test_ctrl_c_stops_a_parallel_batch_within_seconds(tmp_path, cli_env, moment):
    separated, songs = demucs_tree(tmp_path, tracks=("song_a",), seconds=8.0)
    out = tmp_path / "cleaned"
    batch = start_cli("batch", separated, "--mix-dir", songs, "-o", out, "-j", "2", "-s", "1", env=cli_env)
    if moment == "starting":  # numpy and onnxruntime loading (before that, Python's own start-up is not ours to handle)
        assert _wait_until(lambda: _sigint_blocked(batch.pid))
    elif moment == "loading":
        assert _wait_until(lambda: _worker_pids(batch)), "no worker was started"
    elif moment in ("writing", "twice"):
        assert _wait_until(_scratch_in(out)), "no output was started"
    else:
        assert _wait_until(lambda: any(out.rglob("*_clean.wav"))), "no output was finished"
    if moment == "twice":  # an impatient second Ctrl-C must not cut the cleanup short or print tracebacks
        os.killpg(batch.pid, signal.SIGINT)
        time.sleep(0.1)
    code, err, seconds = _stop(batch, signal.SIGINT)
    assert code == 130 and seconds < 10 and "Traceback" not in err, err
    assert _wait_until(lambda: not _group(batch.pid), timeout=5), "worker processes outlived the batch"
    assert not out.exists() or _hidden(out) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_in_batch_stop_the_workers_and_clean_up(tmp_path, cli_env, signum):
    separated, songs = demucs_tree(tmp_path, tracks=("song_a",), seconds=8.0)
    out = tmp_path / "cleaned"
    batch = start_cli("batch", separated, "--mix-dir", songs, "-o", out, "-j", "2", "-s", "1", env=cli_env)
    assert _wait_until(_scratch_in(out))
    sent = time.monotonic()
    os.kill(batch.pid, signum)  # the main process alone, as `kill PID` does: it must stop its workers itself
    _, err = batch.communicate(timeout=10)
    assert batch.returncode == 128 + signum and time.monotonic() - sent < 10 and "Traceback" not in err.decode()
    assert _wait_until(lambda: not _group(batch.pid), timeout=5), "worker processes outlived the batch"
    assert _hidden(out) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_run_leaves_no_temporary_files(tmp_path, long_song, cli_env, signum):
    out = tmp_path / "out.wav"
    run = start_cli("run", long_song["stem"], "-m", long_song["mix"], "-o", out, "-s", "1", env=cli_env)
    assert _wait_until(_scratch_in(tmp_path))
    code, err, _ = _stop(run, signum)
    assert code == 128 + signum and "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half.onnx", "mix.wav", "vocals.wav"]


def test_a_signal_during_a_pipe_leaves_nothing_in_tmpdir(tmp_path, song, cli_env):
    spool = tmp_path / "tmp"
    spool.mkdir()
    env = {**cli_env, "TMPDIR": str(spool)}
    run = start_cli("run", "-", "-m", song["mix"], "-o", "-", env=env, stdin=subprocess.PIPE)
    wav = song["stem"].read_bytes()
    run.stdin.write(wav[: len(wav) // 2])  # half a stream, and the writer stalls
    run.stdin.flush()
    assert _wait_until(lambda: any(spool.rglob("stdin")))
    code, err, _ = _stop(run, signal.SIGTERM)
    assert code == 143 and "Traceback" not in err
    assert _ours(spool) == []


def test_a_resumed_batch_removes_what_a_killed_one_left(tmp_path, cli_env):
    separated, songs = demucs_tree(tmp_path, tracks=("song_a",))
    track = separated / "htdemucs" / "song_a"
    stale = track / ".vocals_clean.wav.k1ll3d.stemclean.tmp"
    stale.mkdir()
    (stale / "out").write_bytes(b"half a file")
    (track / ".vocals_clean.wav.lock").touch()
    result = run_cli("batch", str(separated), "--mix-dir", str(songs), "-s", "1", "-q", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert _hidden(track) == [] and sf.info(track / "vocals_clean.wav").frames == 44100


# Numbers


@pytest.mark.parametrize("which", ["stem", "mix"])
def test_absurd_samples_are_refused_with_their_time(tmp_path, song, cli_env, which):
    data, rate = sf.read(song[which], dtype="float64")
    if which == "stem":
        data[66150, 1] = 1e20  # 1.5 s into the right channel
    else:
        data *= 1e30
    bad = tmp_path / f"bad_{which}.wav"
    sf.write(bad, data, rate, subtype="DOUBLE")
    args = {"stem": song["stem"], "mix": song["mix"], which: bad}
    for extra in (["--subtype", "PCM_16", "--clip-mode", "clamp"], ["-o", str(tmp_path / "x.flac")]):
        result = run_cli("run", str(args["stem"]), "-m", str(args["mix"]), "--json", *extra, env=cli_env)
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and result.stdout == b"", result.stderr
        assert str(bad) in lines[0] and "absurd" in lines[0], lines[0]
        if which == "stem":
            assert "0:01.500 in channel 2" in lines[0]
    assert not list(tmp_path.glob("*_clean*")) and not (tmp_path / "x.flac").exists()


def test_loud_but_finite_audio_gives_finite_audio_and_strict_json(tmp_path, song, cli_env):
    data, rate = sf.read(song["stem"], dtype="float32")
    loud = tmp_path / "loud_vocals.wav"
    sf.write(loud, data * 1e5, rate, subtype="FLOAT")
    for fmt in ("wav", "flac"):
        out = tmp_path / f"o.{fmt}"
        result = run_cli("run", str(loud), "-m", str(song["mix"]), "-o", str(out), "-s", "1", "--json", env=cli_env)
        assert result.returncode == 0, result.stderr
        summary = _strict_json(result.stdout)
        written = sf.read(out)[0]
        assert np.isfinite(written).all() and np.max(np.abs(written)) <= 1.0 and summary["gain"] < 1e-4


# Writers


def test_formats_that_cannot_hold_the_audio_are_refused_before_any_work(tmp_path, cli_env):
    stem, mix = tone_mix(0.5, 384000)
    sf.write(tmp_path / "vocals.wav", stem, 384000, subtype="FLOAT")
    sf.write(tmp_path / "mix.wav", mix, 384000, subtype="FLOAT")
    cases = [
        (["-o", "out.ogg"], "Ogg Vorbis cannot hold 384000 Hz"),
        (["--format", "ogg", "--subtype", "OPUS"], "cannot hold 2 channel(s) at 384000 Hz"),
        (["-o", "out.xyz"], "unknown audio extension .xyz"),
        (["-o", "out.flac", "--format", "wav"], "the extension says flac but --format says wav"),
        (["-o", "."], "is a folder"),
        (["-o", ".", "--overwrite"], "is a folder"),
    ]
    for extra, words in cases:
        args = ["run", "vocals.wav", "-m", "mix.wav", *extra]
        result = subprocess.run(
            [sys.executable, "-m", "stemclean", *args], capture_output=True, env=cli_env, cwd=tmp_path
        )
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode in (1, 2) and len(lines) == 1 and words in lines[0], (extra, result.stderr)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["half.onnx", "mix.wav", "vocals.wav"], extra


def _worker_pids(batch: subprocess.Popen) -> list[int]:
    with open(f"/proc/{batch.pid}/task/{batch.pid}/children") as f:
        children = [int(pid) for pid in f.read().split()]
    return [pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_crash_in_one_file_fails_that_file_and_the_batch_goes_on(tmp_path, cli_env, jobs):
    separated, songs = demucs_tree(tmp_path, tracks=("song_a",), seconds=8.0)
    out = tmp_path / "cleaned"
    batch = start_cli("batch", separated, "--mix-dir", songs, "-o", out, "-j", jobs, "-s", "1", "--json", env=cli_env)
    assert _wait_until(_scratch_in(out))
    workers = _worker_pids(batch)
    assert workers, "the file is not cleaned in a worker process"
    os.kill(workers[0], signal.SIGSEGV)  # what libvorbis did at 384 kHz
    stdout, stderr = batch.communicate(timeout=60)
    results = _strict_json(stdout)
    failed = [r for r in results if r["status"] == "failed"]
    assert batch.returncode == 1 and len(failed) == 1 and "crashed" in failed[0]["error"], stderr
    assert "SIGSEGV" in failed[0]["error"] and sum(r["status"] == "cleaned" for r in results) == 3
    assert _hidden(out) == []


# Stdin


def test_stdin_is_checked_before_copying_and_capped(tmp_path, song, cli_env):
    spool = tmp_path / "tmp"
    spool.mkdir()
    env = {**cli_env, "TMPDIR": str(spool)}
    noise = np.random.default_rng(0).bytes(1 << 20)
    result = run_cli("run", "-", "-m", str(song["mix"]), "-o", "-", env=env, stdin=noise)
    assert result.returncode == 1 and b"not a WAV or FLAC stream" in result.stderr and result.stdout == b""
    wav = song["stem"].read_bytes()
    result = run_cli("run", "-", "-m", str(song["mix"]), "-o", "-", "--max-stdin", "100k", env=env, stdin=wav)
    assert result.returncode == 1 and b"more than 100,000 bytes" in result.stderr and result.stdout == b""
    assert _ours(spool) == []


# Memory


def _peak_rss_mb(*args: str, env: dict) -> float:
    process = subprocess.Popen([sys.executable, "-m", "stemclean", *args], env=env, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, process.stderr.read()
    return usage.ru_maxrss / 1024 * (1 / 1024 if sys.platform == "darwin" else 1)


def test_memory_does_not_grow_with_channels(tmp_path, cli_env):
    peaks = {}
    for channels in (2, 16):
        stem, mix = tone_mix(6.0, channels=channels)
        sf.write(tmp_path / f"vocals{channels}.wav", stem, 44100, subtype="FLOAT")
        sf.write(tmp_path / f"mix{channels}.wav", mix, 44100, subtype="FLOAT")
        args = [str(tmp_path / f"vocals{channels}.wav"), "-m", str(tmp_path / f"mix{channels}.wav"), "-s", "1"]
        peaks[channels] = _peak_rss_mb("run", *args, "-o", str(tmp_path / f"out{channels}.wav"), env=cli_env)
    assert peaks[16] < 1.5 * peaks[2], peaks
    out, stem = sf.read(tmp_path / "out16.wav")[0], sf.read(tmp_path / "vocals16.wav")[0]
    assert out.shape == stem.shape and np.sum(out * stem) / np.sum(stem * stem) == pytest.approx(0.5, rel=1e-3)


def test_jobs_are_capped_by_the_machine(tmp_path, cli_env):
    separated, songs = demucs_tree(tmp_path, tracks=("song_a",))
    result = run_cli("batch", str(separated), "--mix-dir", str(songs), "-j", "512", "-s", "1", env=cli_env)
    assert result.returncode == 0, result.stderr
    message = next(line for line in result.stderr.decode().splitlines() if line.startswith("-j 512"))
    assert int(message.split("running ")[1].split()[0]) <= len(os.sched_getaffinity(0))


# No replacing behind the user's back


def test_a_file_that_appears_during_the_run_is_kept(tmp_path, long_song, cli_env):
    out = tmp_path / "out.wav"
    run = start_cli("run", long_song["stem"], "-m", long_song["mix"], "-o", out, "-s", "1", env=cli_env)
    assert _wait_until(_scratch_in(tmp_path))
    out.write_bytes(b"the user's own file")
    _, err = run.communicate(timeout=60)
    assert run.returncode == 1 and "appeared while cleaning" in err.decode() and str(out) in err.decode()
    assert out.read_bytes() == b"the user's own file" and _hidden(tmp_path) == []


def test_two_batches_on_one_tree_clean_each_stem_once(tmp_path, cli_env):
    separated, songs = demucs_tree(tmp_path, seconds=3.0)
    args = ("batch", separated, "--mix-dir", songs, "-s", "1", "--json")
    first, second = start_cli(*args, env=cli_env), start_cli(*args, env=cli_env)
    results = [_strict_json(p.communicate(timeout=120)[0]) for p in (first, second)]
    assert first.returncode == second.returncode == 0
    cleaned = [r["stem"] for batch in results for r in batch if r["status"] == "cleaned"]
    assert sorted(cleaned) == sorted(str(p) for p in separated.rglob("*.wav") if "_clean" not in p.name)
    assert _hidden(separated) == []


# Start level


def _level(stem: Path, mix: Path, env: dict, *extra: str) -> dict:
    result = run_cli("run", str(stem), "-m", str(mix), "-o", "-", "--json", *extra, env=env)
    assert result.returncode == 0, result.stderr
    summary = result.stderr.decode().strip().splitlines()[-1]  # after any progress lines
    return {**_strict_json(summary), "audio": sf.read(io.BytesIO(result.stdout))[0]}


def test_start_level_survives_8_bit_files_and_single_outliers(tmp_path, cli_env):
    mix = EXAMPLES / "mix.flac"
    damaged, rate = sf.read(EXAMPLES / "vocals.flac")
    true, _ = sf.read(EXAMPLES / "vocals_true.flac")
    sf.write(tmp_path / "vocals8.wav", damaged, rate, subtype="PCM_U8")
    sf.write(tmp_path / "true8.wav", true, rate, subtype="PCM_U8")
    spiked = damaged.copy()
    spiked[200_000, 0] = 100.0
    sf.write(tmp_path / "spiked.wav", spiked, rate, subtype="FLOAT")
    reference = _level(EXAMPLES / "vocals.flac", mix, cli_env)["start_level"]
    assert reference > 0.8
    for name in ("vocals8.wav", "spiked.wav"):
        assert _level(tmp_path / name, mix, cli_env)["start_level"] == pytest.approx(reference, abs=0.1), name
    for clean in (EXAMPLES / "vocals_true.flac", tmp_path / "true8.wav"):
        summary = _level(clean, mix, cli_env)
        assert summary["start_level"] < 0.02 and summary["steps"] == 0
        assert np.array_equal(summary["audio"], sf.read(clean)[0])  # passed through unchanged


def test_a_rescaled_output_is_reported_as_rescaled(tmp_path, cli_env):
    true, rate = sf.read(EXAMPLES / "vocals_true.flac")
    hot = tmp_path / "hot_vocals.wav"
    sf.write(hot, true * 28.7 / np.max(np.abs(true)), rate, subtype="FLOAT")
    result = run_cli("run", str(hot), "-m", str(EXAMPLES / "mix.flac"), "-o", str(tmp_path / "o.wav"), env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "turned down 29.2 dB" in result.stderr.decode() and "unchanged" not in result.stderr.decode()
    assert np.max(np.abs(sf.read(tmp_path / "o.wav")[0])) == pytest.approx(1.0, abs=1e-6)


# Messages


def test_every_error_names_the_file_and_the_cause(tmp_path, song, cli_env):
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    flac = tmp_path / "cut.flac"
    sf.write(flac, sf.read(song["stem"])[0], 44100)
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2] + bytes(2000))
    mix = str(song["mix"])
    cases = [
        (["run", str(loop), "-m", mix], f"symlink loop at {loop}"),
        (["run", str(flac), "-m", mix, "-o", str(tmp_path / "o.flac")], f"{flac}: cannot be decoded"),
    ]
    for args, words in cases:
        result = run_cli(*args, env=cli_env)
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and words in lines[0], (args, result.stderr)
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [sys.executable, "-m", "stemclean", "run", str(song["stem"]), "-m", mix, "-o", "-"],
            stdout=full,
            stderr=subprocess.PIPE,
            env=cli_env,
        )
    assert result.returncode == 1 and b"no space left on the device holding <stdout>" in result.stderr
    assert b"Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_folder_is_named_not_the_temporary_file(tmp_path, song, cli_env):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    result = run_cli("run", str(song["stem"]), "-m", str(song["mix"]), "-o", str(folder / "o.wav"), env=cli_env)
    folder.chmod(0o755)
    assert result.returncode == 1 and f"permission denied: {folder}" in result.stderr.decode()
    assert b".tmp" not in result.stderr


def test_info_with_a_broken_card_is_one_line(tmp_path, gain_model, cli_env):
    gain_model.with_suffix(".json").write_text('{"name": "stemclean-test",')
    result = run_cli("info", "--model", str(gain_model), env=cli_env)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "model card is not valid JSON" in lines[0], result.stderr


def test_strength_zero_says_so(song, cli_env, tmp_path):
    result = run_cli("run", str(song["stem"]), "-m", str(song["mix"]), "-o", str(tmp_path / "o.wav"), "-s", "2",
                     "--strength", "0", env=cli_env)
    assert result.returncode == 0 and "strength 0; copied unchanged" in result.stderr.decode(), result.stderr
    assert "step(s)" not in result.stderr.decode()
