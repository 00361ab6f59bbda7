"""benchmarks/profile.py attributes a model's kernel time to the network's parts."""

import json

from benchmarks import profile
from stemclean.engine import default_model_path


def test_node_names_map_to_their_top_level_module():
    assert profile.module_of("/trunk_blocks.3/norm/InstanceNormalization") == "trunk_blocks.3"
    assert profile.module_of("/CumSum_1") == profile.TOP_LEVEL


def test_the_shipped_model_profile_splits_all_of_its_time(tmp_path):
    out = tmp_path / "profile.json"
    profile.main(model=None, seconds=2.0, out=out)
    results = json.loads(out.read_text())
    assert results["model"] == str(default_model_path())
    for shares in (results["by_module"], results["by_op"]):
        assert abs(sum(shares.values()) - 1.0) < 0.01
    assert {"trunk_in", "control_in", "head", profile.TOP_LEVEL} <= set(results["by_module"])
    assert results["fastest_run_s"] > 0
