"""``python -m stemclean``: the same command as ``stemclean``."""

from stemclean.cli import app

app(prog_name="stemclean")
