"""The quality benchmark end to end on a tiny synthetic corpus: cases, methods, metrics, plots and the page section."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import typer
from conftest import write_gain_model

from benchmarks import bands, calibrate, jobs, quality, report
from stemclean.spectral import SAMPLE_RATE
from stemclean.train import metrics, validate


def _fake_spleeter(corpus, root):
    """Spleeter-like outputs: each target with a third of the rest bleeding in, and nothing above 11 kHz."""
    song = corpus / "test" / "synthetic-0"
    stems = {n: sf.read(song / f"{n}.wav", dtype="float32")[0] for n in quality.CORPUS_STEMS}
    accompaniment = stems["drums"] + stems["bass"] + stems["other"]
    folder = root / "test" / "synthetic-0"
    folder.mkdir(parents=True)
    for name, target, rest in (("vocals", stems["vocals"], accompaniment), ("accompaniment", accompaniment,
                                                                            stems["vocals"])):
        sf.write(folder / f"{name}.wav", quality.spleeter_like(target, rest), SAMPLE_RATE, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quality")
    corpus = quality.synthetic_corpus(tmp / "corpus", songs=1, seconds=2.5)
    spleeter = _fake_spleeter(corpus, tmp / "spleeter")
    model = write_gain_model(tmp / "pass.onnx", stem_gain=1.0)
    results = quality.run(corpus, spleeter, "test", 1.0, (0.5,), 0, None, model, ["auto"], tmp / "img")
    return results, tmp


def _summary(results, source, method, stem="all"):
    return next(s for s in results["summary"] if (s["source"], s["stem"], s["method"]) == (source, stem, method))


def test_every_source_and_method_is_scored(smoke):
    results, _ = smoke
    assert {s["source"] for s in results["summary"]} == {"spleeter", "bleed", "ladder t=0.5", "clean"}
    methods = {*quality.BASELINE_NAMES, "stemclean@auto"}
    assert {r["method"] for r in results["rows"]} == methods
    assert len(results["rows"]) == (2 + len(validate.BLEED_ROWS) + 4 + 4) * len(methods)


def test_without_baselines_only_the_input_and_stemclean_are_scored(smoke):
    _, tmp = smoke
    corpus, spleeter = tmp / "corpus", tmp / "spleeter"
    model = write_gain_model(tmp / "pass-only.onnx", stem_gain=1.0)
    results = quality.run(corpus, spleeter, "test", 1.0, (0.5,), 0, None, model, ["auto"], tmp / "img-only",
                          ("spleeter",), baseline_names=("identity",))
    assert {r["method"] for r in results["rows"]} == {"identity", "stemclean@auto"}
    assert results["config"]["baselines"] == ["identity"]
    passed = _summary(results, "spleeter", "stemclean@auto")
    assert passed["delta_si_sdr"] == pytest.approx(0.0, abs=0.05), "a pass-through model changes nothing"


def test_inputs_score_what_they_were_made_to(smoke):
    results, _ = smoke
    # the ladder is calibrated on the excerpt it degrades, and a clean stem is a perfect copy
    assert _summary(results, "ladder t=0.5", "identity")["si_sdr"] == pytest.approx(20.0, abs=0.1)
    assert _summary(results, "clean", "identity")["si_sdr"] == pytest.approx(metrics.CLAMP_DB)
    spleeter = _summary(results, "spleeter", "identity", "vocals")
    assert 0.0 < spleeter["si_sdr"] < 20.0
    # the accompaniment leaks into the vocals at -12 dB: the input's SIR says so, and lsdebleed takes most of it out
    bled = _summary(results, "bleed", "identity", "vocals")
    assert bled["sir"] == pytest.approx(12.0, abs=0.5)
    assert _summary(results, "bleed", "lsdebleed", "vocals")["delta_si_sdr"] > 6.0


def test_bleed_rows_leak_the_rest_of_the_mix_at_their_level_and_delay():
    rng = np.random.default_rng(4)
    truth = (0.1 * rng.standard_normal((2, SAMPLE_RATE))).astype(np.float32)
    mix = truth + (0.3 * rng.standard_normal((2, SAMPLE_RATE))).astype(np.float32)
    source = (mix - truth).astype(np.float64)
    for name, _, below_db, delay_s, cutoff_hz in validate.BLEED_ROWS:
        leak = (quality.add_bleed(truth, mix, (name, "", below_db, delay_s, cutoff_hz)) - truth).astype(np.float64)
        level = 10 * np.log10(np.sum(leak**2) / np.sum(truth.astype(np.float64) ** 2))
        assert level == pytest.approx(-below_db, abs=0.5), name  # set on the STFT, so the waveform's is within tenths
        lags = np.arange(-200, 201)
        peak = lags[int(np.argmax([np.dot(np.roll(source[0], lag), leak[0]) for lag in lags]))]
        assert abs(peak - delay_s * SAMPLE_RATE) <= 2, name


def test_gap_closed_is_the_oracle_share_and_only_shown_where_the_oracle_beats_the_input():
    def rows(source, deltas):
        return [{"song": "s", "source": source, "stem": "vocals", "method": method, "si_sdr": 10.0 + delta,
                 "delta_si_sdr": delta, "sir": 0.0, "sar": 0.0, "mrstft": 0.0} for method, delta in deltas.items()]

    summary = quality.summarize(rows("spleeter", {"oracle": 4.0, "ours": 1.0, "worse": -2.0})
                                + rows("bleed", {"oracle": quality.GAP_MIN_HEADROOM_DB / 2, "ours": 3.0})
                                + rows("ladder t=0.75", {"oracle": -1.0, "ours": 0.5}))
    gap = {(s["source"], s["method"]): s["gap_closed"] for s in summary if s["stem"] == "vocals"}
    assert gap[("spleeter", "ours")] == pytest.approx(0.25) and gap[("spleeter", "worse")] == pytest.approx(-0.5)
    assert gap[("bleed", "ours")] is None and gap[("ladder t=0.75", "ours")] is None


def test_plots_and_page_section_are_written(smoke, tmp_path):
    results, tmp = smoke
    for name in ("methods", "spectrogram"):
        assert (report.ROOT / results["plots"][name]).stat().st_size > 10_000
    section = quality.markdown(results)
    assert section.startswith("## Quality") and "### Real separator output: Spleeter 2stems" in section
    titles = [line for line in section.splitlines() if line.startswith("### ")]
    assert titles[0].startswith("### Real separator output") and "the training distribution" in titles[2]
    assert "| vocals | oracle | 1 |" in section and "| vocals | lsdebleed | 1 |" in section
    saved = report.save_results("quality.json", results, tmp_path)
    assert saved.exists() and quality.markdown(json.loads(saved.read_text())) == section


def test_missing_corpus_is_one_clear_error(tmp_path):
    run = subprocess.run([sys.executable, "-m", "benchmarks.quality", "--corpus", str(tmp_path / "none")],
                         capture_output=True, text=True, cwd=report.ROOT)
    assert run.returncode == 2
    assert run.stderr.strip().startswith("error: no corpus manifest") and len(run.stderr.strip().splitlines()) == 1


def test_calibration_runs_end_to_end_and_renders_its_section(smoke, real_smoke):
    _, tmp = smoke
    results = calibrate.run(tmp / "corpus", tmp / "spleeter", "test", 2.0, 1.0, 0, None, tmp / "img",
                            levels=(0.0, 0.5, 1.0), speed_examples=5, real=real_smoke[1])
    assert [r["t"] for r in results["ladder"]] == [0.0, 0.5, 1.0]
    for row in results["ladder"]:
        assert row["si_sdr"] == pytest.approx(row["target"], abs=0.1)
    assert {p["stem"] for p in results["pairs"]} == {"vocals", "accompaniment"}
    for pair in results["pairs"]:  # the ladder at the fitted level reproduces the Spleeter output's SI-SDR
        assert pair["ladder"]["si_sdr"] == pytest.approx(pair["spleeter"]["si_sdr"], abs=0.2)
    assert results["speed"]["degrade_spec_per_s"] > 1.0
    # the real recordings' Spleeter pairs are compared with the ladder too, in their own table and plots
    assert [(p["song"], p["stem"]) for p in results["real_pairs"]] == [("synthetic-0", "vocals"),
                                                                      ("synthetic-0", "accompaniment")]
    for pair in results["real_pairs"]:
        assert pair["ladder"]["si_sdr"] == pytest.approx(pair["spleeter"]["si_sdr"], abs=0.2)
    section = calibrate.markdown(json.loads(json.dumps(results)))
    assert "### Level t against measured quality" in section and "| 11–14 |" in section
    assert "at the fitted level: rendered songs" in section and "at the fitted level: real recordings" in section
    assert "calibration_real_error_spectrum.png" in section


def test_error_bands_locate_the_error():
    rng = np.random.default_rng(0)
    truth = (0.1 * rng.standard_normal((2, SAMPLE_RATE))).astype(np.float32)
    spectrum = np.fft.rfft(rng.standard_normal((2, SAMPLE_RATE)), axis=-1)
    hz = np.fft.rfftfreq(SAMPLE_RATE, 1.0 / SAMPLE_RATE)
    spectrum[:, (hz < 11500) | (hz > 13500)] = 0.0
    error = np.fft.irfft(spectrum, n=SAMPLE_RATE, axis=-1)
    error *= np.sqrt(np.sum(truth**2) / np.sum(error**2) / 100.0)  # 20 dB below the truth
    bands = calibrate._error_bands((truth + error).astype(np.float32), truth)
    top = calibrate.BAND_EDGES_HZ.index(11000)
    assert bands[top] == pytest.approx(-20.0, abs=0.5)
    assert max(b for i, b in enumerate(bands) if i != top) < -40.0


def test_coherence_fit_recovers_a_linear_relation():
    levels = [{"t": t, "coherence": 0.05 + 0.7 * t} for t in calibrate.LEVELS]
    clean = [{"coherence": 0.0}, {"coherence": 0.04}]
    fit = calibrate.propose_coherence(levels, clean, [])
    assert fit["proposed"]["at_zero"] == pytest.approx(0.05)
    assert fit["proposed"]["at_one"] == pytest.approx(0.75)
    assert fit["proposed_errors"]["ladder_mae"] == pytest.approx(0.0, abs=1e-9)
    assert fit["proposed_errors"]["clean_below_floor"] == 1.0


def test_page_assembles_the_sections_whose_results_exist(smoke, tmp_path):
    results = _with_meta(smoke[0], command=report.command("benchmarks.quality"))
    report.save_results("quality.json", results, tmp_path)
    page = report.page(tmp_path)
    assert page.startswith("# Benchmarks") and report.REGENERATE in page
    assert quality.markdown(results).rstrip() in page
    assert "## Artifact ladder calibration" not in page


def test_model_hook_scores_stemclean_at_each_step_count(smoke, tmp_path):
    """A pass-through graph with the model's interface must score as the identity at every step count."""
    _, tmp = smoke
    model = write_gain_model(tmp_path / "pass.onnx", stem_gain=1.0)
    results = quality.run(tmp / "corpus", tmp / "none", "test", 1.0, (0.5,), 0, None, model, ["1", "2", "auto"],
                          tmp_path / "img", sources=("ladder",))
    assert {s["source"] for s in results["summary"]} == {"ladder t=0.5"}
    ladder = {s["method"]: s for s in results["summary"] if (s["source"], s["stem"]) == ("ladder t=0.5", "all")}
    for steps in ("1", "2", "auto"):
        assert ladder[f"stemclean@{steps}"]["si_sdr"] == pytest.approx(ladder["identity"]["si_sdr"], abs=0.1)
    assert (report.ROOT / results["plots"]["steps"]).exists()


def test_band_table_measures_what_the_separator_kept():
    """An estimate holding half the truth's amplitude below 1200 Hz and all of it above: kept -6 dB, then 0 dB."""
    rng = np.random.default_rng(1)
    truth = (0.1 * rng.standard_normal((2, 2 * SAMPLE_RATE))).astype(np.float32)
    spectrum = np.fft.rfft(truth, axis=-1)
    spectrum[:, np.fft.rfftfreq(truth.shape[1], 1.0 / SAMPLE_RATE) < 1200] *= 0.5
    estimate = np.fft.irfft(spectrum, n=truth.shape[1], axis=-1).astype(np.float32)
    energies = bands.band_energies(estimate, truth)
    kept_db = 20 * np.log10(np.abs(energies[:, 2]) / energies[:, 0].real)
    split = bands.BAND_EDGES_HZ.index(1200)
    assert kept_db[: split - 1] == pytest.approx(-6.02, abs=0.1)  # the band that straddles 1200 Hz is left out
    assert kept_db[split:] == pytest.approx(0.0, abs=0.1)
    error_db = 10 * np.log10(energies[:, 1].real / energies[:, 0].real)
    assert error_db[: split - 1] == pytest.approx(-6.02, abs=0.1)
    assert np.all(error_db[split + 1 :] < -30)  # STFT leakage reaches one band up


def test_band_table_runs_on_a_corpus_and_renders(smoke, tmp_path):
    """With a pass-through model, stemclean's band errors are the input's, and the fake Spleeter's 11 kHz cut shows."""
    _, tmp = smoke
    results = bands.run(tmp / "corpus", tmp / "spleeter", write_gain_model(tmp_path / "pass.onnx", stem_gain=1.0))
    rows = [r for r in results["rows"] if r["stem"] == "vocals"]
    assert len(rows) == len(bands.BAND_EDGES_HZ)  # one per band, then the total
    for row in rows:
        assert row["stemclean_error_db"] == pytest.approx(row["input_error_db"], abs=0.01)
    above_cut = next(r for r in rows if r["band_hz"] == [11000, 14000])
    assert above_cut["kept_db"] is None or above_cut["kept_db"] < -20
    assert "## Where the error lives" in bands.markdown(results)


def test_jobs_benchmark_times_each_setting_and_names_the_default(tmp_path):
    model = write_gain_model(tmp_path / "half.onnx", stem_gain=0.5)
    results = jobs.run_benchmark(model, [1], tracks=2, repeats=1)
    assert set(results["lengths"]) == {"1"}
    for runs in results["lengths"].values():
        assert {f"j{j}" for j in jobs.JOBS} == set(runs) and all(r["wall_s"] > 0 for r in runs.values())
    page = jobs.markdown(results)
    assert "| 1-second |" in page and f"The default is `-j {jobs.DEFAULT_JOBS}`" in page


def _with_meta(results, **meta):
    return {**results, "meta": {**results["meta"], **meta}}


def test_page_flags_sections_no_commit_or_command_reproduces(smoke, tmp_path):
    results, _ = smoke
    run_command = report.command("benchmarks.quality")
    report.save_results("quality.json", _with_meta(results, command=run_command, commit="abc1234", dirty=False),
                        tmp_path)
    assert report.WARNING_FLAG not in report.page(tmp_path)
    report.save_results("quality.json", _with_meta(results, command=run_command, commit="abc1234 with uncommitted "
                                                   "changes", dirty=True), tmp_path)
    assert "Not reproducible: measured from a tree with uncommitted changes" in report.page(tmp_path)
    report.save_results("quality.json", _with_meta(results, command=f"{run_command} --seconds 3", commit="abc1234",
                                                   dirty=False), tmp_path)
    assert f"not by `{run_command}`" in report.page(tmp_path)


def test_run_refuses_a_dirty_tree_before_measuring_anything(monkeypatch):
    monkeypatch.setattr(report, "uncommitted_changes", lambda: [" M stemclean/engine.py"])
    monkeypatch.setattr(report.subprocess, "run", lambda *a, **k: pytest.fail("a benchmark ran on a dirty tree"))
    with pytest.raises(typer.Exit) as refused:
        report.main(run=True, allow_dirty=False)
    assert refused.value.exit_code == 2


def test_readme_paragraph_is_rewritten_from_the_measurements(smoke, tmp_path):
    results, _ = smoke
    report.save_results("quality.json", results, tmp_path)
    start, end = report.README_MARKS
    readme = f"# tool\n\nclaims:\n{start}\nold numbers\n{end}\n\n## Usage\n"
    rewritten = report.readme_with_measurements(readme, tmp_path)
    assert "old numbers" not in rewritten and rewritten.endswith(f"{end}\n\n## Usage\n")
    vocals = _summary(results, "spleeter", "stemclean@auto", "vocals")["delta_si_sdr"]
    oracle = _summary(results, "spleeter", "oracle")["delta_si_sdr"]
    assert f"(vocals {vocals:+.2f} dB," in rewritten and f"the oracle mask gains {oracle:+.2f} dB" in rewritten
    assert report.readme_with_measurements("no marks here", tmp_path) == "no marks here"


@pytest.fixture(scope="module")
def real_smoke(tmp_path_factory):
    """The quality benchmark on a tiny corpus in the real-recordings layout (FLAC stems, no mixture file)."""
    tmp = tmp_path_factory.mktemp("quality-real")
    real = quality.synthetic_real_corpus(tmp / "real", songs=1, seconds=2.5)
    model = write_gain_model(tmp / "pass.onnx", stem_gain=1.0)
    return quality.run(real, tmp / "unused", "test", 1.0, (0.5,), 0, None, model, ["auto"], tmp / "img"), real


def test_real_recordings_get_the_same_rows_on_their_two_stems(real_smoke):
    results, _ = real_smoke
    assert results["config"]["corpus"] == "real" and results["config"]["songs"] == ["synthetic-0"]
    assert {s["source"] for s in results["summary"]} == {"spleeter", "bleed", "ladder t=0.5", "clean"}
    stems = {(s["source"], s["stem"]) for s in results["summary"] if s["stem"] != "all"}
    assert stems == {(source, stem) for source in ("spleeter", "bleed", "ladder t=0.5", "clean")
                     for stem in ("vocals", "accompaniment")}
    assert {r["method"] for r in results["rows"]} == {*quality.BASELINE_NAMES, "stemclean@auto"}
    # the bleed rows whose stem the corpus has: accompaniment into vocals and vocals into accompaniment
    assert results["config"]["bleeds"] == [row[0] for row in validate.BLEED_ROWS if row[1] != "other"]
    assert _summary(results, "bleed", "identity", "vocals")["sir"] == pytest.approx(12.0, abs=0.5)
    assert 0.0 < _summary(results, "spleeter", "identity", "vocals")["si_sdr"] < 20.0
    assert _summary(results, "clean", "identity")["si_sdr"] == pytest.approx(metrics.CLAMP_DB)
    assert quality.results_name("test", real=True) == "quality-real.json"
    assert quality.results_name("val", real=True) == "quality-real-val.json"
    section = quality.markdown(results)
    assert section.startswith("## Quality on real recordings\n") and "1 mixes" in section
    assert "### Real separator output: Spleeter 2stems" in section


def _with_gain(results, delta):
    """``results`` with stemclean@auto's pooled ΔSI-SDR on the Spleeter pairs set to ``delta``."""
    summary = [{**s, "delta_si_sdr": delta} if (s["source"], s["stem"], s["method"]) == ("spleeter", "all",
                                                                                        "stemclean@auto") else s
               for s in results["summary"]]
    return {**results, "summary": summary}


def test_realism_ratio_divides_the_real_gain_by_the_rendered_gain(smoke, real_smoke):
    rendered, real = smoke[0], real_smoke[0]
    assert quality.realism_ratio(_with_gain(real, 0.3), _with_gain(rendered, 0.4)) == pytest.approx(0.75)
    assert quality.realism_ratio(_with_gain(real, -0.2), _with_gain(rendered, 0.5)) == pytest.approx(-0.4)
    assert quality.realism_ratio(_with_gain(real, 0.3), _with_gain(rendered, -0.1)) is None
    assert quality.realism_ratio(real, {"summary": []}) is None


def test_page_shows_the_real_recordings_section_and_the_realism_ratio(smoke, real_smoke, tmp_path):
    report.save_results("quality.json", _with_gain(smoke[0], 0.4), tmp_path)
    report.save_results("quality-real.json", _with_gain(real_smoke[0], 0.1), tmp_path)
    page = report.page(tmp_path)
    real_at = page.index("## Quality on real recordings")
    ratio_at = page.index("### Realism ratio")
    assert page.index("## Quality\n") < real_at < ratio_at
    assert "**0.25** (below the goal of 0.75)" in page[ratio_at:]
    assert "Real recordings: vocals" in page[ratio_at:] and "all +0.10 dB" in page[ratio_at:]
    assert "the same model (SHA-256" in page[ratio_at:]  # both runs scored the same pass-through graph
    report.save_results("quality-real.json", _with_gain(real_smoke[0], 0.32), tmp_path)
    assert "**0.80** (meets the goal of 0.75)" in report.page(tmp_path)
    (tmp_path / "quality.json").unlink()
    assert "### Realism ratio" not in report.page(tmp_path)


def test_readme_paragraph_adds_the_real_recordings_when_measured(smoke, real_smoke, tmp_path):
    results, _ = smoke
    real, _ = real_smoke
    report.save_results("quality.json", results, tmp_path)
    start, end = report.README_MARKS
    readme = f"{start}\n{end}\n"
    assert "real recordings" not in report.readme_with_measurements(readme, tmp_path)
    report.save_results(report.REALISM[0], real, tmp_path)
    rewritten = report.readme_with_measurements(readme, tmp_path)
    real_vocals = _summary(real, "spleeter", "stemclean@auto", "vocals")["delta_si_sdr"]
    assert "for 1 test mixes of real recordings" in rewritten
    assert rewritten.count(f"(vocals {real_vocals:+.2f} dB,") >= 1


def test_band_table_reads_the_real_recordings_layout(real_smoke, tmp_path):
    _, real = real_smoke
    model = write_gain_model(tmp_path / "pass.onnx", stem_gain=1.0)
    results = bands.run(real, tmp_path / "unused", model, split="test")
    assert results["corpus"] == "real" and results["songs"] == ["synthetic-0"]
    totals = {r["stem"]: r for r in results["rows"] if r["band_hz"] is None}
    assert set(totals) == {"vocals", "accompaniment"}
    for row in totals.values():  # a model that passes the stem through leaves every band's error as it was
        assert row["stemclean_error_db"] == pytest.approx(row["input_error_db"], abs=0.05)
        assert row["input_error_db"] < -1.0  # the stand-in separator's bleed and missing top band are errors


def test_a_stopped_run_resumes_at_the_next_case_with_the_same_rows(smoke, tmp_path, monkeypatch):
    results, tmp = smoke
    monkeypatch.setattr(report, "provenance", lambda: {"commit": "abc1234", "command": "python -m benchmarks.quality",
                                                       "dirty": False})
    scored = []
    real_score = quality.score

    def counting_score(case, methods):
        scored.append((case.source, case.stem_type))
        if len(scored) == 3 and not resumed:
            raise KeyboardInterrupt  # the session ends part way through the third case
        return real_score(case, methods)

    monkeypatch.setattr(quality, "score", counting_score)
    sources = ("spleeter", "bleed")  # five cases are enough, and each one costs seconds
    args = (tmp / "corpus", tmp / "spleeter", "test", 1.0, (0.5,), 0, None, tmp / "pass.onnx", ["auto"],
            tmp_path / "img", sources)
    resumed = False
    with pytest.raises(KeyboardInterrupt):
        quality.run(*args, partial=report.Partial("quality.json", tmp_path))
    with next((tmp_path / ".partial").glob("*.jsonl")).open("a") as file:
        file.write('{"case": ["cut short')  # a line the kill left unfinished
    resumed, scored[:] = True, []
    partial = report.Partial("quality.json", tmp_path)
    again = quality.run(*args, partial=partial)
    assert scored[0] == ("spleeter", "vocals"), "the spectrogram's case is scored again for its audio"
    assert len(scored) == len(partial.done) - 1, "of the two cases the stopped run finished, only the shown one reruns"

    def scores(rows):  # the metrics, not how long each method took
        return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]

    assert scores(again["rows"]) == scores([row for row in results["rows"] if row["source"].split()[0] in sources])
    partial.finish()
    assert not list((tmp_path / ".partial").glob("*.jsonl"))
    monkeypatch.setattr(report, "provenance", lambda: {"commit": "abc1234 with uncommitted changes",
                                                       "command": "python -m benchmarks.quality", "dirty": True})
    assert report.Partial("quality.json", tmp_path).path is None, "nothing is kept from a dirty tree"
