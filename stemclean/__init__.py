"""stemclean: clean up stems from music source separators, using the original mixture as a guide."""

__version__ = "0.1.0"

from stemclean.engine import clean  # noqa: E402  (after __version__, which the CLI imports from here)

__all__ = ["__version__", "clean"]
