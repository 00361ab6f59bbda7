"""Quality benchmark: every cleaner on the same cases from one split of the corpus, scored against exact ground truth.

The test split is only reported (``benchmarks/results/quality.json``); choices (``schedule.AUTO_STEPS``, the model-swap
rules of docs/TRAINING.md, probes) are made on ``--split val`` (``quality-val.json``), and both are on the page.

Two corpora, told apart by their layout: the rendered corpus (``--corpus data/corpus``: four ``.wav`` stems and
``mixture.wav`` per song, Spleeter pairs under ``--spleeter``) and the real-recordings corpus (``--corpus data/real``,
the folder ``stemclean.train.realcorpus`` makes: vocals and accompaniment as FLAC, the mixture their exact sum, its
Spleeter pairs inside it), listed by ``realcorpus.load_pairs``. The real corpus's results are saved as
``quality-real.json`` (test) and ``quality-real-val.json``; the page divides the model's gain on its Spleeter pairs by
its gain on the rendered ones (the realism ratio, :func:`realism`).

Cases, all on one fixed-length excerpt per song (the window where the weakest stem is loudest):

- ``spleeter``: real Spleeter 2stems outputs (vocals, accompaniment) against the true vocals and accompaniment
  (drums+bass+other in the rendered corpus);
- ``bleed``: a true stem with the rest of the mix leaking in (the rows of ``validate.BLEED_ROWS`` whose stem the
  corpus has), the closed-form de-bleed's ground;
- ``ladder t=…``: the artifact ladder ``degrade``, the training sampler's own damage, for each true stem;
- ``clean``: the true stem itself goes in ("do no harm").

Methods: identity, norbert softmask and Wiener, lsdebleed (the closed-form local least-squares de-bleed), the oracle
ideal ratio mask (the best real-valued mask on the mixture), and, with ``--model``, stemclean at every requested step
count. Metrics: SI-SDR and its change, SIR and SAR with the true stem and true residual as sources, the
multi-resolution STFT distance, and the gap closed ``(method - input) / (oracle - input)`` in SI-SDR.

Run: ``python -m benchmarks.quality [--corpus data/real] [--split val] [--model PATH --steps 1,2,4,auto]`` (the
shipped model is scored by default when it exists); ``--smoke`` runs on a tiny synthetic corpus in seconds. A run
that was stopped resumes at its next case when the same command is rerun at the same commit (``report.Partial``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import typer

import stemclean
from benchmarks import report
from stemclean.engine import Model, ModelError, default_model_path, load_model
from stemclean.spectral import SAMPLE_RATE, istft, stft
from stemclean.train import baselines, corpus as rendered_corpus, metrics, realcorpus
from stemclean.train.degrade import add_leak, degrade
from stemclean.train.separators import SPLEETER_STEMS
from stemclean.train.validate import BLEED_ROWS

CORPUS_STEMS = ("vocals", "drums", "bass", "other")
ACCOMPANIMENT_PARTS = ("drums", "bass", "other")
# One ladder level, near where real Spleeter outputs sit (fitted t 0.7-0.9 in the calibration section).
LEVELS = (0.75,)
EXCERPT_S = 8.0
# Gap closed is only reported where the oracle beats the input by this much; below it the ratio is noise.
GAP_MIN_HEADROOM_DB = 0.5
BASELINE_NAMES = ("identity", "softmask", "wiener", "lsdebleed", "oracle")
# Sources in page order: real separator output first, the training distribution (the ladder) after the bleed cases.
SOURCE_ORDER = ("spleeter", "bleed", "ladder", "clean")
# The method whose gains the README and the realism ratio quote: stemclean at default settings.
DEFAULT_METHOD = "stemclean@auto"
# The realism ratio's goal (issue 21): the gain on real recordings keeps at least this share of the rendered gain.
REALISM_GOAL = 0.75

Method = Callable[["Case"], np.ndarray]


def add_bleed(truth: np.ndarray, mix: np.ndarray, row: tuple) -> np.ndarray:
    """``truth`` (channels, samples) with the rest of the mix (``mix - truth``) leaking in as a bleed row of
    ``validate.BLEED_ROWS`` says: the rows the val set scores during training, so both measure the same cases."""
    _, _, below_db, delay_s, cutoff_hz = row
    truth_spec = stft(truth)
    return istft(add_leak(truth_spec, stft(mix) - truth_spec, below_db, delay_s, cutoff_hz), truth.shape[-1])


@dataclass
class Song:
    """One song of a corpus: its true stems' files, the Spleeter estimates that exist, and its mixture file (None where
    the mixture is the exact sum of the stems, as in the real-recordings corpus)."""

    id: str
    stems: dict[str, Path]
    separated: dict[str, Path]
    mixture: Path | None = None


@dataclass
class Case:
    """One cleaning problem: the damaged ``stem`` (channels, samples), its ``truth`` and the ``mix`` it came from."""

    song: str
    source: str
    stem_type: str
    stem: np.ndarray
    truth: np.ndarray
    mix: np.ndarray


def excerpt_window(stems: dict[str, np.ndarray], seconds: float) -> slice:
    """The window of ``seconds`` (on a 1 s grid) where the quietest stem is loudest, so every stem has content."""
    length = next(iter(stems.values())).shape[-1]
    width = int(seconds * SAMPLE_RATE)
    if length <= width:
        return slice(0, length)
    blocks = length // SAMPLE_RATE
    per_second = np.stack([
        np.sum(audio[:, : blocks * SAMPLE_RATE].reshape(audio.shape[0], blocks, SAMPLE_RATE) ** 2, axis=(0, 2))
        for audio in stems.values()
    ])
    window = int(seconds)
    sums = np.stack([np.convolve(e, np.ones(window), mode="valid") for e in per_second])
    start = int(np.argmax(np.min(np.log10(sums + 1e-12), axis=0))) * SAMPLE_RATE
    return slice(start, start + width)


def read_audio(path: Path, window: slice | None = None) -> np.ndarray:
    """A float32 (channels, samples) read of ``path``, optionally only ``window``."""
    start, stop = (window.start, window.stop) if window else (0, None)
    audio, rate = sf.read(path, start=start, stop=stop, dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{path}: expected {SAMPLE_RATE} Hz, got {rate}")
    return audio.T


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """``audio`` cut or zero-padded to ``length`` samples (separator outputs may differ by a few samples)."""
    return np.pad(audio[:, :length], ((0, 0), (0, max(0, length - audio.shape[1]))))


def read_estimate(path: Path, length: int, window: slice | None = None) -> np.ndarray | None:
    """A separator's output at ``path`` fitted to ``length`` samples (optionally only ``window``); None if absent."""
    return fit_length(read_audio(path, window), length) if path.exists() else None


def read_separated(spleeter: Path, split: str, song: str, name: str, length: int,
                   window: slice | None = None) -> np.ndarray | None:
    """Spleeter's ``name`` output of a rendered ``song`` fitted to ``length`` samples; None if absent."""
    return read_estimate(spleeter / split / song / f"{name}.wav", length, window)


def load_excerpt(song: Song, seconds: float) -> tuple[slice, dict[str, np.ndarray], np.ndarray]:
    """The excerpt window of a song, its true stems and its mixture over that window."""
    window = excerpt_window({name: read_audio(path) for name, path in song.stems.items()}, seconds)
    stems = {name: read_audio(path, window) for name, path in song.stems.items()}
    return window, stems, song_mixture(song, stems, window)


def song_mixture(song: Song, stems: dict[str, np.ndarray], window: slice | None = None) -> np.ndarray:
    """A song's mixture over ``window`` (default: all of it): its file, or the sum of ``stems`` (read over the same
    window) where the corpus stores none because the mixture is their exact sum."""
    return read_audio(song.mixture, window) if song.mixture else sum(stems.values())


def split_songs(corpus: Path, split: str) -> list[str]:
    """Song ids of ``split`` in the corpus manifest, in a fixed order."""
    manifest = corpus / "manifest.json"
    if not manifest.exists():
        raise FileNotFoundError(f"no corpus manifest at {manifest}; render the corpus first (docs/TRAINING.md)")
    return sorted(song["id"] for song in json.loads(manifest.read_text())["songs"] if song["split"] == split)


def is_real(corpus: Path) -> bool:
    """Whether ``corpus`` is a real-recordings folder made by ``stemclean.train.realcorpus`` (``corpus/`` inside)."""
    return (corpus / "corpus" / rendered_corpus.MANIFEST).exists()


def corpus_songs(corpus: Path, spleeter: Path, split: str) -> list[Song]:
    """The songs of ``split``, in a fixed order, from either layout: a rendered corpus with its Spleeter pairs under
    ``spleeter``, or a real-recordings folder (its own Spleeter pairs inside, ``spleeter`` unused)."""
    if is_real(corpus):
        return [Song(pair["id"], {name: pair[name] for name in realcorpus.STEMS},
                     {name: pair[f"spleeter_{name}"] for name in SPLEETER_STEMS if pair[f"spleeter_{name}"]})
                for pair in sorted(realcorpus.load_pairs(corpus, split), key=lambda pair: pair["id"])]
    return [Song(song, {name: corpus / split / song / f"{name}.wav" for name in CORPUS_STEMS},
                 {name: spleeter / split / song / f"{name}.wav" for name in SPLEETER_STEMS},
                 corpus / split / song / "mixture.wav")
            for song in split_songs(corpus, split)]


def with_accompaniment(stems: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The true stems plus their accompaniment (all but the vocals) where the corpus keeps it in parts: the second
    target of Spleeter 2stems."""
    if "accompaniment" in stems:
        return stems
    return {**stems, "accompaniment": sum(stems[name] for name in ACCOMPANIMENT_PARTS)}


def cases(songs: list[Song], seconds: float, levels: tuple[float, ...], seed: int) -> Iterator[Case]:
    """Every case of every song in ``songs``: Spleeter pairs where they exist, bleed, ladder levels, and clean stems."""
    for song_index, song in enumerate(songs):
        window, stems, mix = load_excerpt(song, seconds)
        truths = with_accompaniment(stems)
        for name in SPLEETER_STEMS:
            separated = read_estimate(song.separated[name], mix.shape[1], window) if name in song.separated else None
            if separated is not None:
                yield Case(song.id, "spleeter", name, separated, truths[name], mix)
        for row in bleed_rows(truths):
            truth = truths[row[1]]
            yield Case(song.id, "bleed", row[1], add_bleed(truth, mix, row), truth, mix)
        for level_index, level in enumerate(levels):
            for stem_index, name in enumerate(stems):
                rng = np.random.default_rng([seed, song_index, level_index, stem_index])
                damaged = degrade(stems[name], mix - stems[name], level, rng, name)
                yield Case(song.id, f"ladder t={level:g}", name, damaged, stems[name], mix)
        for name in stems:
            yield Case(song.id, "clean", name, stems[name], stems[name], mix)


def bleed_rows(truths) -> tuple[tuple, ...]:
    """The rows of ``validate.BLEED_ROWS`` whose target stem is among ``truths`` (names or arrays by name)."""
    return tuple(row for row in BLEED_ROWS if row[1] in truths)


def baseline_methods(names: tuple[str, ...] = BASELINE_NAMES) -> dict[str, Method]:
    """The classical cleaners of ``names``, as functions of a case."""
    plain = {name: baselines.BASELINES[name] for name in names if name != "oracle"}
    methods: dict[str, Method] = {
        name: (lambda case, clean=clean: clean(case.stem, case.mix, SAMPLE_RATE)) for name, clean in plain.items()
    }
    if "oracle" in names:
        methods["oracle"] = lambda case: baselines.oracle_irm(case.stem, case.mix, SAMPLE_RATE, case.truth)
    return methods


def model_methods(model: Model | Path, steps: list[str]) -> dict[str, Method]:
    """stemclean at each step count, through the public ``stemclean.clean`` (soundfile layout in and out)."""
    model = load_model(model, device="cpu")

    def at(step: int | str) -> Method:
        return lambda case: np.ascontiguousarray(stemclean.clean(
            case.stem.T, case.mix.T, SAMPLE_RATE, steps=step, stem_type=case.stem_type, model=model
        ).T)

    return {f"stemclean@{s}": at(int(s) if s.isdigit() else s) for s in steps}


def score(case: Case, methods: dict[str, Method]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """One row per method for ``case``, and the estimates themselves."""
    rows, estimates = [], {}
    input_si_sdr = metrics.si_sdr(case.stem, case.truth)
    for name, method in methods.items():
        began = time.perf_counter()
        estimate = method(case)
        seconds = time.perf_counter() - began
        values = metrics.evaluate(estimate, case.truth, case.mix)
        rows.append({"song": case.song, "source": case.source, "stem": case.stem_type, "method": name,
                     **{k: round(v, 3) for k, v in values.items()},
                     "delta_si_sdr": round(values["si_sdr"] - input_si_sdr, 3), "seconds": round(seconds, 3)})
        estimates[name] = estimate
    return rows, estimates


def summarize(rows: list[dict]) -> list[dict]:
    """Means per (source, stem, method), plus each source's mean over all stems, with the gap closed in SI-SDR."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        for stem in (row["stem"], "all"):
            groups.setdefault((row["source"], stem, row["method"]), []).append(row)
    means = {
        key: {k: float(np.mean([r[k] for r in members])) for k in ("si_sdr", "delta_si_sdr", "sir", "sar", "mrstft")}
        | {"cases": len(members)}
        for key, members in groups.items()
    }
    summary = []
    for (source, stem, method), values in means.items():
        oracle = means.get((source, stem, "oracle"))
        headroom = oracle["delta_si_sdr"] if oracle else 0.0
        gap = values["delta_si_sdr"] / headroom if source != "clean" and headroom > GAP_MIN_HEADROOM_DB else None
        summary.append({"source": source, "stem": stem, "method": method, **values, "gap_closed": gap})
    return summary


def results_name(split: str, real: bool = False) -> str:
    """The results file of a split: the test split's is the report, any other is named after its split; the
    real-recordings corpus's carry ``-real``."""
    return "-".join(["quality"] + ["real"] * real + [split] * (split != "test")) + ".json"


def run(corpus: Path, spleeter: Path, split: str, seconds: float, levels: tuple[float, ...], seed: int,
        max_songs: int | None, model: Path | None, steps: list[str], images: Path,
        sources: tuple[str, ...] = SOURCE_ORDER, partial: report.Partial | None = None,
        baseline_names: tuple[str, ...] = BASELINE_NAMES) -> dict:
    """Score every method on every case of ``sources`` and draw the plots; returns the results to save. Cases that
    ``partial`` holds from a stopped run are not scored again, except the spectrogram's case (it needs the audio)."""
    real = is_real(corpus)
    songs = corpus_songs(corpus, spleeter, split)[:max_songs]
    if not songs:
        raise ValueError(f"the corpus at {corpus} has no songs in split {split!r}")
    if unknown := set(sources) - set(SOURCE_ORDER):
        raise ValueError(f"unknown sources {sorted(unknown)}; choose from {', '.join(SOURCE_ORDER)}")
    methods = baseline_methods(baseline_names) | (model_methods(model, steps) if model else {})
    # The before/after spectrogram shows real Spleeter vocals, or the strongest ladder level's vocals without them.
    showcase_rank = {("spleeter", "vocals"): 0, (f"ladder t={levels[-1]:g}", "vocals"): 1}
    rows, showcase = [], None
    for case in cases(songs, seconds, levels, seed):
        if case.source.split()[0] not in sources:
            continue
        rank = showcase_rank.get((case.source, case.stem_type), 2)
        shown_rank = showcase_rank.get((showcase[0].source, showcase[0].stem_type), 2) if showcase else 2
        key = (case.song, case.source, case.stem_type)
        if partial is not None and key in partial.done and rank >= shown_rank:
            rows += partial.done[key]
            typer.echo(f"{case.song} {case.source} {case.stem_type}: scored by the stopped run", err=True)
            continue
        case_rows, estimates = score(case, methods)
        if partial is not None:
            partial.add(key, case_rows)
        rows += case_rows
        if rank < shown_rank:
            showcase = (case, estimates)
        typer.echo(f"{case.song} {case.source} {case.stem_type}: " + ", ".join(
            f"{r['method']} {r['si_sdr']:.1f}" for r in case_rows), err=True)
    summary = summarize(rows)
    images.mkdir(parents=True, exist_ok=True)
    prefix = Path(results_name(split, real)).stem
    plots = {"methods": _plot_methods(summary, split, images / f"{prefix}_methods.png")}
    if showcase:
        plots["spectrogram"] = _plot_showcase(*showcase, images / f"{prefix}_spectrogram.png")
    if model:
        plots["steps"] = _plot_steps(summary, steps, split, images / f"{prefix}_steps.png")
    return {
        "meta": report.provenance(),
        "config": {"corpus": "real" if real else "rendered", "split": split, "songs": [song.id for song in songs],
                   "sources": list(sources), "baselines": list(baseline_names), "excerpt_s": seconds,
                   "levels": list(levels), "seed": seed,
                   "bleeds": [row[0] for row in bleed_rows([*songs[0].stems, "accompaniment"])],
                   "model": str(model) if model else None,
                   "model_sha256": hashlib.sha256(Path(model).read_bytes()).hexdigest() if model else None,
                   "steps": steps if model else []},
        "plots": {name: os.path.relpath(path, report.ROOT) for name, path in plots.items()},
        "summary": summary,
        "rows": rows,
    }


def _source_order(summary: list[dict]) -> list[str]:
    """The sources present, in :data:`SOURCE_ORDER` (ladder levels by their kind, ``ladder t=…``)."""
    return sorted({s["source"] for s in summary}, key=lambda s: (SOURCE_ORDER.index(s.split()[0]), s))


def _plot_methods(summary: list[dict], split: str, path: Path) -> Path:
    """Bar chart: mean SI-SDR change per method, for each artifact source (all stems pooled)."""
    plt = report.pyplot()

    sources = [s for s in _source_order(summary) if s != "clean"]
    methods = list(dict.fromkeys(s["method"] for s in summary))
    pooled = {(s["source"], s["method"]): s["delta_si_sdr"] for s in summary if s["stem"] == "all"}
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        x = np.arange(len(sources)) + (i - (len(methods) - 1) / 2) * width
        ax.bar(x, [pooled.get((src, method), np.nan) for src in sources], width, label=method)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(sources)), sources)
    ax.set_ylabel("SI-SDR change (dB)")
    ax.set_title(f"Cleaners by artifact source ({split} split, mean over stems and songs)")
    ax.legend(fontsize=8, ncol=min(4, len(methods)))
    return report.save_figure(fig, path)


def _plot_showcase(case: Case, estimates: dict[str, np.ndarray], path: Path) -> Path:
    """Log spectrograms of one case: input, the best cleaner's output, the oracle (when scored), and the truth."""
    plt = report.pyplot()

    from stemclean.spectral import stft

    candidates = [m for m in estimates if m not in ("identity", "oracle")]
    best = max(candidates, key=lambda m: metrics.si_sdr(estimates[m], case.truth))
    oracle = [("oracle IRM", estimates["oracle"])] if "oracle" in estimates else []
    panels = [("input", case.stem), (best, estimates[best]), *oracle, ("truth", case.truth)]
    excerpt = slice(0, min(case.truth.shape[1], 8 * SAMPLE_RATE))
    fig, axes = plt.subplots(1, len(panels), figsize=(14, 3.6), sharey=True)
    for ax, (title, audio) in zip(axes, panels):
        power = 20 * np.log10(np.abs(stft(audio[:, excerpt]).mean(axis=0)) + 1e-6)
        ax.imshow(power, origin="lower", aspect="auto", vmin=power.max() - 90, vmax=power.max(), cmap="magma",
                  extent=(0, excerpt.stop / SAMPLE_RATE, 0, SAMPLE_RATE / 2000))
        ax.set_title(f"{title} ({metrics.si_sdr(audio, case.truth):.1f} dB)", fontsize=9)
        ax.set_xlabel("s")
    axes[0].set_ylabel("kHz")
    fig.suptitle(f"{case.source} {case.stem_type}, {case.song}", fontsize=10)
    return report.save_figure(fig, path)


def _plot_steps(summary: list[dict], steps: list[str], split: str, path: Path) -> Path:
    """Mean SI-SDR change against sampler steps, per artifact source, with Wiener and the oracle for reference."""
    plt = report.pyplot()

    pooled = {(s["source"], s["method"]): s["delta_si_sdr"] for s in summary if s["stem"] == "all"}
    fig, ax = plt.subplots(figsize=(7, 4))
    for source in _source_order(summary):
        line = ax.plot(steps, [pooled.get((source, f"stemclean@{s}"), np.nan) for s in steps], marker="o",
                       label=source)[0]
        ax.axhline(pooled.get((source, "oracle"), np.nan), color=line.get_color(), linestyle=":", linewidth=0.8)
    ax.set_xlabel("sampler steps")
    ax.set_ylabel("SI-SDR change (dB)")
    ax.set_title(f"stemclean quality vs steps, {split} split (dotted: oracle IRM)")
    ax.legend(fontsize=8)
    return report.save_figure(fig, path)


def _title(source: str, config: dict) -> str:
    """A source's table heading, and what the reader must know about its cases."""
    if source == "spleeter":
        return "### Real separator output: Spleeter 2stems"
    if source == "bleed":
        kinds = "; ".join(config.get("bleeds", []))
        return (f"### Additive bleed, made from the true stems\n\nOne case per song of each: {kinds}. The true stem "
                "is known exactly, and the residual `mix − stem` is a reference of the bleed: the ground lsdebleed "
                "is built for.")
    if source == "clean":
        return "### Do no harm: the clean stem goes in"
    return (f"### Artifact ladder at {source.removeprefix('ladder ')}: the training distribution\n\nThese inputs "
            "are made by `degrade`, the same artifact ladder the training sampler draws from, at a level inside its "
            "training range: the model's home ground, not a separator's output.")


def markdown(results: dict) -> str:
    """A quality section of docs/BENCHMARKS.md: the test split's report, or the val split's numbers for choices."""
    config, summary = results["config"], results["summary"]
    split, real = config["split"], config.get("corpus") == "real"
    heading = ("## Quality" if split == "test" else
               f"## Quality on the {split} split, where choices are made\n\nThe same benchmark on the {split} "
               "songs. `schedule.AUTO_STEPS` (the steps curve), the ladder calibration and the model-swap rules of "
               "docs/TRAINING.md are decided on these numbers; the test split above is only reported.")
    if real:
        heading = (f"## Quality on real recordings{'' if split == 'test' else f', {split} split'}\n\nThe same "
                   "benchmark on the real-recordings corpus of `python -m stemclean.train.realcorpus`: real speech, "
                   "sung along a melody or spoken, over real instrumental soundtracks or rendered songs, with test "
                   "speakers and soundtracks never heard in training. Each mix has two true stems, vocals and "
                   "accompaniment, and the mixture is their exact sum; the Spleeter rows are Spleeter 2stems run on "
                   "that mixture.")
    lines = [
        heading,
        "",
        report.how_measured(results["meta"]),
        f"Split `{split}`: {len(config['songs'])} {'mixes' if real else 'songs'}, one {config['excerpt_s']:g} s "
        "excerpt each (the "
        "window where the quietest stem is loudest). SI-SDR, SIR and SAR in dB (higher is better; SIR and SAR from "
        "BSS Eval with the true stem and the true residual as sources); MR-STFT is the multi-resolution STFT distance "
        "(lower is better). Values are means over cases; metrics are clamped at 100 dB, the value a perfect copy gets. "
        "*lsdebleed* is the closed-form local least-squares de-bleed (`baselines.lsdebleed`). The *oracle* is the "
        "ideal ratio mask computed from the true stems and applied to the mixture: the best a real-valued mask on "
        "the mixture can do. It is not a ceiling for methods that also use the separated stem, as lsdebleed and "
        "stemclean do, and on the ladder and bleed cases it often scores below the input. Gap closed = (method − "
        f"input) / (oracle − input) in SI-SDR, shown only where the oracle beats the input by more than "
        f"{GAP_MIN_HEADROOM_DB:g} dB.",
    ]
    for source in _source_order(summary):
        rows = [s for s in summary if s["source"] == source]
        stems = list(dict.fromkeys(s["stem"] for s in rows if s["stem"] != "all")) + ["all"]
        body = [[stem, s["method"], s["cases"], s["si_sdr"], s["delta_si_sdr"], s["sir"], s["sar"], s["mrstft"],
                 None if s["gap_closed"] is None else f"{100 * s['gap_closed']:.0f}%"]
                for stem in stems for s in rows if s["stem"] == stem]
        lines += ["", _title(source, config), "",
                  report.table(["stem", "method", "cases", "SI-SDR", "ΔSI-SDR", "SIR", "SAR", "MR-STFT", "gap closed"],
                               body)]
    for name, caption in (("methods", "Method comparison"), ("spectrogram", "Before and after"),
                          ("steps", "Quality vs steps")):
        if name in results.get("plots", {}):
            image = os.path.relpath(report.ROOT / results["plots"][name], report.PAGE.parent)
            lines += ["", f"![{caption} ({split} split)]({image})"]
    return "\n".join(lines) + "\n"


def realism_ratio(real: dict, rendered: dict) -> float | None:
    """stemclean's mean ΔSI-SDR at default settings on the real-recording Spleeter pairs divided by the same on the
    rendered ones; None where either is missing or the rendered gain is not positive (the ratio then means nothing)."""
    gains = [next((s["delta_si_sdr"] for s in results["summary"]
                   if (s["source"], s["stem"], s["method"]) == ("spleeter", "all", DEFAULT_METHOD)), None)
             for results in (real, rendered)]
    return None if None in gains or gains[1] <= 0 else gains[0] / gains[1]


def realism(real: dict, rendered: dict) -> str:
    """The realism ratio's paragraph for the page, from the real-recordings and the rendered test results."""
    means = [{(s["stem"], s["method"]): s for s in results["summary"] if s["source"] == "spleeter"}
             for results in (real, rendered)]
    if any(("all", DEFAULT_METHOD) not in m for m in means):
        return f"### Realism ratio\n\nNot measured: both results need `{DEFAULT_METHOD}` on Spleeter pairs.\n"

    def gains(m: dict) -> str:
        return ", ".join(f"{stem} {m[(stem, DEFAULT_METHOD)]['delta_si_sdr']:+.2f} dB" for stem in SPLEETER_STEMS
                         if (stem, DEFAULT_METHOD) in m) + f"; all {m[('all', DEFAULT_METHOD)]['delta_si_sdr']:+.2f} dB"

    ratio = realism_ratio(real, rendered)
    verdict = ("undefined: the model does not gain on rendered pairs" if ratio is None else
               f"**{ratio:.2f}** ({'meets' if ratio >= REALISM_GOAL else 'below'} the goal of {REALISM_GOAL:g})")
    configs = [results["config"] for results in (real, rendered)]
    hashes = [c.get("model_sha256") for c in configs]
    names = [Path(c["model"] or "none").name for c in configs]
    same = ("the same model (SHA-256 `" + hashes[0][:12] + "…`)" if hashes[0] and hashes[0] == hashes[1] else
            "different models" if all(hashes) else
            f"models named `{names[0]}` and `{names[1]}` (a SHA-256 is recorded by "
            f"{'neither run' if not any(hashes) else 'one run only'}, so that they are one model is not checked)")
    splits = ", ".join(f"{c.get('corpus', 'rendered')} {c['split']} ({len(c['songs'])})" for c in configs)
    return "\n".join([
        "### Realism ratio", "",
        f"`{DEFAULT_METHOD}`'s mean ΔSI-SDR on real-recording Spleeter pairs divided by the same on rendered Spleeter "
        f"pairs: {verdict}. Real recordings: {gains(means[0])}. Rendered songs: {gains(means[1])}. Computed by "
        f"`benchmarks/report.py` from `{results_name(configs[0]['split'], True)}` and "
        f"`{results_name(configs[1]['split'])}`; splits (songs or mixes): {splits}; {same}.",
    ]) + "\n"


def headline(results: dict, real: dict | None = None) -> str:
    """README's measured claims, from the test split's results: what stemclean at default settings does to real
    separator output (also on the real recordings, given ``real``, their results), to the first bleed case and to
    clean stems, beside the oracle and lsdebleed."""
    def by_row(table: dict) -> dict:
        return {(s["source"], s["stem"], s["method"]): s for s in table["summary"]}

    means = by_row(results)
    ours = "stemclean@auto"
    if ("spleeter", "all", ours) not in means:
        return ""

    def delta(source: str, stem: str, method: str = ours, table: dict = means) -> str:
        return f"{table[(source, stem, method)]['delta_si_sdr']:+.2f} dB"

    def spleeter_change(table: dict) -> str:
        return (f"changes SI-SDR by {delta('spleeter', 'all', table=table)} on average (vocals "
                f"{delta('spleeter', 'vocals', table=table)}, accompaniment "
                f"{delta('spleeter', 'accompaniment', table=table)}), where the oracle mask gains "
                f"{delta('spleeter', 'all', 'oracle', table)}")

    config, meta = results["config"], results["meta"]
    text = (f"Measured on {len(config['songs'])} held-out test songs (`{meta['commit']}`, {meta['date']}; "
            "[docs/BENCHMARKS.md](docs/BENCHMARKS.md)): on real Spleeter 2stems output, `stemclean run` at default "
            f"settings {spleeter_change(means)}.")
    real_means = by_row(real) if real else {}
    if ("spleeter", "all", ours) in real_means:
        text += (f" On Spleeter's output for {len(real['config']['songs'])} test mixes of real recordings (real voices "
                 f"over real music; `{real['meta']['commit']}`), the material closest to users' songs, it "
                 f"{spleeter_change(real_means)}.")
    name, target = BLEED_ROWS[0][:2]
    if ("bleed", target, ours) in means:
        text += (f" On additive bleed ({name}) it changes SI-SDR by {delta('bleed', target)}; the closed-form "
                 f"de-bleed (lsdebleed) by {delta('bleed', target, 'lsdebleed')}.")
    if ("clean", "all", ours) in means:
        text += (f" A clean stem comes out at {means[('clean', 'all', ours)]['si_sdr']:.1f} dB SI-SDR against itself "
                 f"({metrics.CLAMP_DB:g} dB: unchanged).")
    return text


def synthetic_corpus(root: Path, songs: int = 2, seconds: float = 4.0, seed: int = 0) -> Path:
    """A tiny corpus in the real layout, made of tones and noise, for the smoke run and the tests."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    entries = []
    for index in range(songs):
        f0 = rng.uniform(180.0, 360.0)
        syllables = (np.sin(2 * np.pi * rng.uniform(2.0, 4.0) * t) > -0.3).astype(float)
        vocals = syllables * sum(np.sin(2 * np.pi * k * f0 * t + 3 * np.sin(2 * np.pi * 5 * t)) / k for k in range(1, 12))
        hits = np.zeros(n)
        hits[:: int(SAMPLE_RATE * rng.uniform(0.2, 0.4))] = 1.0
        drums = np.convolve(hits, rng.standard_normal(3000) * np.exp(-np.arange(3000) / 400.0))[:n]
        bass = np.sign(np.sin(2 * np.pi * f0 / 4 * t)) * 0.5
        other = sum(np.sin(2 * np.pi * f0 * r * t) for r in (1.26, 1.5, 2.0))
        folder = root / "test" / f"synthetic-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        mixture = np.zeros((2, n), dtype=np.float32)
        for name, mono, pan in (("vocals", vocals, 0.5), ("drums", drums, 0.4), ("bass", bass, 0.5),
                                ("other", other, 0.7)):
            stem = (0.05 * np.stack([mono * (1 - pan), mono * pan])).astype(np.float32)
            mixture += stem
            sf.write(folder / f"{name}.wav", stem.T, SAMPLE_RATE, subtype="FLOAT")
        sf.write(folder / "mixture.wav", mixture.T, SAMPLE_RATE, subtype="FLOAT")
        entries.append({"id": folder.name, "split": "test", "duration_s": seconds, "source": "synthetic"})
    (root / "manifest.json").write_text(json.dumps({"songs": entries}))
    return root


def spleeter_like(target: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """A stand-in for a Spleeter output, (samples, channels) in and out: the target with a third of the rest bleeding
    in, and nothing above 11 kHz."""
    spectrum = np.fft.rfft(target + rest / 3, axis=0)
    spectrum[int(11000 * len(target) / SAMPLE_RATE):] = 0.0
    return np.fft.irfft(spectrum, n=len(target), axis=0).astype(np.float32)


def synthetic_real_corpus(root: Path, songs: int = 2, seconds: float = 4.0, seed: int = 0) -> Path:
    """A tiny corpus in the layout of ``stemclean.train.realcorpus`` (16-bit FLAC vocals and accompaniment, no stored
    mixture, a manifest that ``realcorpus.load_pairs`` reads, Spleeter-like pairs), made from
    :func:`synthetic_corpus`'s songs, for the tests."""
    rendered = synthetic_corpus(root / "rendered", songs, seconds, seed)
    entries = []
    for song in corpus_songs(rendered, root / "none", "test"):
        parts = {name: sf.read(path, dtype="float32")[0] for name, path in song.stems.items()}
        stems = {"vocals": parts["vocals"], "accompaniment": sum(parts[name] for name in ACCOMPANIMENT_PARTS)}
        rendered_corpus.write_folder(root / "corpus" / "test" / song.id, {k: v.T for k, v in stems.items()},
                                     realcorpus.EXT, realcorpus.SUBTYPE)
        pair = {name: root / "corpus" / "test" / song.id / f"{name}.{realcorpus.EXT}" for name in realcorpus.STEMS}
        truth = {name: sf.read(path, dtype="float32")[0] for name, path in pair.items()}  # as stored: 16-bit
        rendered_corpus.write_folder(root / "spleeter" / "test" / song.id, {
            "vocals": spleeter_like(truth["vocals"], truth["accompaniment"]).T,
            "accompaniment": spleeter_like(truth["accompaniment"], truth["vocals"]).T,
        }, realcorpus.EXT, realcorpus.SUBTYPE)
        entries.append({"id": song.id, "split": "test", "duration_s": seconds,
                        "vocals": {"mode": "sung", "group": f"speaker-{song.id}"},
                        "accompaniment": {"group": f"soundtrack-{song.id}"}})
    (root / "corpus" / rendered_corpus.MANIFEST).write_text(json.dumps({"songs": entries}))
    return root


def main(
    corpus: Path = typer.Option(Path("data/corpus"), help="The rendered corpus (manifest.json + split folders), or "
                                "the real-recordings folder of stemclean.train.realcorpus (data/real)."),
    spleeter: Path = typer.Option(Path("data/spleeter"), help="Spleeter outputs of the rendered corpus, "
                                  "<split>/<song>/{vocals,accompaniment}.wav (the real corpus holds its own)."),
    split: str = typer.Option("test", help="Which split to score: test is only reported, val is for choices."),
    seconds: float = typer.Option(EXCERPT_S, help="Excerpt length per song."),
    levels: str = typer.Option(",".join(f"{t:g}" for t in LEVELS), help="Ladder levels, comma-separated."),
    seed: int = typer.Option(0, help="Seed of the ladder cases."),
    max_songs: int = typer.Option(None, help="Score only the first N songs."),
    sources: str = typer.Option(",".join(SOURCE_ORDER), help="Kinds of case to score, comma-separated: a model-swap "
                                "rule on Spleeter pairs needs only 'spleeter'."),
    model: str = typer.Option("auto", help="stemclean model to score beside the baselines: a .onnx path, 'auto' (the "
                              "shipped or $STEMCLEAN_MODEL model, when there is one) or 'none'."),
    steps: str = typer.Option("1,2,4,auto", help="Sampler step counts for --model, comma-separated."),
    baselines: bool = typer.Option(True, help="Score the classical cleaners and the oracle; without them only the "
                                   "input and stemclean, which is all a model-swap rule compares and a fraction of the "
                                   "time on many songs."),
    out: Path = typer.Option(None, help="Results folder (default benchmarks/results; docs/img for plots)."),
    smoke: bool = typer.Option(False, help="Run on a tiny synthetic corpus in a temporary folder (seconds)."),
) -> None:
    """Score identity, norbert softmask/Wiener, the oracle IRM and optionally stemclean on the test split."""
    import torch

    torch.set_num_threads(1)  # BSS Eval runs on torch; one thread leaves the other core to training
    model_path = None if model == "none" else default_model_path() if model == "auto" else Path(model)
    if model == "auto" and not model_path.is_file():
        model_path = None
    level_values = tuple(float(v) for v in levels.split(","))
    step_values = [s.strip() for s in steps.split(",")]
    if smoke:
        scratch = Path(tempfile.mkdtemp(prefix="stemclean-smoke-"))
        corpus, out = synthetic_corpus(scratch / "corpus", songs=1, seconds=2.5), out or scratch / "results"
        seconds, level_values = 2.0, (0.5,)
    results_dir, images = (out, out / "img") if out else (report.RESULTS, report.IMAGES)
    name = results_name(split, is_real(corpus))
    partial = None if smoke else report.Partial(name, results_dir)
    try:
        results = run(corpus, spleeter, split, seconds, level_values, seed, max_songs, model_path, step_values, images,
                      tuple(s.strip() for s in sources.split(",")), partial,
                      BASELINE_NAMES if baselines else ("identity",))
    except (FileNotFoundError, ValueError, ModelError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from None
    path = report.save_results(name, results, results_dir)
    if partial is not None:
        partial.finish()
    typer.echo(f"wrote {path}")


if __name__ == "__main__":
    typer.run(main)
