"""Ablations: trunk only vs ControlNet phases vs plain joint training, each trained for the same number of steps.

The models come from ``scripts/train_ablations.sh`` (runs/ablation-*/model.onnx). Each is scored at one sampler step
on the val split's cases of the quality benchmark (real Spleeter outputs, bleed, and one ladder level): an ablation
chooses a recipe, so it is measured where choices are made. Without the models it saves nothing, and the page keeps the
last results.

    python -m benchmarks.ablation
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from benchmarks import quality, report
from stemclean.engine import Model

SPLIT = "val"

VARIANTS = {
    "trunk-only": "trunk alone (stem only, no mixture)",
    "phased": "ControlNet phases: trunk, then control branch, then joint",
    "joint": "plain joint training of trunk + control from scratch",
}


def run(runs: Path, corpus: Path, spleeter: Path, seconds: float, level: float, split: str = SPLIT) -> dict:
    """Mean SI-SDR change per variant and case source, one step each."""
    songs = quality.corpus_songs(corpus, spleeter, split)
    models = {name: Model(runs / f"ablation-{name}" / "model.onnx", device="cpu")
              for name in VARIANTS if (runs / f"ablation-{name}" / "model.onnx").exists()}
    methods = {name: quality.model_methods(model, ["1"])["stemclean@1"] for name, model in models.items()}
    rows = []
    for case in quality.cases(songs, seconds, (level,), 0):
        if case.source == "clean":
            continue
        case_rows, _ = quality.score(case, methods)
        rows += case_rows
    means = {}
    for row in rows:
        means.setdefault((row["method"], row["source"]), []).append(row["delta_si_sdr"])
    return {"meta": report.provenance(), "split": split, "songs": [song.id for song in songs], "excerpt_s": seconds,
            "budget_steps": {name: _steps(runs / f"ablation-{name}" / "log.jsonl") for name in methods},
            "trained_at": {name: model.metadata.get("commit", "unknown")[:7] for name, model in models.items()},
            "results": [{"variant": m, "source": s, "delta_si_sdr": float(np.mean(v)), "cases": len(v)}
                        for (m, s), v in sorted(means.items())]}


def _steps(log: Path) -> int:
    return sum(1 for _ in log.open()) if log.exists() else 0


def markdown(results: dict) -> str:
    """The ablation section of docs/BENCHMARKS.md."""
    body = [[r["variant"], VARIANTS[r["variant"]], results["budget_steps"][r["variant"]],
             f"`{results['trained_at'][r['variant']]}`", r["source"], r["cases"], r["delta_si_sdr"]]
            for r in results["results"]]
    return report.table_section(
        "## Ablations", results["meta"],
        f"Each variant trained by `scripts/train_ablations.sh` for the same small budget of optimizer steps, then scored "
        f"at one sampler step on {len(results['songs'])} {results.get('split', 'test')} songs "
        f"({results['excerpt_s']:g} s excerpts). ΔSI-SDR in "
        "dB over the input; higher is better. The budget is far below the shipped model's, so these compare training "
        "recipes, not final quality. Each variant is one training run (one seed) with the network and ladder of the "
        "commit it was trained at, so differences of a few tenths of a dB are not settled.",
        ["variant", "what", "steps", "trained at", "cases from", "n", "ΔSI-SDR"], body)


def main(
    runs: Path = typer.Option(Path("runs")),
    corpus: Path = typer.Option(Path("data/corpus")),
    spleeter: Path = typer.Option(Path("data/spleeter")),
    seconds: float = typer.Option(quality.EXCERPT_S),
    level: float = typer.Option(quality.LEVELS[-1], help="Ladder level scored beside the Spleeter cases."),
) -> None:
    """Score the ablation models and save benchmarks/results/ablation.json."""
    if not any((runs / f"ablation-{name}" / "model.onnx").exists() for name in VARIANTS):
        typer.echo(f"ablation skipped: no runs/ablation-*/model.onnx under {runs} (scripts/train_ablations.sh "
                   "trains them); the saved results stay", err=True)
        return
    path = report.save_results("ablation.json", run(runs, corpus, spleeter, seconds, level))
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    typer.run(main)
