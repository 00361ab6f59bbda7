"""Export a trained Denoiser to ONNX with the metadata the engine checks, and verify torch/onnxruntime parity.

The legacy exporter (``dynamo=False``) is used on purpose: the dynamo exporter's optimiser folds tiny constants such as
the 1e-5 epsilons to zero and can pin the time axis (see DESIGN.md §7).

    python -m stemclean.train.export runs/sdr/last.pt stemclean/models/stemclean-v1.onnx \
        --weights stemclean/models/stemclean-v1.pt
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import typer

from stemclean import __version__, schedule, spectral
from stemclean.files import atomic_path
from stemclean.stems import STEM_TYPES
from stemclean.train.network import Denoiser

OPSET = 17
INPUT_NAMES = ["stem", "mix", "level", "stem_type"]
OUTPUT_NAMES = ["clean"]


def git_commit() -> str:
    """The current commit, with ``-dirty`` when the tree has uncommitted changes; ``unknown`` outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
        return commit + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def model_metadata(training_commit: str, stereo: bool = False) -> dict[str, str]:
    """The metadata props every shipped model carries (docs/ARCHITECTURE.md)."""
    return {
        "stereo": str(int(stereo)),
        "sample_rate": str(spectral.SAMPLE_RATE),
        "n_fft": str(spectral.N_FFT),
        "hop_length": str(spectral.HOP_LENGTH),
        "stem_types": json.dumps(list(STEM_TYPES)),
        "schedule": json.dumps({"sdr_at_zero": schedule.SDR_AT_ZERO, "sdr_at_one": schedule.SDR_AT_ONE}),
        "version": __version__,
        "commit": training_commit,
    }


def example_inputs(batch: int = 2, frames: int = 64, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs with the interface's shapes and dtypes."""
    gen = torch.Generator().manual_seed(seed)
    stem = torch.randn(batch, 2, spectral.N_BINS, frames, generator=gen)
    mix = stem + torch.randn(batch, 2, spectral.N_BINS, frames, generator=gen)
    level = torch.rand(batch, generator=gen)
    stem_type = torch.randint(0, len(STEM_TYPES), (batch,), generator=gen)
    return stem, mix, level, stem_type


def export(model: Denoiser, path: Path, training_commit: str) -> None:
    """Write ``model`` to ``path`` (atomically) as ONNX with a dynamic batch and time axis."""
    model = model.eval()
    dynamic = {"stem": {0: "batch", 3: "frames"}, "mix": {0: "batch", 3: "frames"}, "level": {0: "batch"},
               "stem_type": {0: "batch"}, "clean": {0: "batch", 3: "frames"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        torch.onnx.export(model, example_inputs(), str(raw), input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
        proto = onnx.load(str(raw))
        for key, value in model_metadata(training_commit, model.stereo).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        staged = Path(tmp) / "model.onnx"
        onnx.save(proto, str(staged))
        os.replace(staged, path)


def parity_error(model: Denoiser, path: Path, frames: int = 97) -> float:
    """Largest absolute difference between torch and onnxruntime, relative to the output's scale, on random inputs.

    ``frames`` differs from the export example so a time axis frozen at export would show up as a failure. The batch
    is one (left, right) pair, which a stereo model needs and a mono one takes as two channels.
    """
    inputs = example_inputs(batch=2, frames=frames, seed=1)
    with torch.no_grad():
        expected = model.eval()(*inputs).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: t.numpy() for name, t in zip(INPUT_NAMES, inputs)})[0]
    return float(np.max(np.abs(got - expected)) / (np.max(np.abs(expected)) + 1e-12))


def load_checkpoint(path: Path) -> tuple[Denoiser, dict]:
    """The model and its training record from a fit.py checkpoint."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = Denoiser(**state["model_config"])
    model.load_state_dict(state["model"])
    model.use_control = state["use_control"]
    return model, state


def save_weights(state: dict, path: Path) -> None:
    """Save a checkpoint's weights and training record without the optimizer state (a third of the size), nor the
    raw weights beside a weight average (``fit --ema``): a run resumed from it goes on from the average.

    Shipped beside the ONNX file, this lets ``fit --init`` fine-tune the shipped model even after ``runs/`` is gone.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({k: v for k, v in state.items() if k not in ("optimizer", "raw")}, tmp)


def main(
    checkpoint: Path,
    output: Path,
    tolerance: float = 1e-4,
    weights: Path = typer.Option(None, help="Also save the weights and training record here, for later fine-tuning."),
) -> None:
    """Export CHECKPOINT to OUTPUT and fail if onnxruntime disagrees with torch."""
    model, state = load_checkpoint(checkpoint)
    export(model, output, state.get("commit", "unknown"))
    if weights is not None:
        save_weights(state, weights)
    error = parity_error(model, output)
    typer.echo(f"exported {output} ({output.stat().st_size / 1e6:.1f} MB), parity error {error:.2e}")
    if error > tolerance:
        raise typer.Exit(code=1)


if __name__ == "__main__":
    typer.run(main)
