"""End to end with the shipped model and examples: README's first run, the quality tests, and "do no harm".

The quality tests hold the model (``$STEMCLEAN_MODEL`` if set, else the shipped one) to the gains that
``python -m benchmarks.example`` recorded for the shipped model in benchmarks/results/example.json, less a tolerance,
and never below a floor that a model doing nothing cannot reach. A last test swaps in a graph that returns the stem
unchanged and requires the quality tests to fail. These run once the shipped model and ``examples/`` exist; until then
they are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, run_readme_line, write_gain_model

import stemclean
from benchmarks import example
from stemclean import engine
from stemclean.spectral import SAMPLE_RATE
from stemclean.train import metrics

MODEL = engine.DEFAULT_MODEL
EXAMPLES = REPO / "examples"
RECORD = REPO / "benchmarks" / "results" / example.RESULTS_NAME
# The same model on the same clip scores within a few thousandths of a dB on another CPU (onnxruntime's and BSS
# Eval's float rounding); this leaves room for that and nothing more.
TOLERANCE_DB = 0.05
# Floors that hold whatever the record says: a model must do at least this much to count as cleaning. An identity
# graph scores exactly 0 dB on both, so it fails them by a margin no tolerance covers.
MIN_EXAMPLE_GAIN_DB = 0.5  # SI-SDR gain on the example's real Spleeter vocals
MIN_BLEED_FALL_DB = 3.0  # SIR gain on the generated bleed case: the bleed's power at least halved
QUALITY_TESTS = ("test_the_example_comes_out_closer_to_the_true_vocals", "test_generated_bleed_falls")
# Every quality test's failure message says this, so the identity check can tell a missed bar from a broken test.
MISSED = "below the bar"

needs_model = pytest.mark.skipif(not MODEL.is_file(), reason=f"{MODEL} not shipped yet")


def recorded_gain(source: str, key: str) -> float:
    """The shipped model's gain on one example case (``key``: si_sdr or sir), as benchmarks.example recorded it."""
    return example.gains(json.loads(RECORD.read_text()), source)[key]


def misses_its_own_record(source: str, key: str, floor: float) -> pytest.MarkDecorator:
    """Where the shipped model's own record is below a floor (issue 20: v1 on both cases, v2 on the example's Spleeter
    vocals), its test is expected to fail, strictly, so the suite says so rather than passing or going red. Any other
    model under test ($STEMCLEAN_MODEL, the identity graph below included) is held to the bar as written."""
    recorded = recorded_gain(source, key) if RECORD.is_file() else floor
    return pytest.mark.xfail(engine.default_model_path() == MODEL and recorded < floor, strict=True,
                             reason=f"the shipped model's recorded {source} {key} gain is below {floor:g} dB (issue 20)")


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


def _bar(source: str, key: str, floor: float) -> tuple[float, str]:
    """The least gain a model must reach on one example case, and where that number comes from."""
    recorded = recorded_gain(source, key)
    return max(recorded - TOLERANCE_DB, floor), (f"the shipped model's recorded {recorded:+.2f} dB in {RECORD.name} "
                                                  f"less {TOLERANCE_DB:g}, and at least {floor:g} dB")


def _clean(case) -> np.ndarray:
    """``case``'s stem cleaned at default settings by ``$STEMCLEAN_MODEL`` or the shipped model, (channels, samples)."""
    return stemclean.clean(case.stem.T, case.mix.T, SAMPLE_RATE, stem_type=case.stem_type,
                           model=engine.default_model_path(), device="cpu").T


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
@needs_examples
@misses_its_own_record("spleeter", "si_sdr", MIN_EXAMPLE_GAIN_DB)
def test_the_example_comes_out_closer_to_the_true_vocals():
    """The example's real Spleeter vocals, cleaned as README's first run cleans them, are closer to
    ``vocals_true.flac`` than the input, by the recorded gain."""
    case = next(c for c in example.cases() if c.source == "spleeter")
    gain = metrics.si_sdr(_clean(case), case.truth) - metrics.si_sdr(case.stem, case.truth)
    bar, source = _bar("spleeter", "si_sdr", MIN_EXAMPLE_GAIN_DB)
    assert gain >= bar, f"the example's vocals gained {gain:+.2f} dB SI-SDR, {MISSED} of {bar:.2f} dB ({source})"


@needs_model
@needs_examples
@misses_its_own_record("bleed", "sir", MIN_BLEED_FALL_DB)
def test_generated_bleed_falls():
    """The example's true vocals with its accompaniment leaking in at -12 dB: the bleed falls by the recorded SIR gain,
    and the stem comes out closer to the truth, not traded for damage."""
    case = next(c for c in example.cases() if c.source == "bleed")
    cleaned = _clean(case)
    before = metrics.bss_metrics(case.stem, case.truth, case.mix)["sir"]
    fall = metrics.bss_metrics(cleaned, case.truth, case.mix)["sir"] - before
    bar, source = _bar("bleed", "sir", MIN_BLEED_FALL_DB)
    assert fall >= bar, f"the bleed fell by {fall:.2f} dB (SIR), {MISSED} of {bar:.2f} dB ({source})"
    change = metrics.si_sdr(cleaned, case.truth) - metrics.si_sdr(case.stem, case.truth)
    assert change > 0, f"SI-SDR changed by {change:+.2f} dB, {MISSED} of 0 dB: the bleed went with the voice"


@needs_model
def test_the_recorded_bar_is_the_shipped_models():
    record = json.loads(RECORD.read_text())
    assert record["model_sha256"] == example.sha256(MODEL), (
        f"{RECORD.name} was measured with another model than {MODEL.name}: run python -m benchmarks.example")


@needs_model
@needs_examples
def test_an_identity_model_fails_the_quality_tests(tmp_path):
    """The quality tests, run with a graph that returns the stem unchanged in the shipped model's place, must each
    fail, and on their bar rather than on an error."""
    identity = write_gain_model(tmp_path / "identity.onnx", stem_gain=1.0)
    report = tmp_path / "report.xml"
    selected = [f"{__file__}::{name}" for name in QUALITY_TESTS]
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                    *selected], cwd=REPO, capture_output=True,
                   env={**os.environ, engine.MODEL_ENV: str(identity), "PYTHONPATH": str(REPO)})
    outcomes = {case.get("name"): case.find("failure") for case in ElementTree.parse(report).iter("testcase")}
    assert set(outcomes) == set(QUALITY_TESTS)
    for name, failure in outcomes.items():
        assert failure is not None, f"{name} passed with an identity model"
        assert MISSED in failure.get("message", ""), f"{name} failed for another reason: {failure.get('message')}"


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
