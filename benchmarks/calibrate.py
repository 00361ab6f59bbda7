"""Ladder calibration: what each level ``t`` measures, how fast the ladder runs, and how its artifacts compare with
real Spleeter artifacts.

1. Ladder table: SI-SDR, SIR, SAR and stem/residual coherence of ``degrade`` at levels 0…1 on val-split excerpts
   (the calibration chooses constants, so it runs on val; the test split is only reported).
2. Speed: ladder examples per second on 2 s stereo segments, one core.
3. Spleeter vs ladder: each real Spleeter output is fitted to the level its SI-SDR implies
   (``schedule.level_for_sdr``); the same excerpt degraded by the ladder at that level is compared with it: SI-SDR,
   SIR and SAR distributions, and the error's energy per frequency band. Done on the rendered songs and, where
   ``--real`` holds the real-recordings corpus (``stemclean.train.realcorpus``), on real voices and real music too.
4. Start-level estimate: ``schedule.stem_residual_coherence`` on clean stems, ladder levels and Spleeter outputs, and
   the ``COHERENCE_AT_ZERO`` / ``COHERENCE_AT_ONE`` that a straight-line fit of coherence against ``t`` proposes.

Run: ``python -m benchmarks.calibrate``; ``--smoke`` runs on a tiny synthetic corpus in seconds.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import typer

from benchmarks import quality, report
from stemclean import schedule
from stemclean.spectral import N_FFT, SAMPLE_RATE, stft
from stemclean.train import metrics
from stemclean.train.degrade import degrade, degrade_spec

LEVELS = (0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0)
# Band edges in Hz for the error's spectral shape; 11 kHz is Spleeter's cutoff.
BAND_EDGES_HZ = (0, 150, 300, 600, 1200, 2400, 4800, 8000, 11000, 14000, 22050)
SPEED_EXAMPLES = 100
SPEED_SECONDS = 2.0


def _measure(estimate: np.ndarray, truth: np.ndarray, mix: np.ndarray) -> dict[str, float]:
    bss = metrics.bss_metrics(estimate, truth, mix)
    coherence = schedule.stem_residual_coherence(stft(estimate), stft(mix))
    return {"si_sdr": metrics.si_sdr(estimate, truth), "sir": bss["sir"], "sar": bss["sar"], "coherence": coherence}


def _error_bands(estimate: np.ndarray, truth: np.ndarray) -> list[float]:
    """Energy of the SI-SDR error (estimate minus its projection on the truth) per band, in dB re the truth's energy."""
    e, s = estimate.ravel().astype(np.float64), truth.ravel().astype(np.float64)
    error = (e - (e @ s) / (s @ s) * s).reshape(truth.shape)
    error_power = np.sum(np.abs(stft(error)) ** 2, axis=(0, 2))
    truth_energy = float(np.sum(np.abs(stft(truth)) ** 2))
    bins = (np.asarray(BAND_EDGES_HZ) * N_FFT / SAMPLE_RATE).astype(int)
    return [10 * np.log10(max(float(error_power[lo:hi].sum()), 1e-20) / truth_energy)
            for lo, hi in zip(bins[:-1], bins[1:])]


def _error_spectrum(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-bin error power re the truth's total energy (dB), for the plot."""
    power = np.sum(np.abs(stft(estimate - truth)) ** 2, axis=(0, 2))
    return 10 * np.log10(power / float(np.sum(np.abs(stft(truth)) ** 2)) + 1e-20)


def ladder_levels(excerpts: list[tuple[str, dict, np.ndarray]], levels: tuple[float, ...], seed: int) -> list[dict]:
    """One row per (song, stem, level): the ladder's measured quality at that level."""
    rows = []
    for song_index, (song, stems, mix) in enumerate(excerpts):
        for stem_index, name in enumerate(quality.CORPUS_STEMS):
            for level_index, t in enumerate(levels):
                rng = np.random.default_rng([seed, song_index, stem_index, level_index])
                damaged = degrade(stems[name], mix - stems[name], t, rng, name)
                rows.append({"song": song, "stem": name, "t": t, **_measure(damaged, stems[name], mix)})
    return rows


def ladder_speed(stems: dict[str, np.ndarray], mix: np.ndarray, seed: int, examples: int) -> dict[str, float]:
    """Examples per CPU-second of the spectral and the waveform ladder on 2 s stereo segments (numpy, one core)."""
    rng = np.random.default_rng(seed)
    width = int(SPEED_SECONDS * SAMPLE_RATE)
    names = list(quality.CORPUS_STEMS)
    segments = []
    for _ in range(examples):
        name = names[int(rng.integers(len(names)))]
        start = int(rng.integers(0, max(1, mix.shape[1] - width)))
        stem = stems[name][:, start : start + width]
        segments.append((stem, mix[:, start : start + width] - stem, name))
    spectra = [(stft(s), stft(o), name) for s, o, name in segments]
    # CPU time of this process: on a shared machine wall time measures the neighbours too.
    began = time.process_time()
    for stem_spec, other_spec, name in spectra:
        degrade_spec(stem_spec, other_spec, float(rng.random()), rng, name)
    spec_rate = len(spectra) / (time.process_time() - began)
    began = time.process_time()
    for stem, others, name in segments:
        degrade(stem, others, float(rng.random()), rng, name)
    return {"degrade_spec_per_s": spec_rate, "degrade_per_s": len(segments) / (time.process_time() - began),
            "segment_s": SPEED_SECONDS, "channels": int(mix.shape[0])}


def spleeter_pairs(songs: list[quality.Song], seconds: float,
                   seed: int) -> tuple[list[dict], dict[str, dict[str, list[np.ndarray]]]]:
    """Every Spleeter output against its truth, beside the ladder at the fitted level; and error spectra for the plot."""
    pairs, spectra = [], {"spleeter": {}, "ladder": {}}
    for song_index, song in enumerate(songs):
        if not any(path.exists() for path in song.separated.values()):
            continue
        window, stems, mix = quality.load_excerpt(song, seconds)
        truths = quality.with_accompaniment(stems)
        for stem_index, name in enumerate(quality.SPLEETER_STEMS):
            separated = quality.read_estimate(song.separated[name], mix.shape[1], window)
            if separated is None:
                continue
            measured = _measure(separated, truths[name], mix)
            level = float(schedule.level_for_sdr(measured["si_sdr"]))
            rng = np.random.default_rng([seed, song_index, stem_index])
            laddered = degrade(truths[name], mix - truths[name], level, rng, name)
            pairs.append({
                "song": song.id, "stem": name, "t_fit": level,
                "spleeter": measured | {"bands": _error_bands(separated, truths[name])},
                "ladder": _measure(laddered, truths[name], mix) | {"bands": _error_bands(laddered, truths[name])},
            })
            spectra["spleeter"].setdefault(name, []).append(_error_spectrum(separated, truths[name]))
            spectra["ladder"].setdefault(name, []).append(_error_spectrum(laddered, truths[name]))
    return pairs, spectra


def clean_coherence(excerpts: list[tuple[str, dict, np.ndarray]]) -> list[dict]:
    """Stem/residual coherence of every true stem (and the true accompaniment) against its mixture."""
    rows = []
    for song, stems, mix in excerpts:
        truths = quality.with_accompaniment(stems)
        rows += [{"song": song, "stem": name, "coherence": schedule.stem_residual_coherence(stft(audio), stft(mix))}
                 for name, audio in truths.items()]
    return rows


def propose_coherence(levels: list[dict], clean: list[dict], pairs: list[dict]) -> dict:
    """Fit coherence = a + b t on the ladder; a and a + b become COHERENCE_AT_ZERO and COHERENCE_AT_ONE.

    The fit is judged by how well the start-level estimate then recovers the true level of ladder inputs, the
    SI-SDR-implied level of Spleeter outputs, and zero for clean stems; the current constants are judged the same way.
    """
    t = np.array([r["t"] for r in levels])
    c = np.array([r["coherence"] for r in levels])
    slope, intercept = np.polyfit(t, c, 1)
    proposed = {"at_zero": float(intercept), "at_one": float(intercept + slope)}
    current = {"at_zero": schedule.COHERENCE_AT_ZERO, "at_one": schedule.COHERENCE_AT_ONE}

    def errors(constants: dict) -> dict:
        def estimate(coherence):
            return schedule.level_for_coherence(coherence, constants["at_zero"], constants["at_one"])
        clean_levels = estimate([r["coherence"] for r in clean])
        out = {
            "ladder_mae": float(np.mean(np.abs(estimate(c) - t))),
            "clean_mean_level": float(np.mean(clean_levels)) if clean else None,
            "clean_below_floor": float(np.mean(clean_levels < schedule.CLEAN_FLOOR)) if clean else None,
        }
        if pairs:
            fitted = np.array([p["t_fit"] for p in pairs])
            out["spleeter_mae"] = float(np.mean(np.abs(estimate([p["spleeter"]["coherence"] for p in pairs]) - fitted)))
        return out

    return {"proposed": proposed, "current": current, "proposed_errors": errors(proposed),
            "current_errors": errors(current)}


def _mean_by_level(rows: list[dict]) -> list[dict]:
    table = []
    for t in sorted({r["t"] for r in rows}):
        at = [r for r in rows if r["t"] == t]
        table.append({"t": t, "target": float(schedule.target_sdr_db(t)), "cases": len(at),
                      **{k: float(np.mean([r[k] for r in at])) for k in ("si_sdr", "sir", "sar", "coherence")},
                      "si_sdr_std": float(np.std([r["si_sdr"] for r in at]))})
    return table


def run(corpus: Path, spleeter: Path, split: str, seconds: float, ladder_seconds: float, seed: int,
        max_songs: int | None, images: Path, levels: tuple[float, ...] = LEVELS,
        speed_examples: int = SPEED_EXAMPLES, real: Path | None = None) -> dict:
    """All four measurements and their plots, the Spleeter comparison also on the real recordings at ``real`` when
    that folder holds them; returns the results to save."""
    songs = quality.corpus_songs(corpus, spleeter, split)[:max_songs]
    if not songs:
        raise ValueError(f"the corpus at {corpus} has no songs in split {split!r}")
    real_songs = quality.corpus_songs(real, real, split)[:max_songs] if real and quality.is_real(real) else []
    excerpts = []
    for song in songs:
        _, stems, mix = quality.load_excerpt(song, ladder_seconds)
        excerpts.append((song.id, stems, mix))
        typer.echo(f"loaded {song.id}", err=True)
    level_rows = ladder_levels(excerpts, levels, seed)
    typer.echo("ladder levels measured", err=True)
    speed = ladder_speed(excerpts[0][1], excerpts[0][2], seed, speed_examples)
    pairs, spectra = spleeter_pairs(songs, seconds, seed)
    real_pairs, real_spectra = spleeter_pairs(real_songs, seconds, seed)
    typer.echo(f"{len(pairs)} rendered and {len(real_pairs)} real-recording Spleeter pairs measured", err=True)
    clean = clean_coherence(excerpts)
    images.mkdir(parents=True, exist_ok=True)
    level_table = _mean_by_level(level_rows)
    plots = {"levels": _plot_levels(level_table, images / "calibration_levels.png")}
    for prefix, measured, errors in (("", pairs, spectra), ("real_", real_pairs, real_spectra)):
        if measured:
            plots[f"{prefix}error_spectrum"] = _plot_error_spectra(
                errors, images / f"calibration_{prefix}error_spectrum.png")
            plots[f"{prefix}distributions"] = _plot_distributions(
                measured, images / f"calibration_{prefix}distributions.png")
    return {
        "meta": report.provenance(),
        "config": {"split": split, "songs": [song.id for song in songs],
                   "real_songs": [song.id for song in real_songs], "excerpt_s": seconds, "ladder_excerpt_s": ladder_seconds, "seed": seed, "levels": list(levels),
                   "band_edges_hz": list(BAND_EDGES_HZ)},
        "ladder": level_table,
        "speed": speed,
        "pairs": pairs,
        "real_pairs": real_pairs,
        "clean_coherence": clean,
        "coherence": propose_coherence(level_rows, clean, pairs),
        "plots": {name: os.path.relpath(path, report.ROOT) for name, path in plots.items()},
    }


def _plot_levels(table: list[dict], path: Path) -> Path:
    """Measured SI-SDR, SIR and SAR against t, with the target line."""
    plt = report.pyplot()
    t = [r["t"] for r in table]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(t, [r["target"] for r in table], "k:", label="target")
    for key in ("si_sdr", "sir", "sar"):
        ax.plot(t, [r[key] for r in table], marker="o", label=key.upper().replace("_", "-"))
    ax.set_xlabel("level t")
    ax.set_ylabel("dB")
    ax.set_title("Artifact ladder: measured quality vs level")
    ax.legend()
    return report.save_figure(fig, path)


def _plot_error_spectra(spectra: dict, path: Path) -> Path:
    """Mean error power per frequency, Spleeter against the ladder at the fitted level, per Spleeter stem."""
    plt = report.pyplot()
    hz = np.arange(N_FFT // 2 + 1) * SAMPLE_RATE / N_FFT
    names = list(spectra["spleeter"])
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        for source, style in (("spleeter", "-"), ("ladder", "--")):
            curve = 10 * np.log10(np.mean(10 ** (np.array(spectra[source][name]) / 10), axis=0))
            ax.semilogx(hz[1:], curve[1:], style, label=source)
        ax.axvline(11000, color="grey", linewidth=0.6)
        ax.set_title(f"error spectrum, {name}")
        ax.set_xlabel("Hz")
        ax.set_ylabel("error power re stem energy (dB)")
        ax.legend()
    return report.save_figure(fig, path)


def _plot_distributions(pairs: list[dict], path: Path) -> Path:
    """SI-SDR, SIR and SAR of Spleeter outputs and of the ladder at their fitted levels, as box plots."""
    plt = report.pyplot()
    keys = ("si_sdr", "sir", "sar")
    fig, axes = plt.subplots(1, len(keys), figsize=(12, 4))
    for ax, key in zip(axes, keys):
        groups, labels = [], []
        for name in quality.SPLEETER_STEMS:
            for source in ("spleeter", "ladder"):
                groups.append([p[source][key] for p in pairs if p["stem"] == name])
                labels.append(f"{name[:5]}\n{source}")
        ax.boxplot(groups)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
        ax.set_title(key.upper().replace("_", "-") + " (dB)")
    return report.save_figure(fig, path)


def _spread(values: list[float]) -> str:
    if not values:
        return "–"
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return f"{p50:.1f} [{p10:.1f}, {p90:.1f}]"


_PAIR_PLOTS = {"error_spectrum": "Error spectra", "distributions": "Distributions"}


def _pairs_section(pairs: list[dict], edges: list[float], material: str, plots: dict[str, str]) -> list[str]:
    """The Spleeter-against-ladder tables of one corpus (``material``), and its plots, as page lines."""
    body = []
    for name in quality.SPLEETER_STEMS:
        subset = [p for p in pairs if p["stem"] == name]
        if not subset:
            continue
        fitted = _spread([p["t_fit"] for p in subset])
        for source in ("spleeter", "ladder"):
            body.append([name, source, len(subset), fitted] + [_spread([p[source][k] for p in subset])
                                                               for k in ("si_sdr", "sir", "sar", "coherence")])
    bands = []
    for lo, hi, index in zip(edges[:-1], edges[1:], range(len(edges) - 1)):
        row = [f"{lo / 1000:g}–{hi / 1000:g}"]
        for name in quality.SPLEETER_STEMS:
            for source in ("spleeter", "ladder"):
                values = [p[source]["bands"][index] for p in pairs if p["stem"] == name]
                row.append(float(np.mean(values)) if values else None)
        bands.append(row)
    lines = [
        "",
        f"### Real Spleeter artifacts against the ladder at the fitted level: {material}",
        "",
        "Each Spleeter output gets the level its SI-SDR implies (`schedule.level_for_sdr`); the ladder then damages "
        "the same excerpt at that level. Median [10th, 90th percentile] over songs; dB except t and coherence.",
        "",
        report.table(["stem", "source", "pairs", "fitted t", "SI-SDR", "SIR", "SAR", "coherence"], body),
        "",
        "Spectral shape of the error: energy of the SI-SDR error per band, in dB relative to the stem's total "
        "energy, mean over songs.",
        "",
        report.table(["band (kHz)"] + [f"{n} {s}" for n in quality.SPLEETER_STEMS for s in ("Spleeter", "ladder")],
                     bands),
    ]
    for name, path in plots.items():
        caption = _PAIR_PLOTS[name.removeprefix("real_")]
        lines += ["", f"![{caption}, {material}]({_image(path)})"]
    return lines


def markdown(results: dict) -> str:
    """The calibration section of docs/BENCHMARKS.md."""
    config, pairs, speed, coherence = results["config"], results["pairs"], results["speed"], results["coherence"]
    lines = [
        "## Artifact ladder calibration",
        "",
        report.how_measured(results["meta"]),
        f"Split `{config['split']}`, {len(config['songs'])} songs. The ladder table uses one "
        f"{config['ladder_excerpt_s']:g} s excerpt per song and all four stems; the Spleeter comparison one "
        f"{config['excerpt_s']:g} s excerpt per song. SIR and SAR come from BSS Eval with the true stem and the true "
        "residual as sources; coherence is `schedule.stem_residual_coherence`.",
        "",
        "### Level t against measured quality",
        "",
        report.table(["t", "target SI-SDR", "SI-SDR", "SI-SDR std", "SIR", "SAR", "coherence", "cases"],
                     [[r["t"], r["target"], r["si_sdr"], r["si_sdr_std"], r["sir"], r["sar"], r["coherence"],
                       r["cases"]] for r in results["ladder"]]),
        "",
        f"Ladder speed on {speed['segment_s']:g} s {speed['channels']}-channel segments, per CPU-second of one core: "
        f"{speed['degrade_spec_per_s']:.1f} examples/s from spectra (`degrade_spec`), "
        f"{speed['degrade_per_s']:.1f} examples/s from waveforms (`degrade`).",
    ]
    if "levels" in results.get("plots", {}):
        lines += ["", f"![Ladder levels]({_image(results['plots']['levels'])})"]
    for prefix, material, measured in (("", "rendered songs", pairs),
                                       ("real_", "real recordings", results.get("real_pairs", []))):
        if measured:
            lines += _pairs_section(measured, config["band_edges_hz"], material,
                                    {name: path for name, path in results.get("plots", {}).items()
                                     if name.startswith(prefix) and name.removeprefix(prefix) in _PAIR_PLOTS})
    proposed, current = coherence["proposed"], coherence["current"]
    error_rows = []
    for label, constants, errors in (("current", current, coherence["current_errors"]),
                                     ("proposed", proposed, coherence["proposed_errors"])):
        error_rows.append([label, constants["at_zero"], constants["at_one"], errors["ladder_mae"],
                           errors.get("spleeter_mae"), errors["clean_mean_level"], errors["clean_below_floor"]])
    clean = results["clean_coherence"]
    lines += [
        "",
        "### Start-level estimate (stem/residual coherence)",
        "",
        "A straight line `coherence = a + b t` fitted over all ladder cases proposes `COHERENCE_AT_ZERO = a` and "
        "`COHERENCE_AT_ONE = a + b`. Errors are mean absolute differences between the estimated level and the true "
        "ladder level, or the SI-SDR-implied level of a Spleeter output; clean stems should estimate 0 and fall below "
        f"`CLEAN_FLOOR` ({schedule.CLEAN_FLOOR:g}).",
        "",
        report.table(["constants", "at zero", "at one", "ladder level error", "Spleeter level error",
                      "clean stems: mean level", "clean stems below floor"], error_rows),
        "",
        "Coherence of clean stems: "
        + ", ".join(f"{name} {_spread([r['coherence'] for r in clean if r['stem'] == name])}"
                    for name in dict.fromkeys(r["stem"] for r in clean)) + ".",
    ]
    return "\n".join(lines) + "\n"


def _image(path: str) -> str:
    return os.path.relpath(report.ROOT / path, report.PAGE.parent)


def main(
    corpus: Path = typer.Option(Path("data/corpus"), help="Rendered corpus (manifest.json + split folders)."),
    spleeter: Path = typer.Option(Path("data/spleeter"), help="Spleeter outputs, <split>/<song>/{vocals,accompaniment}.wav."),
    real: Path = typer.Option(Path("data/real"), help="Real-recordings corpus (python -m stemclean.train.realcorpus), "
                              "whose Spleeter pairs are compared too; skipped where absent."),
    split: str = typer.Option("val", help="Which split to measure (choices are made on val)."),
    seconds: float = typer.Option(20.0, help="Excerpt length per song for the Spleeter comparison."),
    ladder_seconds: float = typer.Option(10.0, help="Excerpt length per song for the ladder table."),
    seed: int = typer.Option(0, help="Seed of the ladder draws."),
    max_songs: int = typer.Option(None, help="Measure only the first N songs."),
    out: Path = typer.Option(None, help="Results folder (default benchmarks/results; docs/img for plots)."),
    smoke: bool = typer.Option(False, help="Run on a tiny synthetic corpus in a temporary folder (seconds)."),
) -> None:
    """Calibrate the artifact ladder and compare it with real Spleeter artifacts."""
    import torch

    torch.set_num_threads(1)  # BSS Eval runs on torch; one thread leaves the other core to training
    if smoke:
        scratch = Path(tempfile.mkdtemp(prefix="stemclean-smoke-"))
        corpus, out = quality.synthetic_corpus(scratch / "corpus", songs=1, seconds=2.5), out or scratch / "results"
        real = quality.synthetic_real_corpus(scratch / "real", songs=1, seconds=2.5)
        seconds, ladder_seconds = 2.0, 2.0
    results_dir, images = (out, out / "img") if out else (report.RESULTS, report.IMAGES)
    try:
        results = run(corpus, spleeter, split, seconds, ladder_seconds, seed, max_songs, images, real=real)
    except (FileNotFoundError, ValueError) as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(2) from None
    path = report.save_results("calibration.json", results, results_dir)
    typer.echo(f"wrote {path}")
    typer.echo(f"proposed COHERENCE_AT_ZERO={results['coherence']['proposed']['at_zero']:.3f} "
               f"COHERENCE_AT_ONE={results['coherence']['proposed']['at_one']:.3f}")


if __name__ == "__main__":
    typer.run(main)
