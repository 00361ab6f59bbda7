"""benchmarks/track.py end to end on a tiny synthetic corpus: cases, both cleanups, the summary and the page section."""

from conftest import write_gain_model

from benchmarks import quality, report, track
from stemclean.engine import Model


def test_track_benchmark_scores_both_cleanups_and_renders_its_section(tmp_path):
    corpus = quality.synthetic_corpus(tmp_path / "corpus", songs=1, seconds=2.5)
    model = Model(write_gain_model(tmp_path / "half.onnx", stem_gain=0.5), device="cpu")
    results = track.run_quality(corpus, tmp_path / "no-spleeter", "test", 2.0, (0.5,), 0, None, model)
    results |= {"meta": report.provenance(), "model": "half.onnx", "goals": track.GOALS}
    results["summary"] = track.summarize(results["cases"])
    report.save_results("track.json", results, tmp_path)  # plain JSON: song ids, not the corpus' Song records
    assert {case["song"] for case in results["cases"]} == set(results["config"]["songs"]) == {"synthetic-0"}

    sums = results["summary"]["sum_error"]
    assert set(sums) == {"ladder t=0.5", "clean"}
    assert sums["ladder t=0.5"]["joint_worst"] < -60 < sums["ladder t=0.5"]["independent"]
    clean = [row for key, row in results["summary"]["per_stem"].items() if key.startswith("clean/")]
    assert sum(row["unchanged"] for row in clean) == 4

    page = track.markdown(results)
    assert "### Artifact ladder at t=0.5" in page and "Do no harm: of 4 true stems" in page
    assert "(met)" in page
