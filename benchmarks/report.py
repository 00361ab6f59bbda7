"""Assemble docs/BENCHMARKS.md from benchmarks/results/*.json, and the helpers every benchmark's section uses.

Each benchmark module renders its own section with ``markdown(results) -> str``; this module only finds the results,
calls those functions in a fixed order, writes the page atomically, and refreshes README's measured paragraph.
``--run`` first reruns every benchmark with exactly the command its section prints, so one command regenerates all
numbers and plots; it refuses a tree with uncommitted changes unless ``--allow-dirty``, and the page flags any section
measured from one, or made by another command than ``--run``'s.

Run: ``python -m benchmarks.report --run`` (or without ``--run`` to rebuild the page from the saved results).
"""

from __future__ import annotations

import hashlib
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
README = ROOT / "README.md"
# README's paragraph of measured claims lies between these lines; report rewrites it from the test split's results.
README_MARKS = ("<!-- measured: written by python -m benchmarks.report from benchmarks/results; do not edit -->",
                "<!-- end measured -->")
# (results file, module that measures it and renders its section, the module's arguments), in page order: the test
# split's reports first, then the val split's numbers that choices are made on. ``--run`` runs exactly these commands.
SECTIONS = (
    ("quality.json", "benchmarks.quality", ()),
    # The real recordings are here for what a real separator does to real voices, so their section scores the Spleeter
    # pairs and the do-no-harm rows; the ladder and bleed rows are made from the stems as on the rendered songs. Every
    # row of all 80 test mixes would be most of a day on 2 cores.
    ("quality-real.json", "benchmarks.quality", ("--corpus", "data/real", "--sources", "spleeter,clean",
                                                 "--max-songs", "24")),
    ("example.json", "benchmarks.example", ()),
    ("bands.json", "benchmarks.bands", ()),
    ("speed.json", "benchmarks.speed", ()),
    ("jobs.json", "benchmarks.jobs", ()),
    ("track.json", "benchmarks.track", ()),
    ("quality-val.json", "benchmarks.quality", ("--split", "val")),
    ("calibration.json", "benchmarks.calibrate", ()),
    ("ablation.json", "benchmarks.ablation", ()),
)
# The realism ratio follows the first file's section: the model's gain on its Spleeter pairs over the second's.
REALISM = ("quality-real.json", "quality.json")
REGENERATE = "python -m benchmarks.report --run"
# What the benchmarks write: changes there do not change a measurement, so they do not make the tree dirty.
OUTPUTS = (RESULTS, IMAGES, PAGE, README)
# Markdown has no colour that every renderer shows; a red circle is red everywhere.
WARNING_FLAG = "🔴"
# Results measured before this commit used the corpus as rendered before it; the page says so, so old and new numbers
# are not read as one set.
CORPUS_CHANGED = ("a9ced04", "gave the sung vocals a vibrato, after which Spleeter keeps most of the voice")


def command(module: str, args: tuple[str, ...] = ()) -> str:
    """The command line that runs ``module`` with ``args``, as sections print it."""
    return " ".join(["python -m", module, *args])


def uncommitted_changes() -> list[str]:
    """Tracked files that differ from HEAD, outside the benchmarks' own outputs (``git status --porcelain`` lines)."""
    excluded = [f":(exclude){path.relative_to(ROOT)}" for path in OUTPUTS]
    status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", ".",
                             *excluded], capture_output=True, text=True)
    return status.stdout.splitlines()


def provenance() -> dict:
    """How a result was measured: the command line, UTC date, machine and git commit, for the page to cite."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(uncommitted_changes())
    return {
        "command": command(_module_name(), tuple(sys.argv[1:])),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{_cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "commit": (commit or "unknown") + (" with uncommitted changes" if dirty else ""),
        "dirty": dirty,
    }


class Partial:
    """A long benchmark's rows, kept case by case, so that a run stopped part way (a session's end, Ctrl-C) resumes
    at the next case when the same command is rerun at the same commit: on two cores shared with training, a page
    section can outlast a session. Nothing is kept from a tree with uncommitted changes, as no commit would hold the
    code that made those rows. A line cut short by a kill is ignored, and its case scored again.
    """

    def __init__(self, name: str, folder: Path = RESULTS):
        meta = provenance()
        key = hashlib.sha256(f"{meta['commit']} {meta['command']}".encode()).hexdigest()[:12]
        self.path = None if meta["dirty"] else folder / ".partial" / f"{Path(name).stem}-{key}.jsonl"
        self.done: dict[tuple, list] = {}
        if self.path is not None and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.done[tuple(entry["case"])] = entry["rows"]

    def add(self, case: tuple, rows: list) -> None:
        """Keep one case's rows (appended and flushed at once: the next run skips the case)."""
        self.done[case] = rows
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as file:
                file.write(json.dumps({"case": list(case), "rows": rows}) + "\n")

    def finish(self) -> None:
        """The results are saved: drop the kept rows."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


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
    """One markdown paragraph that says how a section's numbers were made, flagged when no commit reproduces them."""
    line = f"Measured with `{meta['command']}` on {meta['date']}, {meta['machine']}, at commit `{meta['commit']}`."
    if meta.get("dirty", "uncommitted" in meta["commit"]):
        line = (f"{WARNING_FLAG} **Not reproducible: measured from a tree with uncommitted changes, so no commit holds "
                f"the code that made these numbers.** {line}")
    return line


def table_section(heading: str, meta: dict, text: str, headers: list[str], rows: list[list]) -> str:
    """A page section of one table: its heading, how it was measured, what it shows, then the table."""
    return "\n".join([heading, "", how_measured(meta), text, "", table(headers, rows)]) + "\n"


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


def save_results_as(results: dict, name: str, out: Path | None = None) -> Path:
    """Write a benchmark's results to the file ``out`` (an ``--out`` option) or, without one, as ``name`` under
    the page's results folder."""
    return save_results(out.name, results, out.parent) if out else save_results(name, results)


def page(results_dir: Path = RESULTS) -> str:
    """The whole BENCHMARKS.md: a header with the regenerate command, then every section whose results exist."""
    parts = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/report.py` from `benchmarks/results/*.json`; do not edit by hand. "
        f"Regenerate every number and plot with:\n\n```\n{REGENERATE}\n```",
        "",
        "It reruns each section's benchmark with the command the section prints. The test split's sections, first, "
        "only report; the val split's sections, after them, are the numbers that choices are made on. "
        "Times, rates and memory peaks depend on the machine and on what else runs on it: they reproduce only on the "
        "machine a section names, unloaded. The other numbers reproduce to the printed digit from the same corpus.",
        "",
        f"Commit `{CORPUS_CHANGED[0]}` {CORPUS_CHANGED[1]}; a section measured at an earlier commit used the "
        "corpus from before it, and its numbers are not comparable with the others.",
    ]
    for filename, module, args in SECTIONS:
        path = results_dir / filename
        if not path.exists():
            continue
        results = json.loads(path.read_text())
        section = importlib.import_module(module).markdown(results).rstrip()
        expected = command(module, args)
        if results["meta"]["command"] != expected:
            heading, _, body = section.partition("\n")
            section = (f"{heading}\n\n{WARNING_FLAG} **Made by `{results['meta']['command']}`, not by `{expected}`, "
                       f"the command `{REGENERATE}` runs: its settings may differ from the next run's.**\n{body}")
        parts += ["", section]
        if filename == REALISM[0] and (results_dir / REALISM[1]).exists():
            quality = importlib.import_module("benchmarks.quality")
            parts += ["", quality.realism(results, json.loads((results_dir / REALISM[1]).read_text())).rstrip()]
    return "\n".join(parts) + "\n"


def readme_with_measurements(readme: str, results_dir: Path = RESULTS) -> str:
    """``readme`` with its measured paragraph rewritten from the test split's quality results (unchanged without
    the marks or the results)."""
    start, end = README_MARKS
    quality = results_dir / "quality.json"
    if start not in readme or end not in readme or not quality.exists():
        return readme
    real = results_dir / REALISM[0]
    text = importlib.import_module("benchmarks.quality").headline(
        json.loads(quality.read_text()), json.loads(real.read_text()) if real.exists() else None)
    before, rest = readme.split(start, 1)
    return f"{before}{start}\n{text}\n{end}{rest.split(end, 1)[1]}"


def main(
    run: bool = typer.Option(False, "--run", help="Rerun every benchmark before assembling the page."),
    allow_dirty: bool = typer.Option(False, "--allow-dirty", help="Run from a tree with uncommitted changes; "
                                     "the page flags every section measured so."),
) -> None:
    """Assemble docs/BENCHMARKS.md from the saved results (after rerunning the benchmarks with --run)."""
    if run:
        changes = uncommitted_changes()
        if changes and not allow_dirty:
            typer.secho(f"error: {len(changes)} tracked file(s) have uncommitted changes (first: {changes[0][3:]}); "
                        "commit them, or pass --allow-dirty and the page will flag every section", fg="red", err=True)
            raise typer.Exit(2)
        for _, module, args in SECTIONS:
            typer.echo(f"running {command(module, args)}", err=True)
            done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT)
            if done.returncode != 0:
                typer.secho(f"error: {command(module, args)} failed (exit {done.returncode})", fg="red", err=True)
                raise typer.Exit(1)
    write_atomic(PAGE, page())
    write_atomic(README, readme_with_measurements(README.read_text()))
    typer.echo(f"wrote {PAGE.relative_to(ROOT)} and {README.relative_to(ROOT)}")


if __name__ == "__main__":
    typer.run(main)
