"""Learning curves: val ΔSI-SDR against examples seen and against CPU-hours, for one or more training runs.

The curves decide model size, when to stop and whether a change helped (issue 20), so they are made by command from
the runs' own logs (``fit --val-every``), never drawn by hand:

    python -m stemclean.train.curves runs/v2 runs/v2-small --out docs/img/learning_curves.png

A run is its folder (its ``log.jsonl``) or a ``.jsonl`` file of its val records alone. ``runs/`` stays out of git and
a new machine starts without it, so each stage's val records are also committed under ``benchmarks/results/curves/``
(``grep '"val"' runs/v2h/log.jsonl > benchmarks/results/curves/v2h.jsonl``) and plotted from there.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a build machine
import matplotlib.pyplot as plt  # noqa: E402
import typer  # noqa: E402

KINDS = {"spleeter": "real Spleeter pairs", "bleed": "additive bleed rows",
         "real": "Spleeter pairs of real recordings", "break": "real recordings' voice-free stretches (accompaniment)"}


def val_points(run: Path) -> list[dict]:
    """The run's val records, each with examples seen, training hours, the mean ΔSI-SDR per kind, and under ``raw``
    the optimizer's own weights' scores when the run kept a weight average (``fit --ema``)."""
    points = []
    for line in (run / "log.jsonl" if run.is_dir() else run).read_text().splitlines():
        record = json.loads(line)
        if "val" in record:
            points.append({"examples": record["examples"], "hours": record["wall_hours"], **record["val"],
                           **({"raw": record["val_raw"]} if "val_raw" in record else {})})
    return points


def plot(runs: list[Path], out: Path) -> None:
    """One row per kind of val case; examples seen on the left, CPU-hours on the right."""
    fig, axes = plt.subplots(len(KINDS), 2, figsize=(11, 3.2 * len(KINDS)), squeeze=False)
    for run in runs:
        points = val_points(run)
        for row, (kind, title) in enumerate(KINDS.items()):
            have = [p for p in points if kind in p]
            medians = [p for p in have if kind in p.get("medians", {})]
            for col, x in enumerate(("examples", "hours")):
                line, = axes[row][col].plot([p[x] for p in have], [p[kind] for p in have], marker=".",
                                            label=f"{run.stem} mean")
                if medians:  # the val set is a few songs: the median shows what one outlier does to the mean
                    axes[row][col].plot([p[x] for p in medians], [p["medians"][kind] for p in medians], linestyle="--",
                                        color=line.get_color(), label=f"{run.stem} median")
                raw = [p for p in have if kind in p.get("raw", {})]
                if raw:  # what the weight average adds over the weights the optimizer holds at the same step
                    axes[row][col].plot([p[x] for p in raw], [p["raw"][kind] for p in raw], linestyle=":",
                                        color=line.get_color(), label=f"{run.stem} mean, raw weights")
    for row, title in enumerate(KINDS.values()):
        for col, xlabel in enumerate(("examples seen", "training hours (wall clock, 2-core machine)")):
            ax = axes[row][col]
            ax.set_title(f"val: {title}")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("ΔSI-SDR (dB)")
            ax.axhline(0.0, color="grey", linewidth=0.8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main(runs: list[Path], out: Path = typer.Option(Path("docs/img/learning_curves.png"))) -> None:
    """Plot the val learning curves of RUNS into OUT."""
    plot(runs, out)
    typer.echo(f"wrote {out}")


if __name__ == "__main__":
    typer.run(main)
