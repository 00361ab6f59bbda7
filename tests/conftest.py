"""Shared fixtures: real audio written to tmp_path, and tiny ONNX graphs with the model's exact interface.

The graphs compute ``clean = stem_gain[type] * stem + mix_gain[type] * mix`` on the STFT channels. They stand in for
the trained model so the engine's mechanics (lengths, rates, channels, chunk seams, steps, strength) can be measured
against a result known in closed form.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
from onnx import TensorProto, helper

from stemclean import spectral
from stemclean.stems import STEM_TYPES

REPO = Path(__file__).resolve().parent.parent


def write_graph(path: Path, nodes: list, name: str, **metadata: str) -> Path:
    """Save ``nodes`` (reading ``stem``, ``mix``, ``level``, ``stem_type``; writing ``clean``) as a stemclean model."""
    spec = ["B", 2, spectral.N_BINS, "T"]
    graph = helper.make_graph(
        nodes,
        name,
        [
            helper.make_tensor_value_info("stem", TensorProto.FLOAT, spec),
            helper.make_tensor_value_info("mix", TensorProto.FLOAT, spec),
            helper.make_tensor_value_info("level", TensorProto.FLOAT, ["B"]),
            helper.make_tensor_value_info("stem_type", TensorProto.INT64, ["B"]),
        ],
        [helper.make_tensor_value_info("clean", TensorProto.FLOAT, spec)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    props = {
        "sample_rate": str(spectral.SAMPLE_RATE),
        "n_fft": str(spectral.N_FFT),
        "hop_length": str(spectral.HOP_LENGTH),
        "stem_types": json.dumps(list(STEM_TYPES)),
        "schedule": json.dumps({"sdr_at_zero": 40.0, "sdr_at_one": 0.0}),
        "version": "test-gain-graph",
        "commit": "none",
        **metadata,
    }
    helper.set_model_props(model, props)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def constant(name: str, values, dtype=TensorProto.FLOAT) -> onnx.NodeProto:
    values = np.asarray(values)
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, dtype, values.shape, values.ravel()))


def write_gain_model(path: Path, stem_gain=1.0, mix_gain=0.0, **metadata: str) -> Path:
    """Write a graph computing ``stem_gain * stem + mix_gain * mix``.

    Each gain may be a number or a list with one value per stem type, so tests can see which type the engine passed.
    """
    n = len(STEM_TYPES)
    nodes = [constant("axes", [1, 2, 3], TensorProto.INT64)]
    for name, gain in (("stem_gains", stem_gain), ("mix_gains", mix_gain)):
        nodes += [
            constant(name, np.broadcast_to(np.asarray(gain, np.float32), (n,))),
            helper.make_node("Gather", [name, "stem_type"], [f"{name}_b"]),
            helper.make_node("Unsqueeze", [f"{name}_b", "axes"], [f"{name}_4d"]),
        ]
    nodes += [
        helper.make_node("Mul", ["stem", "stem_gains_4d"], ["stem_part"]),
        helper.make_node("Mul", ["mix", "mix_gains_4d"], ["mix_part"]),
        helper.make_node("Add", ["stem_part", "mix_part"], ["clean"]),
    ]
    return write_graph(path, nodes, "stemclean_test_gain", **metadata)


def tone_mix(seconds: float, rate: int = 44100, channels: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (stem, mix) pair in soundfile layout: a 440 Hz tone with vibrato as the stem, plus noise bleed in the mix."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t + 3 * np.sin(2 * np.pi * 5 * t))
    stem = np.stack([tone * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)
    other = (0.1 * rng.standard_normal((len(t), channels))).astype(np.float32)
    bleed = 0.3 * other
    return (stem + bleed).astype(np.float32), (stem + other).astype(np.float32)


@pytest.fixture
def gain_model(tmp_path) -> Path:
    """A graph that halves its input stem, so one step yields 0.5 x stem."""
    return write_gain_model(tmp_path / "half.onnx", stem_gain=0.5)


@pytest.fixture
def mix_model(tmp_path) -> Path:
    """A graph that returns the mix, so the output shows how the engine aligned the mix to the stem."""
    return write_gain_model(tmp_path / "mix.onnx", stem_gain=0.0, mix_gain=1.0)


def write_song(folder: Path, seconds: float) -> dict[str, Path]:
    """A stereo stem (``vocals.wav``) and its mix (``mix.wav``) from :func:`tone_mix` on disk, 44.1 kHz float."""
    stem, mix = tone_mix(seconds)
    paths = {"stem": folder / "vocals.wav", "mix": folder / "mix.wav"}
    sf.write(paths["stem"], stem, 44100, subtype="FLOAT")
    sf.write(paths["mix"], mix, 44100, subtype="FLOAT")
    return paths


@pytest.fixture
def song(tmp_path) -> dict[str, Path]:
    """A 3 s song from :func:`write_song`."""
    return write_song(tmp_path, 3.0)


@pytest.fixture
def cli_env(monkeypatch, gain_model) -> dict[str, str]:
    """Environment for real subprocesses: the gain graph as the default model, the repo importable."""
    monkeypatch.setenv("STEMCLEAN_MODEL", str(gain_model))
    return {**os.environ, "STEMCLEAN_MODEL": str(gain_model), "PYTHONPATH": str(REPO)}


def run_cli(*args: str, env: dict, stdin: bytes | None = None, **options):
    """Run ``python -m stemclean`` as a real process, the way a shell pipe would (``options`` go to subprocess.run)."""
    command = [sys.executable, "-m", "stemclean", *args]
    return subprocess.run(command, input=stdin, capture_output=True, env=env, **options)


def readme_line(start: str) -> str:
    """The README's own command line that begins with ``start``, its trailing ``#`` comment dropped."""
    lines = (REPO / "README.md").read_text().splitlines()
    matches = [line.split(" #")[0].strip() for line in lines if line.startswith(start)]
    assert len(matches) == 1, f"README.md should hold exactly one command starting {start!r}, found {matches}"
    return matches[0]


def run_readme_line(start: str, cwd: Path, env: dict, bin_dir: Path | None = None) -> subprocess.CompletedProcess:
    """Run the README's line that begins with ``start`` through bash, exactly as written (pipes included).

    ``stemclean`` on the line is the one in ``bin_dir`` (an installed environment's ``bin``), or by default a stand-in
    for this checkout's ``python -m stemclean``.
    """
    with tempfile.TemporaryDirectory(prefix="stemclean-bin-") as shim_dir:
        if bin_dir is None:
            bin_dir = Path(shim_dir)
            shim = bin_dir / "stemclean"
            shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m stemclean "$@"\n')
            shim.chmod(0o755)
            env = {**env, "PYTHONPATH": str(REPO)}
        env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}"}
        line = readme_line(start)
        return subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=cwd, env=env, capture_output=True, text=True)


def start_cli(*args: str, env: dict, **popen) -> subprocess.Popen:
    """Start ``python -m stemclean`` in its own process group, as a shell starts a foreground job."""
    command = [sys.executable, "-m", "stemclean", *map(str, args)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    return subprocess.Popen(command, env=env, start_new_session=True, **pipes, **popen)


def demucs_tree(root: Path, tracks=("song_a", "song_b"), seconds: float = 1.0, rate: int = 44100) -> tuple[Path, Path]:
    """root/separated/htdemucs/<track>/{vocals,drums,bass,other}.wav and root/songs/<track>.wav as the mixes."""
    for seed, track in enumerate(tracks):
        stems = [tone_mix(seconds, rate, seed=seed * 4 + i)[0] for i in range(4)]
        for name, data in zip(("vocals", "drums", "bass", "other"), stems):
            path = root / "separated" / "htdemucs" / track / f"{name}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, data, rate, subtype="FLOAT")
        (root / "songs").mkdir(exist_ok=True)
        sf.write(root / "songs" / f"{track}.wav", np.sum(stems, axis=0), rate, subtype="FLOAT")
    return root / "separated", root / "songs"
