"""``python -m stemclean``: the same command as ``stemclean``."""

import signal
import sys

# A Ctrl-C while numpy and onnxruntime load would print a traceback (or a half-initialised extension's ImportError), so
# it waits until they have loaded; from then on every stop signal ends the program quietly (stemclean.interrupts).
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
from stemclean import interrupts  # noqa: E402
from stemclean.cli import app  # noqa: E402

interrupts.install()
try:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    app(prog_name="stemclean")
except interrupts.Interrupted as stop:
    sys.exit(stop.exit_code)
