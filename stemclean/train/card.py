"""Write the model card that ships beside an exported model: data, training steps, wall time, commit and metrics.

Every number on the card is read from the checkpoint, the corpus manifest or a benchmark's JSON, never typed.

    python -m stemclean.train.card runs/main/last.pt stemclean/models/stemclean-v1.onnx
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import typer

from stemclean.files import write_text_atomic
from stemclean.train.corpus import load_manifest
from stemclean.train.export import load_checkpoint
from stemclean.train.fit import RECIPE_KEYS, parse_plan, steps_done


def corpus_summary(corpus: Path, spleeter: Path) -> dict:
    """Songs and minutes per split, and how many songs have real Spleeter pairs."""
    songs = list(load_manifest(corpus).values())
    splits: dict[str, dict] = {}
    for song in songs:
        entry = splits.setdefault(song["split"], {"songs": 0, "minutes": 0.0, "spleeter_pairs": 0})
        entry["songs"] += 1
        entry["minutes"] += float(song["duration_s"]) / 60
        entry["spleeter_pairs"] += (spleeter / song["split"] / song["id"] / "vocals.wav").exists()
    for entry in splits.values():
        entry["minutes"] = round(entry["minutes"], 1)
    return {"corpus": str(corpus), "spleeter": str(spleeter), "splits": splits,
            "sources": sorted({song.get("source", "unknown") for song in songs})}


def _overall_metrics(quality: Path) -> list[dict]:
    """The benchmark's per-source means over all stems, for every method (the card's headline numbers)."""
    summary = json.loads(quality.read_text())["summary"]
    return [{k: v for k, v in row.items() if k != "stem"} for row in summary if row["stem"] == "all"]


def _weights_entry(weights: Path) -> dict | None:
    """The torch weights shipped beside the model (``export --weights``), the starting point for ``fit --init``."""
    if not weights.exists():
        return None
    return {"file": weights.name, "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}


def _optimizer_steps(state: dict) -> int:
    """Steps of every stage: recorded where the history has them (older entries ran their whole plan)."""
    history = state.get("history", [])
    earlier = sum(stage.get("steps", sum(n for _, n in parse_plan(stage["plan"]))) for stage in history)
    return earlier + steps_done(state)


def main(
    checkpoint: Path,
    model: Path,
    corpus: Path = typer.Option(Path("data/corpus")),
    spleeter: Path = typer.Option(Path("data/spleeter")),
    quality: Path = typer.Option(Path("benchmarks/results/quality.json"), help="Benchmark results to quote, if present."),
) -> None:
    """Write MODEL's card as MODEL with a .json suffix."""
    net, state = load_checkpoint(checkpoint)
    card = {
        "name": model.stem,
        "file": model.name,
        "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "size_mb": round(model.stat().st_size / 1e6, 2),
        "weights": _weights_entry(model.with_suffix(".pt")),
        "architecture": {**net.config, "control_branch": net.use_control,
                         "parameters": sum(p.numel() for p in net.parameters())},
        "training": {"plan": state["plan"], "fine_tuned_from": state.get("history", []), "examples": state["examples"],
                     "optimizer_steps": _optimizer_steps(state),
                     "recipe": {k: state[k] for k in RECIPE_KEYS if k in state},
                     "wall_time_hours": round(state["wall_time"] / 3600, 2), "commit": state["commit"],
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch CPU"},
        "data": corpus_summary(corpus, spleeter),
        "metrics": _overall_metrics(quality) if quality.exists() else [],
        "metrics_source": str(quality) if quality.exists() else None,
    }
    path = model.with_suffix(".json")
    write_text_atomic(path, json.dumps(card, indent=2) + "\n")
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    typer.run(main)
