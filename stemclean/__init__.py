"""stemclean: clean up stems from music source separators, using the original mixture as a guide."""

__version__ = "0.1.0"
