"""stemclean: clean up stems from music source separators, using the original mixture as a guide."""

__version__ = "0.1.0"
__all__ = ["__version__", "clean"]


def __getattr__(name: str):
    """``stemclean.clean`` is imported on first use, so ``import stemclean.spectral`` (training, export) stays light
    and does not load onnxruntime, soundfile and soxr."""
    if name == "clean":
        from stemclean.engine import clean

        return clean
    raise AttributeError(f"module 'stemclean' has no attribute {name!r}")
