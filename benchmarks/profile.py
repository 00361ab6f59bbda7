"""Where a model's time goes: onnxruntime's own profiler on one engine-sized chunk, grouped by the network's parts.

``benchmarks/speed.py`` says how fast the whole process is; this says which part of the graph to make cheaper. Kernel
time is summed per top-level module of :class:`stemclean.train.network.Denoiser` (``trunk_blocks.3``, ``head``, ...)
and per operator type. Nodes outside any module are the full-resolution work written in ``forward`` itself: the input
features, the bleed evidence and the masks applied to the output. Shares are of the summed kernel time, so they hold on
a busy machine better than wall times do; pause other jobs for the wall time to mean anything.

    python -m benchmarks.profile [--model PATH] [--seconds 10] [--out FILE]
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import onnxruntime as ort
import typer

from benchmarks import report
from stemclean import engine, spectral
from stemclean.engine import DEFAULT_THREADS, default_model_path

TOP_LEVEL = "(forward: features, evidence, output masks)"
RUNS = 3  # the first run pays for memory allocation; the profile sums all of them, the wall time keeps the fastest


def module_of(node_name: str) -> str:
    """The top-level module of a node from torch's exporter (``/trunk_blocks.3/norm/...`` -> ``trunk_blocks.3``)."""
    parts = node_name.strip("/").split("/")
    return parts[0] if len(parts) > 1 else TOP_LEVEL


def profile(model: Path, seconds: float, threads: int = DEFAULT_THREADS) -> dict:
    """Profile ``RUNS`` passes of ``model`` over ``seconds`` of one channel of noise; shares per module and op type."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp(prefix="stemclean-profile-")) / "ort")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    frames = int(seconds * spectral.SAMPLE_RATE / spectral.HOP_LENGTH)
    rng = np.random.default_rng(0)
    stem = rng.standard_normal((1, 2, spectral.N_BINS, frames)).astype(np.float32)
    feeds = {"stem": stem, "mix": 1.5 * stem, "level": np.full(1, 0.5, np.float32),
             "stem_type": np.zeros(1, np.int64)}
    fastest = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        session.run(["clean"], feeds)
        fastest = min(fastest, time.perf_counter() - started)
    events = json.loads(Path(session.end_profiling()).read_text())
    by_module, by_op = Counter(), Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_module[module_of(event["name"].removesuffix("_kernel_time"))] += event["dur"]
            by_op[event["args"].get("op_name", "?")] += event["dur"]
    total = sum(by_module.values())

    def shares(counter: Counter) -> dict[str, float]:
        return {name: round(value / total, 4) for name, value in counter.most_common()}

    return {"seconds": seconds, "threads": threads, "fastest_run_s": round(fastest, 4),
            "realtime_one_channel": round(seconds / fastest, 1), "by_module": shares(by_module), "by_op": shares(by_op)}


def main(
    model: Annotated[Optional[Path], typer.Option(help="ONNX model. Default: $STEMCLEAN_MODEL or the shipped one.")] = None,
    seconds: Annotated[float, typer.Option(help="Audio per pass, one channel (the engine's chunks are ~10 s).")] = (
        (engine.STEP + engine.OVERLAP) / spectral.SAMPLE_RATE),
    out: Annotated[Optional[Path], typer.Option(help="Results file (default benchmarks/results/profile.json).")] = None,
) -> None:
    """Profile one model pass and print each part's share of the kernel time."""
    model = model or default_model_path()
    results = {"meta": report.provenance(), "model": str(model), **profile(model, seconds)}
    for name, share in results["by_module"].items():
        typer.echo(f"{share:7.1%}  {name}")
    path = report.save_results_as(results, "profile.json", out)
    typer.echo(f"wrote {path}", err=True)


if __name__ == "__main__":
    typer.run(main)
