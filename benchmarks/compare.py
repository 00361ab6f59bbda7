"""Two models' quality results on the same cases, compared case by case: how sure a swap can be of its margin.

The swap rule (docs/TRAINING.md) compares means, and one case's swing between two snapshots can be larger than the
margin. This pairs each case's ΔSI-SDR under model B with its own under model A and reports the mean difference per
stem with a 95% interval from resampling whole songs (a song's stems share its music, so they are not independent),
the share of cases B wins, and how many it wins or loses by more than half a dB.

    python -m benchmarks.compare A.json B.json [--source spleeter] [--method stemclean@auto]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

RESAMPLES = 2000
AUDIBLE_DB = 0.5


def case_gains(path: Path, method: str, source: str = "spleeter") -> dict[tuple[str, str], float]:
    """ΔSI-SDR of ``method`` per (song, stem) on the ``source`` cases of a benchmarks.quality results file."""
    rows = json.loads(path.read_text())["rows"]
    return {(r["song"], r["stem"]): r["delta_si_sdr"] for r in rows
            if r["method"] == method and r["source"] == source}


def paired(a: dict, b: dict, seed: int = 0) -> list[dict]:
    """Per stem and over all stems: B's mean gain over A's on the cases both scored, with its song-resampled 95%
    interval."""
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("the two results share no case")
    rng = np.random.default_rng(seed)
    stems = sorted({key[1] for key in common})
    summary = []
    for stem in [*stems, "all"]:
        keys = [key for key in common if stem in ("all", key[1])]
        by_song: dict[str, list[float]] = {}
        for key in keys:
            by_song.setdefault(key[0], []).append(b[key] - a[key])
        songs = list(by_song.values())
        diffs = np.concatenate(songs)
        draws = rng.integers(0, len(songs), size=(RESAMPLES, len(songs)))
        means = [np.mean(np.concatenate([songs[i] for i in draw])) for draw in draws]
        low, high = np.percentile(means, [2.5, 97.5])
        summary.append({"stem": stem, "cases": len(diffs), "mean_difference": float(diffs.mean()),
                        "interval_95": [float(low), float(high)], "b_wins": float(np.mean(diffs > 0)),
                        "b_gains_audibly": int(np.sum(diffs > AUDIBLE_DB)),
                        "b_loses_audibly": int(np.sum(diffs < -AUDIBLE_DB))})
    return summary


def main(first: Path, second: Path,
         source: str = typer.Option("spleeter", help="The kind of case to compare (a quality run's sources)."),
         method: str = typer.Option("stemclean@auto", help="The method row to compare in both files.")) -> None:
    """Compare SECOND's model against FIRST's on the cases of one source both scored."""
    try:
        summary = paired(case_gains(first, method, source), case_gains(second, method, source))
    except (OSError, ValueError, KeyError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{second.name} against {first.name}, {method} on {source}: ΔSI-SDR difference in dB")
    for row in summary:
        low, high = row["interval_95"]
        typer.echo(f"{row['stem']:>14}: {row['mean_difference']:+.3f} [95% {low:+.3f}, {high:+.3f}] over "
                   f"{row['cases']} cases; wins {row['b_wins']:.0%}, by >{AUDIBLE_DB:g} dB {row['b_gains_audibly']}, "
                   f"loses by >{AUDIBLE_DB:g} dB {row['b_loses_audibly']}")


if __name__ == "__main__":
    typer.run(main)
