"""stemclean: clean up stems from music source separators, using the original mixture as a guide."""

__version__ = "0.1.0"
__all__ = ["__version__", "clean", "clean_track"]


def __getattr__(name: str):
    """``stemclean.clean`` and ``stemclean.clean_track`` are imported on first use, so ``import stemclean.spectral``
    (training, export) stays light and does not load onnxruntime, soundfile and soxr."""
    if name == "clean":
        from stemclean.engine import clean

        return clean
    if name == "clean_track":
        from stemclean.track import clean_track

        return clean_track
    raise AttributeError(f"module 'stemclean' has no attribute {name!r}")
