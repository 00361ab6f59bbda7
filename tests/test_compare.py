"""The paired comparison of two models' quality results (benchmarks.compare)."""

import json

import numpy as np
import pytest

from benchmarks import compare


def _results(path, gains):
    rows = [{"song": song, "source": "spleeter", "stem": stem, "method": "stemclean@auto", "delta_si_sdr": gain}
            for (song, stem), gain in gains.items()]
    rows.append({"song": "s0", "source": "spleeter", "stem": "vocals", "method": "identity", "delta_si_sdr": 0.0})
    rows.append({"song": "s0", "source": "bleed", "stem": "vocals", "method": "stemclean@auto", "delta_si_sdr": 9.0})
    path.write_text(json.dumps({"rows": rows}))
    return path


def test_a_model_better_on_every_case_by_the_same_margin_is_that_margin_better_for_sure(tmp_path):
    rng = np.random.default_rng(0)
    a = {(f"s{i}", stem): float(rng.normal()) for i in range(6) for stem in ("vocals", "accompaniment")}
    b = {key: gain + 0.4 for key, gain in a.items()}
    summary = {row["stem"]: row for row in compare.paired(
        compare.case_gains(_results(tmp_path / "a.json", a), "stemclean@auto"),
        compare.case_gains(_results(tmp_path / "b.json", b), "stemclean@auto"))}
    assert set(summary) == {"vocals", "accompaniment", "all"}
    assert summary["all"]["cases"] == 12 and summary["all"]["b_wins"] == 1.0
    assert summary["all"]["mean_difference"] == pytest.approx(0.4)
    assert summary["all"]["interval_95"] == pytest.approx([0.4, 0.4])


def test_one_song_carrying_the_difference_widens_the_interval_to_zero(tmp_path):
    a = {(f"s{i}", "vocals"): 0.0 for i in range(8)}
    b = {**a, ("s0", "vocals"): 4.0}
    row = compare.paired(compare.case_gains(_results(tmp_path / "a.json", a), "stemclean@auto"),
                         compare.case_gains(_results(tmp_path / "b.json", b), "stemclean@auto"))[-1]
    assert row["mean_difference"] == pytest.approx(0.5)
    assert row["interval_95"][0] == 0.0 and row["b_gains_audibly"] == 1 and row["b_loses_audibly"] == 0
