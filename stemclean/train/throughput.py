"""Training throughput: examples per second of one optimizer step, for thread counts and bf16 autocast on or off.

Training compute is the scarcest resource here, so the standing run's settings are chosen by this measurement, not by
habit. Batches are drawn once beforehand, so the numbers are the model's forward, loss and backward alone (data are
prepared by a DataLoader worker beside training). Each setting runs in its own subprocess, as torch fixes its
inter-op thread pool once per process. Absolute numbers move with the machine's load; compare settings in one call.

    python -m stemclean.train.throughput --threads 1,2 --out benchmarks/results/throughput.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import typer

from stemclean.files import write_text_atomic
from stemclean.train.fit import loss_terms, total_loss
from stemclean.train.network import Denoiser, block_dilations
from stemclean.train.sampler import CorpusSampler

# The standing run's shape (scripts/train.sh).
MODEL = {"width": 48, "dilations": block_dilations(6), "time_stride": 2, "evidence": True, "band_mix": True}


def time_steps(corpus: Path, threads: int, bf16: bool, steps: int, batch_size: int, seconds: float) -> dict:
    """Seconds per optimizer step (median of ``steps`` after one warm-up) and examples per second."""
    torch.set_num_threads(threads)
    sampler = CorpusSampler(corpus, None, "train", seed=0, bleed_fraction=0.3, segment_seconds=seconds)
    batches = [sampler.batch(batch_size) for _ in range(steps + 1)]
    model = Denoiser(**MODEL)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for batch in batches:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = model(batch["stem"], batch["mix"], batch["level"], batch["stem_type"])
        loss = total_loss(loss_terms(pred.float(), batch["clean"], batch["mix"]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    step = sorted(times[1:])[len(times[1:]) // 2]
    return {"threads": threads, "bf16": bf16, "seconds_per_step": step, "examples_per_second": batch_size / step,
            "audio_seconds_per_second": batch_size * seconds / step}


def main(
    corpus: Path = typer.Option(Path("data/corpus")),
    threads: str = typer.Option("1,2", help="Thread counts to compare, comma-separated."),
    steps: int = typer.Option(4),
    batch_size: int = typer.Option(4),
    seconds: float = typer.Option(4.0, help="Segment length, as the standing run uses."),
    out: Path = typer.Option(None, help="Also write the results here as JSON."),
    one: str = typer.Option(None, hidden=True, help="Internal: run one 'threads,bf16' setting and print its JSON."),
) -> None:
    """Compare training throughput across thread counts, with and without bf16 autocast."""
    if one is not None:
        count, bf16 = one.split(",")
        typer.echo(json.dumps(time_steps(corpus, int(count), bf16 == "1", steps, batch_size, seconds)))
        return
    results = []
    for count in (int(t) for t in threads.split(",")):
        for bf16 in (0, 1):
            done = subprocess.run([sys.executable, "-m", "stemclean.train.throughput", "--corpus", str(corpus),
                                   "--steps", str(steps), "--batch-size", str(batch_size), "--seconds", str(seconds),
                                   "--one", f"{count},{bf16}"], capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            typer.echo(json.dumps(results[-1]))
    if out is not None:
        write_text_atomic(out, json.dumps({"model": {**MODEL, "dilations": list(MODEL["dilations"])},
                                           "results": results}, indent=1))


if __name__ == "__main__":
    typer.run(main)
