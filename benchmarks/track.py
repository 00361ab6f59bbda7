"""Whole-track benchmark: every stem of a song cleaned on its own ("independent") or together ("joint").

Quality, on the excerpt of each test song that ``benchmarks.quality`` scores (same window, same ladder seeds):

- ``ladder t=…``: the four stems, each damaged by the artifact ladder at level t;
- ``spleeter``: the real Spleeter 2stems outputs (vocals, accompaniment), where they have been made;
- ``clean``: the four true stems (do no harm: the joint cleanup must return them unchanged).

Each case goes through ``stemclean.clean_track`` with consistency off (exactly ``stemclean.clean`` on each stem) and
on. Reported: each stem's SI-SDR change for both, and the sum-to-mix error (``mix - sum of stems`` in dB relative to
the mix) of the input stems and of both outputs.

Speed, each a whole process: ``stemclean run`` once per stem against one ``stemclean track`` (consistency on and
off) on a full test song with ladder-damaged stems; and the peak RSS of ``stemclean track`` on a short and a 20-minute
synthetic 6-stem track, which must stay flat.

Run: ``python -m benchmarks.track [--model PATH]``; ``--smoke`` runs on a tiny synthetic corpus in seconds.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import soundfile as sf
import typer

import stemclean
from benchmarks import quality, report
from benchmarks.speed import timed
from stemclean.audio import AudioError
from stemclean.engine import Model, ModelError, default_model_path
from stemclean.spectral import SAMPLE_RATE
from stemclean.train import metrics
from stemclean.train.degrade import degrade
from stemclean.train.separators import SPLEETER_STEMS

RESULTS_NAME = "track.json"
# Three ladder levels, so that a weighting that suits one damage and hurts another shows (the quality section has one).
LEVELS = (0.25, 0.5, 0.75)
SPEED_LEVEL = 0.5
MEMORY_STEMS = ("vocals", "drums", "bass", "guitar", "piano", "other")
GOALS = {"sum_error_db": -60.0, "long_over_short_rss": 1.3}
_SYNTH_BLOCK_S = 10


def sum_error_db(stems: list[np.ndarray], mix: np.ndarray) -> float:
    """``mix - sum(stems)`` in dB relative to the mix."""
    error = np.sum((mix.astype(np.float64) - np.sum(stems, axis=0, dtype=np.float64)) ** 2)
    return float(10 * np.log10(max(error / np.sum(mix.astype(np.float64) ** 2), 1e-30)))


def track_cases(songs: list[quality.Song], seconds: float, levels: tuple[float, ...], seed: int):
    """(song, source, {name: damaged stem}, {name: true stem}, mix) for every case; arrays are (channels, samples)."""
    for song_index, song in enumerate(songs):
        window, stems, mix = quality.load_excerpt(song, seconds)
        truths = quality.with_accompaniment(stems)
        pair = {name: quality.read_estimate(song.separated[name], mix.shape[1], window) if name in song.separated
                else None for name in SPLEETER_STEMS}
        if all(audio is not None for audio in pair.values()):
            yield song.id, "spleeter", pair, {name: truths[name] for name in SPLEETER_STEMS}, mix
        for level_index, level in enumerate(levels):
            damaged = {}
            for stem_index, name in enumerate(quality.CORPUS_STEMS):  # the seeds of benchmarks.quality's cases
                rng = np.random.default_rng([seed, song_index, level_index, stem_index])
                damaged[name] = degrade(stems[name], mix - stems[name], level, rng, name)
            yield song.id, f"ladder t={level:g}", damaged, stems, mix
        yield song.id, "clean", stems, stems, mix


def score_case(stems: dict[str, np.ndarray], truths: dict[str, np.ndarray], mix: np.ndarray, model: Model) -> dict:
    """Both cleanups of one case: per-stem SI-SDR changes and the three sum-to-mix errors."""
    layout = {name: audio.T for name, audio in stems.items()}
    outputs = {
        mode: {name: audio.T for name, audio in stemclean.clean_track(
            layout, mix.T, SAMPLE_RATE, consistency=mode == "joint", model=model).items()}
        for mode in ("independent", "joint")
    }
    per_stem = []
    for name, truth in truths.items():
        before = metrics.si_sdr(stems[name], truth)
        per_stem.append({
            "stem": name,
            "input_si_sdr": round(before, 3),
            **{f"delta_{mode}": round(metrics.si_sdr(outputs[mode][name], truth) - before, 3) for mode in outputs},
            "joint_unchanged": bool(np.array_equal(outputs["joint"][name], stems[name])),
        })
    errors = {"input": sum_error_db(list(stems.values()), mix)}
    errors |= {mode: sum_error_db(list(out.values()), mix) for mode, out in outputs.items()}
    return {"stems": per_stem, "sum_error_db": {k: round(v, 2) for k, v in errors.items()}}


def run_quality(corpus: Path, spleeter: Path, split: str, seconds: float, levels: tuple[float, ...], seed: int,
                max_songs: int | None, model: Model) -> dict:
    """Every case of :func:`track_cases`, scored; a case the joint cleanup refuses is recorded with its reason."""
    songs = quality.corpus_songs(corpus, spleeter, split)[:max_songs]
    if not songs:
        raise ValueError(f"the corpus at {corpus} has no songs in split {split!r}")
    cases = []
    for song, source, stems, truths, mix in track_cases(songs, seconds, levels, seed):
        try:
            scored = score_case(stems, truths, mix, model)
        except AudioError as err:
            scored = {"refused": str(err)}
        cases.append({"song": song, "source": source, **scored})
        typer.echo(f"{song} {source}: {scored.get('sum_error_db', scored.get('refused'))}", err=True)
    return {"config": {"split": split, "songs": [song.id for song in songs], "excerpt_s": seconds, "levels": list(levels), "seed": seed},
            "cases": cases}


def write_track(folder: Path, seconds: int, names: tuple[str, ...]) -> Path:
    """A synthetic separated track in demucs' layout plus ``mixture.wav`` beside it, written block by block so a
    20-minute track costs no memory. Each true source has its own pitch and rhythm; each separated stem keeps 80 % of
    its source and gets an equal part of 20 % of the rest, as a mask-based separator would, so they still add up."""
    folder.mkdir(parents=True)
    files = {name: sf.SoundFile(folder / f"{name}.wav", "w", SAMPLE_RATE, 2, subtype="FLOAT")
             for name in (*names, "mixture")}
    try:
        for start in range(0, seconds, _SYNTH_BLOCK_S):
            rng = np.random.default_rng(start)
            t = start + np.arange(min(_SYNTH_BLOCK_S, seconds - start) * SAMPLE_RATE) / SAMPLE_RATE
            sources = []
            for index in range(len(names)):
                note = 55.0 * 2 ** (index * 7 / 12) * 2 ** (np.floor(t * (1 + index)) % 7 / 12)
                gate = np.sin(2 * np.pi * (1 + index) * t) > -0.2
                tone = sum(0.1 / k * np.sin(2 * np.pi * k * note * t) for k in range(1, 5)) * gate
                sources.append(np.stack([tone, 0.9 * tone], axis=1) + 0.01 * rng.standard_normal((len(t), 2)))
            mix = np.sum(sources, axis=0)
            for name, source in zip(names, sources):
                files[name].write((0.8 * source + 0.2 * (mix - source) / (len(names) - 1)).astype(np.float32))
            files["mixture"].write(mix.astype(np.float32))
    finally:
        for f in files.values():
            f.close()
    return folder


def _track_process(folder: Path, mix: Path, model: Path, *args: str) -> dict:
    """One whole ``stemclean track`` process: wall time, peak RSS and its summary."""
    command = [sys.executable, "-m", "stemclean", "track", str(folder), "--mix", str(mix), "-o", str(folder / "out"),
               "--overwrite", "--model", str(model), "--json", "--quiet", *args]
    measured, stdout = timed(command)
    summary = json.loads(stdout)
    return {**measured, "stems": len(summary["stems"]), "seconds": summary["seconds"],
            "sum_error_after_db": summary["sum_error_after_db"], "engine_s": summary["processing_s"]}


def run_speed(corpus: Path, split: str, song: str, model: Path, short_seconds: int, long_seconds: int) -> dict:
    """``run`` per stem against ``track`` on one full song, and ``track``'s memory on a short and a long 6-stem track."""
    with tempfile.TemporaryDirectory(prefix="stemclean-track-") as tmp:
        folder, results = Path(tmp) / "song", {"song": song, "level": SPEED_LEVEL}
        folder.mkdir()
        mix = quality.read_audio(corpus / split / song / "mixture.wav")
        for index, name in enumerate(quality.CORPUS_STEMS):
            stem = quality.read_audio(corpus / split / song / f"{name}.wav")
            damaged = degrade(stem, mix - stem, SPEED_LEVEL, np.random.default_rng([0, index]), name)
            sf.write(folder / f"{name}.wav", damaged.T, SAMPLE_RATE, subtype="FLOAT")
        mix_path = Path(tmp) / "mixture.wav"
        sf.write(mix_path, mix.T, SAMPLE_RATE, subtype="FLOAT")
        runs = []
        for name in quality.CORPUS_STEMS:
            command = [sys.executable, "-m", "stemclean", "run", str(folder / f"{name}.wav"), "--mix", str(mix_path),
                       "-o", str(Path(tmp) / f"{name}_run.wav"), "--model", str(model), "--quiet"]
            runs.append(timed(command)[0])
        results["run_per_stem"] = {"wall_s": sum(r["wall_s"] for r in runs),
                                   "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
        results["seconds"] = mix.shape[1] / SAMPLE_RATE
        results["track_off"] = _track_process(folder, mix_path, model, "--consistency", "off")
        results["track_on"] = _track_process(folder, mix_path, model)
        memory = {}
        for label, seconds in (("short", short_seconds), ("long", long_seconds)):
            synthetic = write_track(Path(tmp) / label, seconds, MEMORY_STEMS)
            memory[label] = _track_process(synthetic, synthetic / "mixture.wav", model)
            for path in synthetic.rglob("*.wav"):
                path.unlink()  # the long track's 6 stems take ~1.3 GB per copy
        results["memory"] = memory
    return results


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _sources(cases: list[dict]) -> list[str]:
    order = {"spleeter": 0, "clean": 2}
    return sorted({c["source"] for c in cases}, key=lambda s: (order.get(s, 1), s))


def summarize(cases: list[dict]) -> dict:
    """Means per (source, stem) of the SI-SDR changes, and per source of the sum-to-mix errors."""
    scored = [c for c in cases if "stems" in c]
    per_stem = {}
    for source in _sources(scored):
        rows = [row for c in scored if c["source"] == source for row in c["stems"]]
        for stem in dict.fromkeys(row["stem"] for row in rows):
            mine = [row for row in rows if row["stem"] == stem]
            per_stem[f"{source}/{stem}"] = {
                "source": source, "stem": stem, "cases": len(mine),
                **{key: _mean([row[key] for row in mine])
                   for key in ("input_si_sdr", "delta_independent", "delta_joint")},
                "unchanged": sum(row["joint_unchanged"] for row in mine),
            }
    sums = {}
    for source in _sources(scored):
        mine = [c["sum_error_db"] for c in scored if c["source"] == source]
        sums[source] = {"cases": len(mine), **{key: _mean([m[key] for m in mine])
                                                for key in ("input", "independent", "joint")},
                        "joint_worst": max(m["joint"] for m in mine)}
    return {"per_stem": per_stem, "sum_error": sums}


def markdown(results: dict) -> str:
    """The whole-track section of docs/BENCHMARKS.md."""
    config, summary = results["config"], results["summary"]
    lines = [
        "## Whole-track cleanup: joint against independent",
        "",
        report.how_measured(results["meta"]),
        f"Model: `{results['model']}`. Split `{config['split']}`: {len(config['songs'])} songs, the same "
        f"{config['excerpt_s']:g} s excerpt and ladder seeds as the quality section. Every stem of a case is cleaned "
        "by `stemclean.clean_track` at `--steps auto`, with consistency off (*independent*: exactly `stemclean.clean` "
        "on each stem) and on (*joint*: the residual `mix − Σ cleaned` spread over every stem that is not silent, in "
        "proportion to each one's estimated error per time-frequency bin, as `stemclean/consistency.py` describes; its "
        "shares were fitted on the val split by `python -m benchmarks.shares`). ΔSI-SDR is each output's SI-SDR minus "
        "its input's, in dB.",
    ]
    per_stem = list(summary["per_stem"].values())
    for source in dict.fromkeys(row["source"] for row in per_stem):
        rows = [r for r in per_stem if r["source"] == source]
        if source == "clean":
            unchanged, total = sum(r["unchanged"] for r in rows), sum(r["cases"] for r in rows)
            lines += ["", f"Do no harm: of {total} true stems put in, the joint cleanup returned {unchanged} "
                          "bit-identical."]
            continue
        body = [[r["stem"], r["cases"], r["input_si_sdr"], r["delta_independent"], r["delta_joint"],
                 r["delta_joint"] - r["delta_independent"]] for r in rows]
        body.append(["mean", sum(r["cases"] for r in rows), _mean([r["input_si_sdr"] for r in rows]),
                     _mean([r["delta_independent"] for r in rows]), _mean([r["delta_joint"] for r in rows]),
                     _mean([r["delta_joint"] - r["delta_independent"] for r in rows])])
        title = "Real Spleeter 2stems outputs" if source == "spleeter" else f"Artifact ladder at {source[7:]}"
        lines += ["", f"### {title}", "", report.table(
            ["stem", "cases", "input SI-SDR", "ΔSI-SDR independent", "ΔSI-SDR joint", "joint − independent"], body)]
    damaged = [r for r in per_stem if r["source"] != "clean"]
    worse = [f"{r['source']} {r['stem']}" for r in damaged if r["delta_joint"] < r["delta_independent"]]
    gain = _mean([r["delta_joint"] - r["delta_independent"] for r in damaged])
    lines += ["", f"Joint minus independent, mean over every damaged source and stem: {gain:+.2f} dB. Stem types whose "
                  f"mean is worse with the joint cleanup: {', '.join(worse) if worse else 'none'}."]
    goal = results["goals"]["sum_error_db"]
    sums = summary["sum_error"]
    body = [[source, s["cases"], s["input"], s["independent"], s["joint"], s["joint_worst"]]
            for source, s in sums.items()]
    worst = max(s["joint_worst"] for s in sums.values())
    lines += ["", "### Do the stems add up to the mix?", "",
              "`mix − Σ stems` in dB relative to the mix (lower is better; the mean over cases, and the joint "
              "cleanup's worst case).", "",
              report.table(["source", "cases", "input stems", "independent", "joint", "joint, worst"], body), "",
              f"Target with consistency on: at most {goal:g} dB. Worst joint case: {worst:.1f} dB "
              f"({'met' if worst <= goal else 'missed'}). The clean stems are left as they are, so their row shows "
              "the input's own error (the corpus's mixture is the float sum of its stems)."]
    refused = [c for c in results["cases"] if "refused" in c]
    if refused:
        lines += ["", f"Refused cases ({len(refused)}): " + "; ".join(
            f"{c['song']} {c['source']}: {c['refused']}" for c in refused)]
    if "speed" in results:
        lines += ["", *_speed_lines(results["speed"], results["goals"])]
    return "\n".join(lines) + "\n"


def _speed_lines(speed: dict, goals: dict) -> list[str]:
    each = speed["run_per_stem"]
    rows = [["`stemclean run` on each of the 4 stems (4 processes)", each["wall_s"], f"{each['peak_rss_mb']:.0f} MB",
             1.0]]
    for key, label in (("track_off", "`stemclean track --consistency off`"), ("track_on", "`stemclean track`")):
        r = speed[key]
        rows.append([label, r["wall_s"], f"{r['peak_rss_mb']:.0f} MB", r["wall_s"] / each["wall_s"]])
    short, long = speed["memory"]["short"], speed["memory"]["long"]
    ratio = long["peak_rss_mb"] / short["peak_rss_mb"]
    return [
        "### Time and memory",
        "",
        f"Whole processes on the full song `{speed['song']}` ({speed['seconds']:.0f} s, stereo 44.1 kHz), its four "
        f"stems damaged by the ladder at t={speed['level']:g}, default settings:",
        "",
        report.table(["what", "wall s", "peak RSS", "time / run per stem"], rows),
        "",
        f"Memory with 6 stems (synthetic, stereo, damaged so the sampler runs): `stemclean track` peaked at "
        f"{short['peak_rss_mb']:.0f} MB on {short['seconds'] / 60:g} minutes and {long['peak_rss_mb']:.0f} MB on "
        f"{long['seconds'] / 60:g} minutes ({ratio:.2f}x; {'within' if ratio <= goals['long_over_short_rss'] else 'over'}"
        f" the {goals['long_over_short_rss']}x limit), with sum-to-mix errors of {short['sum_error_after_db']:.1f} and "
        f"{long['sum_error_after_db']:.1f} dB.",
    ]


def main(
    corpus: Annotated[Path, typer.Option(help="Rendered corpus (manifest.json + split folders).")] = Path("data/corpus"),
    spleeter: Annotated[Path, typer.Option(help="Spleeter outputs, <split>/<song>/{vocals,accompaniment}.wav.")] = Path(
        "data/spleeter"),
    split: Annotated[str, typer.Option(help="Which split to score; only test is reported.")] = "test",
    seconds: Annotated[float, typer.Option(help="Excerpt length per song.")] = 12.0,
    levels: Annotated[str, typer.Option(help="Ladder levels, comma-separated.")] = ",".join(f"{t:g}" for t in LEVELS),
    seed: Annotated[int, typer.Option(help="Seed of the ladder cases.")] = 0,
    max_songs: Annotated[Optional[int], typer.Option(help="Score only the first N songs.")] = None,
    model: Annotated[Optional[Path], typer.Option(help="ONNX model. Default: $STEMCLEAN_MODEL or the shipped one.")] = None,
    speed: Annotated[bool, typer.Option(help="Also time run against track and check track's memory.")] = True,
    short_seconds: Annotated[int, typer.Option(help="Length of the short 6-stem memory track.")] = 180,
    long_seconds: Annotated[int, typer.Option(help="Length of the long 6-stem memory track.")] = 1200,
    out: Annotated[Optional[Path], typer.Option(help="Results folder (default benchmarks/results).")] = None,
    smoke: Annotated[bool, typer.Option(help="Run on a tiny synthetic corpus in a temporary folder.")] = False,
) -> None:
    """Score independent against joint cleanup of whole tracks on the test split, and time both."""
    import torch

    torch.set_num_threads(1)  # BSS Eval runs on torch; one thread leaves the other core to training
    model = model or default_model_path()
    level_values = tuple(float(v) for v in levels.split(","))
    if smoke:
        scratch = Path(tempfile.mkdtemp(prefix="stemclean-track-smoke-"))
        corpus, out = quality.synthetic_corpus(scratch / "corpus", songs=1, seconds=2.5), out or scratch
        seconds, level_values, short_seconds, long_seconds = 2.0, (0.5,), 10, 20
    try:
        loaded = Model(model, device="cpu")
        results = {"meta": report.provenance(), "model": str(model), "goals": GOALS,
                   **run_quality(corpus, spleeter, split, seconds, level_values, seed, max_songs, loaded)}
        if speed:
            results["speed"] = run_speed(corpus, split, results["config"]["songs"][0], model, short_seconds,
                                         long_seconds)
    except (FileNotFoundError, ValueError, ModelError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from None
    results["summary"] = summarize(results["cases"])
    path = report.save_results(RESULTS_NAME, results, out or report.RESULTS)
    typer.echo(f"wrote {path}", err=True)


if __name__ == "__main__":
    typer.run(main)
