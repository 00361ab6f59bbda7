"""End to end with the shipped model and examples: README's first run, and "do no harm" on a clean stem.

These run once the shipped model and ``examples/`` exist; until then they are skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, run_readme_line

import stemclean
from stemclean import engine

MODEL = engine.DEFAULT_MODEL
EXAMPLES = REPO / "examples"
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason=f"{MODEL} not shipped yet")
needs_examples = pytest.mark.skipif(
    not (EXAMPLES / "vocals.flac").is_file() or not (EXAMPLES / "mix.flac").is_file(), reason="examples not made yet"
)


def copy_example_inputs(folder: Path) -> Path:
    """The README first run's inputs in ``folder/examples``; not its output, which a user's own first run may have left
    in the repository's ``examples/``."""
    (folder / "examples").mkdir()
    for name in ("vocals.flac", "mix.flac"):
        shutil.copy(EXAMPLES / name, folder / "examples" / name)
    return folder / "examples" / "vocals_clean.flac"


def check_first_run_output(output: Path) -> None:
    stem, rate = sf.read(EXAMPLES / "vocals.flac")
    cleaned, out_rate = sf.read(output)
    assert out_rate == rate and cleaned.shape == stem.shape and np.isfinite(cleaned).all()
    assert np.max(np.abs(cleaned - stem)) > 1e-3, "the example's vocals have bleed, so cleaning must change them"


@needs_model
@needs_examples
def test_readme_first_run(tmp_path):
    """README's first run, as written, in a copy of the examples, with the default (shipped) model."""
    output = copy_example_inputs(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != engine.MODEL_ENV}
    done = run_readme_line("stemclean run examples/", tmp_path, env)
    assert done.returncode == 0, done.stderr
    check_first_run_output(output)


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
