"""Assemble docs/BENCHMARKS.md from benchmarks/results/*.json, and the helpers every benchmark's section uses.

Each benchmark module renders its own section with ``markdown(results) -> str``; this module only finds the results,
calls those functions in a fixed order, and writes the page atomically. ``--run`` first reruns every benchmark, so one
command regenerates all numbers and plots.

Run: ``python -m benchmarks.report --run`` (or without ``--run`` to rebuild the page from the saved results).
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import typer

from stemclean.engine import Model, ModelError, default_model_path
from stemclean.files import write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
IMAGES = ROOT / "docs" / "img"
PAGE = ROOT / "docs" / "BENCHMARKS.md"
# (results file, module that measures it and renders its section), in page order.
SECTIONS = (
    ("quality.json", "benchmarks.quality"),
    ("bands.json", "benchmarks.bands"),
    ("ablation.json", "benchmarks.ablation"),
    ("calibration.json", "benchmarks.calibrate"),
    ("speed.json", "benchmarks.speed"),
    ("jobs.json", "benchmarks.jobs"),
    ("track.json", "benchmarks.track"),
)
REGENERATE = "python -m benchmarks.report --run"
# Results measured before this commit used the corpus as rendered before it; the page says so, so old and new numbers
# are not read as one set.
CORPUS_CHANGED = ("a9ced04", "gave the sung vocals a vibrato, after which Spleeter keeps most of the voice")


def provenance() -> dict:
    """How a result was measured: the command line, UTC date, machine and git commit, for the page to cite."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return {
        "command": " ".join(["python -m", _module_name(), *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{_cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "commit": (commit or "unknown") + (" with uncommitted changes" if dirty.stdout.strip() else ""),
    }


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def _module_name() -> str:
    """The dotted module the current process runs (``benchmarks.quality``), for a copy-pasteable command."""
    path = Path(sys.argv[0]).resolve()
    try:
        return ".".join(path.relative_to(ROOT).with_suffix("").parts)
    except ValueError:
        return path.stem


def loadable_model(model: Path | None, benchmark: str) -> Path | None:
    """``model`` (default: ``$STEMCLEAN_MODEL`` or the shipped one) if it loads, else ``None`` after saying why the
    benchmark is skipped."""
    model = model or default_model_path()
    try:
        Model(model, device="cpu")
    except ModelError as err:
        typer.echo(f"{benchmark} benchmark skipped: {err}", err=True)
        return None
    return model


def how_measured(meta: dict) -> str:
    """One markdown paragraph that says how a section's numbers were made."""
    return (f"Measured with `{meta['command']}` on {meta['date']}, {meta['machine']}, at commit `{meta['commit']}`.")


def table(headers: list[str], rows: list[list]) -> str:
    """A markdown table; floats are printed with two decimals, missing values as a dash."""
    def cell(value) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.2f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (benchmarks run headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Lay out, write and close a figure; returns its path."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` atomically, making its folder first (results and docs folders may not exist yet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def save_results(name: str, results: dict, folder: Path = RESULTS) -> Path:
    """Write a benchmark's results as JSON under ``folder``."""
    path = folder / name
    write_atomic(path, json.dumps(results, indent=1) + "\n")
    return path


def page(results_dir: Path = RESULTS) -> str:
    """The whole BENCHMARKS.md: a header with the regenerate command, then every section whose results exist."""
    parts = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/report.py` from `benchmarks/results/*.json`; do not edit by hand. "
        f"Regenerate every number and plot with:\n\n```\n{REGENERATE}\n```",
        "",
        f"Commit `{CORPUS_CHANGED[0]}` {CORPUS_CHANGED[1]}; a section measured at an earlier commit used the "
        "corpus from before it, and its numbers are not comparable with the others.",
    ]
    for filename, module in SECTIONS:
        path = results_dir / filename
        if path.exists():
            parts += ["", importlib.import_module(module).markdown(json.loads(path.read_text())).rstrip()]
    return "\n".join(parts) + "\n"


def main(run: bool = typer.Option(False, "--run", help="Rerun every benchmark before assembling the page.")) -> None:
    """Assemble docs/BENCHMARKS.md from the saved results (after rerunning the benchmarks with --run)."""
    if run:
        for _, module in SECTIONS:
            if (ROOT / Path(*module.split("."))).with_suffix(".py").exists():
                subprocess.run([sys.executable, "-m", module], cwd=ROOT, check=True)
    write_atomic(PAGE, page())
    typer.echo(f"wrote {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    typer.run(main)
