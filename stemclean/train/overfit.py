"""The overfit check of issue 20: can the network fit the real Spleeter pairs of three training songs?

A network that cannot reach most of the oracle mask's gain on songs it was trained on cannot represent the fix, and
a long run would only confirm that; so this runs before scaling up. ``scripts/overfit_check.sh`` trains on the
songs alone (``fit --songs``); this module scores a checkpoint on the same songs' middle excerpts and writes the
model's and the oracle mask's ΔSI-SDR and their ratio (the bar is 0.75):

    python -m stemclean.train.overfit runs/overfit/last.pt --songs A,B,C --out benchmarks/results/overfit.json
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from stemclean.files import write_text_atomic
from stemclean.train import validate
from stemclean.train.export import load_checkpoint
from stemclean.train.fit import steps_done

BAR = 0.75  # share of the oracle's gain the network must reach on its own training songs


def main(
    checkpoint: Path,
    songs: str = typer.Option(..., help="The comma-separated training song ids the checkpoint was fitted on."),
    corpus: Path = typer.Option(Path("data/corpus")),
    spleeter: Path = typer.Option(Path("data/spleeter")),
    seconds: float = typer.Option(20.0, help="Excerpt length from each song's middle."),
    out: Path = typer.Option(None, help="Also write the result here as JSON."),
) -> None:
    """Score CHECKPOINT on the Spleeter pairs of the songs it was fitted on, against the oracle mask."""
    model, state = load_checkpoint(checkpoint)
    ids = tuple(songs.split(","))
    cases = [c for c in validate.val_cases(corpus, spleeter, seconds, split="train", songs=ids) if c.kind == "spleeter"]
    if not cases:
        raise typer.BadParameter(f"no Spleeter pairs for {songs} in the train split")
    scores = validate.score(model, cases, oracle=True)
    result = {"songs": list(ids), "checkpoint": str(checkpoint), "steps": steps_done(state), "seconds": seconds,
              "model": scores["spleeter"], "oracle": scores["oracle"]["spleeter"], "rows": scores["rows"],
              "oracle_rows": scores["oracle"]["rows"], "bar": BAR}
    result["share_of_oracle"] = result["model"] / result["oracle"]
    typer.echo(json.dumps(result, indent=1))
    if out is not None:
        write_text_atomic(out, json.dumps(result, indent=1))


if __name__ == "__main__":
    typer.run(main)
