"""End to end with the shipped model and examples: README's first run, and "do no harm" on a clean stem.

These run once ``models/stemclean-v1.onnx`` and ``examples/`` exist; until then they are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO

import stemclean
from stemclean import engine

MODEL = engine.DEFAULT_MODEL
EXAMPLES = REPO / "examples"
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason=f"{MODEL} not shipped yet")
needs_examples = pytest.mark.skipif(
    not (EXAMPLES / "vocals.flac").is_file() or not (EXAMPLES / "mix.flac").is_file(), reason="examples not made yet"
)


@needs_model
@needs_examples
def test_readme_first_run(tmp_path):
    """`stemclean run examples/vocals.flac --mix examples/mix.flac`, as README says, in a copy of the examples."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    env = {k: v for k, v in os.environ.items() if k != engine.MODEL_ENV}
    command = [sys.executable, "-m", "stemclean", "run", "examples/vocals.flac", "--mix", "examples/mix.flac"]
    done = subprocess.run(command, cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    stem, rate = sf.read(EXAMPLES / "vocals.flac")
    cleaned, out_rate = sf.read(tmp_path / "examples" / "vocals_clean.flac")
    assert out_rate == rate and cleaned.shape == stem.shape and np.isfinite(cleaned).all()


@needs_model
def test_a_clean_stem_comes_out_nearly_unchanged():
    rng = np.random.default_rng(3)
    t = np.arange(6 * 44100) / 44100
    true_stem = np.stack([0.3 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))] * 2, axis=1)
    mix = true_stem + 0.1 * rng.standard_normal(true_stem.shape)
    for steps in ("auto", 1):
        out = stemclean.clean(true_stem, mix, 44100, steps=steps, stem_type="vocals", model=MODEL, device="cpu")
        change_db = 10 * np.log10(np.sum((out - true_stem) ** 2) / np.sum(true_stem**2))
        assert change_db < -20, f"steps={steps}: a clean stem changed by {change_db:.1f} dB"
