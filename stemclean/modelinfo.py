"""What ``stemclean info`` reports: the model and its card, the device ``auto`` picks, and the versions in use.

:func:`details` is everything, for ``--json``; :func:`summary` is the few lines a person reads first.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf
import soxr

from stemclean import __version__, engine

# The card row quoted as the model's quality: the default setting on each kind of input the benchmark scored.
HEADLINE_METHOD = "stemclean@auto"


def details(path: Path) -> dict:
    """The model file, its card (the ``.json`` beside it) and ONNX metadata, the providers, and the versions."""
    card_path = path.with_suffix(".json")
    found = {
        "model": str(path),
        "model_found": path.is_file(),
        "card": _card(card_path),
        "metadata": None,
        "providers": ort.get_available_providers(),
        "auto_provider": _name(engine.providers_for("auto")[0]),
        "versions": {
            "stemclean": __version__,
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
            "soundfile": sf.__version__,
            "libsndfile": sf.__libsndfile_version__,
            "soxr": soxr.__version__,
        },
    }
    if found["model_found"]:
        try:
            found["metadata"] = engine.Model(path, device="cpu").metadata
        except engine.ModelError as err:
            found["metadata"] = {"error": str(err)}
    return found


def _card(path: Path) -> dict | None:
    """The model card beside the model, or ``None`` when there is none; a broken one is refused in one line."""
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise engine.ModelError(f"{path}: the model card is not valid JSON ({err})") from None
    if not isinstance(card, dict):
        raise engine.ModelError(f"{path}: the model card should be a JSON object, found {type(card).__name__}")
    return card


def _name(provider: str | tuple) -> str:
    return provider if isinstance(provider, str) else provider[0]


def summary(found: dict) -> list[str]:
    """One line each: model, training, data, quality (from the card, when it has them), device and versions."""
    card = found["card"] or {}
    lines = [f"stemclean {found['versions']['stemclean']}"]
    if not found["model_found"]:
        about = ["not found"]
    elif (found["metadata"] or {}).get("error"):
        about = [found["metadata"]["error"]]
    else:
        about = [
            card.get("name"),
            f"{card['size_mb']} MB" if "size_mb" in card else None,
            f"{card['architecture']['parameters']:,} parameters" if "architecture" in card else None,
        ]
    lines.append(_line("model", found["model"], about))
    if "training" in card:
        training = card["training"]
        lines.append(_line("trained", f"{training['optimizer_steps']:,} optimizer steps", [
            f"{training['examples']:,} examples",
            f"{training['wall_time_hours']} h on {training['machine']}",
            f"commit {training['commit'][:7]}",
        ]))
    if "data" in card:
        splits = card["data"]["splits"]
        songs = ", ".join(f"{name} {split['songs']}" for name, split in splits.items())
        minutes = sum(split["minutes"] for split in splits.values())
        sources = ", ".join(card["data"].get("sources", []))
        lines.append(_line("data", f"{sum(s['songs'] for s in splits.values())} songs, {minutes:.0f} minutes",
                           [songs, f"rendered with {sources}" if sources else None]))
    if card.get("real_recordings"):
        splits = card["real_recordings"]["splits"]
        lines.append(_line("real recordings", f"{sum(s['mixes'] for s in splits.values())} mixes, "
                           f"{sum(s['hours'] for s in splits.values()):.1f} hours", [
                               ", ".join(f"{name} {split['mixes']}" for name, split in splits.items()),
                               f"{sum(s['spleeter_pairs'] for s in splits.values())} with Spleeter pairs",
                           ]))
    headline = [m for m in card.get("metrics", []) if m.get("method") == HEADLINE_METHOD]
    if headline:
        lines.append(f"quality at --steps auto ({card.get('metrics_source') or 'model card'}):")
        lines += [
            f"  {m['source']}: SI-SDR gain {m['delta_si_sdr']:+.2f} dB, SIR {m['sir']:.1f} dB, SAR {m['sar']:.1f} dB"
            for m in headline
        ]
    available = f"available: {', '.join(found['providers'])}"
    lines.append(_line("device", f"auto picks {found['auto_provider']}", [available]))
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in found["versions"].items() if k != "stemclean"))
    return lines


def _line(label: str, head: str, notes: list[str | None]) -> str:
    """``label: head (note; note)``, leaving out notes the card did not have."""
    present = [note for note in notes if note]
    return f"{label}: {head}" + (f" ({'; '.join(present)})" if present else "")
