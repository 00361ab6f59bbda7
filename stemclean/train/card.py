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
from stemclean.train import realcorpus
from stemclean.train.corpus import load_manifest
from stemclean.train.export import load_checkpoint
from stemclean.train.fit import RECIPE_KEYS, parse_plan, steps_done
from stemclean.train.songs import SPLITS


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


def recordings_summary(recordings: Path) -> dict | None:
    """Mixes, hours and finished Spleeter pairs per split of the real-recordings corpus, if it was made."""
    if not (recordings / "corpus" / "manifest.json").exists():
        return None
    splits = {}
    for split in SPLITS:
        pairs = realcorpus.load_pairs(recordings, split)
        splits[split] = {"mixes": len(pairs), "hours": round(sum(p["duration_s"] for p in pairs) / 3600, 2),
                         "spleeter_pairs": sum(p["spleeter_vocals"] is not None for p in pairs)}
    return {"recordings": str(recordings), "splits": splits}


def _overfit_result(overfit: Path) -> dict | None:
    """The overfit check's headline: the share of the oracle mask's gain reached on the songs it was fitted to."""
    if not overfit.exists():
        return None
    result = json.loads(overfit.read_text())
    return {"file": str(overfit), **{k: result[k] for k in ("songs", "steps", "share_of_oracle", "bar")}}


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
    recordings: Path = typer.Option(Path("data/real"), help="The real-recordings corpus it trained on, if any."),
    overfit: Path = typer.Option(Path("benchmarks/results/overfit.json"), help="The overfit check's result to quote."),
    curves: list[Path] = typer.Option([], help="Learning-curve plots of its training, to point the card at."),
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
        "real_recordings": recordings_summary(recordings),
        "overfit_check": _overfit_result(overfit),
        "learning_curves": [str(path) for path in curves],
        "metrics": _overall_metrics(quality) if quality.exists() else [],
        "metrics_source": str(quality) if quality.exists() else None,
    }
    path = model.with_suffix(".json")
    write_text_atomic(path, json.dumps(card, indent=2) + "\n")
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    typer.run(main)
