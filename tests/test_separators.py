"""Real Spleeter pairs: the worker runs the pretrained model (it separates a tiny render better than doing nothing, and
cuts above ~11 kHz as Spleeter does), pairs line up with the corpus, finished songs are skipped, and a missing
checkpoint fails loudly. Skipped where .venv-spleeter has not been made (scripts/setup_spleeter_venv.sh)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf

from stemclean.spectral import SAMPLE_RATE
from stemclean.train import corpus, separators

needs_spleeter = pytest.mark.skipif(not (separators.DEFAULT_VENV / "bin" / "python").exists(),
                                    reason=".venv-spleeter not made (scripts/setup_spleeter_venv.sh)")


def _si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    reference, estimate = reference.ravel().astype(np.float64), estimate.ravel().astype(np.float64)
    target = np.dot(estimate, reference) / np.dot(reference, reference) * reference
    return float(10 * np.log10(np.sum(target**2) / np.sum((estimate - target) ** 2)))


def test_missing_venv_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="setup_spleeter_venv.sh"):
        separators.spleeter(np.zeros((2, 100), np.float32), venv=tmp_path / "nowhere")


@pytest.mark.slow  # two TensorFlow start-ups: about a minute on 2 cores
@needs_spleeter
def test_spleeter_pairs_from_a_tiny_render(tmp_path):
    song = "openmsx-5432gone_redfarn"
    entries = corpus.build(tmp_path / "corpus", seed=0, chorales=0, seconds=8.0, only=[song])
    split = entries[song]["split"]
    assert separators.build_pairs(tmp_path / "corpus", tmp_path / "spleeter") == 1
    folder = tmp_path / "corpus" / split / song
    mixture = sf.read(folder / "mixture.wav", dtype="float32")[0]
    vocals = sf.read(folder / "vocals.wav", dtype="float32")[0]
    estimate = {name: sf.read(tmp_path / "spleeter" / split / song / f"{name}.wav", dtype="float32")[0]
                for name in separators.SPLEETER_STEMS}
    assert all(e.shape == mixture.shape for e in estimate.values())
    # pretrained weights separate the sung line; random weights would not beat the mixture itself
    assert _si_sdr(vocals, estimate["vocals"]) > _si_sdr(vocals, mixture) + 3.0
    assert _si_sdr(mixture - vocals, estimate["accompaniment"]) > _si_sdr(mixture - vocals, mixture) + 3.0
    spectrum = np.abs(np.fft.rfft(estimate["accompaniment"][:, 0]))
    freqs = np.fft.rfftfreq(mixture.shape[0], 1 / SAMPLE_RATE)
    assert np.sum(spectrum[freqs > 12000] ** 2) < 1e-3 * np.sum(spectrum[freqs < 11000] ** 2)
    files = separators.pair_files(tmp_path / "spleeter", split, song)
    before = [p.stat().st_mtime_ns for p in files]
    assert separators.build_pairs(tmp_path / "corpus", tmp_path / "spleeter") == 0
    assert [p.stat().st_mtime_ns for p in files] == before


@needs_spleeter
def test_worker_refuses_to_run_without_the_checkpoint(tmp_path):
    fake = tmp_path / "spleeter"
    (fake / "pretrained_models" / "2stems").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    result = subprocess.run([str(separators.venv_python()), str(separators.WORKER), "--check"],
                            check=False, capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode != 0
    assert "checkpoint missing" in result.stderr
