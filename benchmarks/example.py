"""The shipped example, scored: what README's first run does, and the bar the quality tests hold the model to.

Two cases on the 10 s clip in examples/ (cut from a test song, see examples/README.md):

- ``spleeter``: the real Spleeter vocals (``vocals.flac``) against the true vocals (``vocals_true.flac``), as
  ``stemclean run examples/vocals.flac --mix examples/mix.flac`` cleans them;
- ``bleed``: the true vocals with the clip's accompaniment leaking in as the first bleed row of the quality benchmark
  and the val set (``validate.BLEED_ROWS``).

Each is scored for every baseline and for stemclean at default settings. The results record the model's SHA-256, and
tests/test_shipped_model.py reads its thresholds from them, so rerun this after shipping a model.

    python -m benchmarks.example [--model PATH]
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import typer

from benchmarks import quality, report
from stemclean.engine import ModelError, default_model_path
from stemclean.train.validate import BLEED_ROWS

EXAMPLES = report.ROOT / "examples"
RESULTS_NAME = "example.json"
OURS = "stemclean@auto"


def cases() -> list[quality.Case]:
    """The example's Spleeter case and the bleed case made from its true vocals."""
    mix = quality.read_audio(EXAMPLES / "mix.flac")
    truth = quality.read_audio(EXAMPLES / "vocals_true.flac")
    separated = quality.fit_length(quality.read_audio(EXAMPLES / "vocals.flac"), mix.shape[1])
    row = BLEED_ROWS[0]
    return [quality.Case("example", "spleeter", "vocals", separated, truth, mix),
            quality.Case("example", "bleed", row[1], quality.add_bleed(truth, mix, row), truth, mix)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(model: Path) -> dict:
    """Every baseline and stemclean at default settings on both cases."""
    methods = quality.baseline_methods() | quality.model_methods(model, ["auto"])
    rows = [row for case in cases() for row in quality.score(case, methods)[0]]
    shown = model.resolve().relative_to(report.ROOT) if model.resolve().is_relative_to(report.ROOT) else model
    return {"meta": report.provenance(), "model": str(shown), "model_sha256": sha256(model),
            "bleed": BLEED_ROWS[0][0], "rows": rows}


def gains(results: dict, source: str) -> dict[str, float]:
    """stemclean's change over the input in SI-SDR and in SIR (the bleed falling) on one case, in dB."""
    rows = {r["method"]: r for r in results["rows"] if r["source"] == source}
    return {"si_sdr": rows[OURS]["delta_si_sdr"], "sir": rows[OURS]["sir"] - rows["identity"]["sir"]}


def markdown(results: dict) -> str:
    """The example section of docs/BENCHMARKS.md."""
    titles = {"spleeter": "Spleeter's vocals (`vocals.flac`)", "bleed": f"true vocals, bleed: {results['bleed']}"}
    body = [[titles[r["source"]], r["method"], r["si_sdr"], r["delta_si_sdr"], r["sir"], r["sar"], r["mrstft"]]
            for r in results["rows"]]
    return report.table_section(
        "## The shipped example", results["meta"],
        f"The 10 s clip in `examples/`, scored against `vocals_true.flac`; stemclean is `{results['model']}` "
        f"(SHA-256 `{results['model_sha256'][:12]}…`) at default settings, as README's first run uses it. "
        "`tests/test_shipped_model.py` holds the shipped model to its SI-SDR gain on the first case and its SIR gain "
        "on the second, read from these results.",
        ["input", "method", "SI-SDR", "ΔSI-SDR", "SIR", "SAR", "MR-STFT"], body)


def main(model: Path = typer.Option(None, help="Model to score (default: the shipped one or $STEMCLEAN_MODEL).")):
    """Score the shipped example and save benchmarks/results/example.json."""
    import torch

    torch.set_num_threads(1)  # BSS Eval runs on torch; one thread leaves the other core to training
    try:
        results = run(model or default_model_path())
    except (FileNotFoundError, ModelError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {report.save_results(RESULTS_NAME, results)}")


if __name__ == "__main__":
    typer.run(main)
