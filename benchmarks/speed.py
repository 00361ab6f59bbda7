"""Speed benchmark: the whole ``stemclean run`` process on a 3-minute stereo 44.1 kHz stem, beside two baselines.

Measured, each in its own process so peak RSS belongs to one job:

- ``stemclean run`` at steps 1, 2, 4 and auto (the default): real-time factor with the process's whole wall time
  (Python start, imports and model load included) and with the engine's own time (load excluded), and peak RSS;
- the 20-minute memory check: the same default run on a 20-minute file must peak within 1.3x the 3-minute one;
- norbert's Wiener filter (2 sources, 1 iteration, ``stemclean.train.baselines.wiener``) and a bare STFT -> iSTFT of
  stem and mix (``stemclean.spectral``, the floor any STFT-domain cleaner pays), on the same audio in the same run;
- the separation stemclean follows: Spleeter 2stems on the same mix, as one whole process of
  ``scripts/spleeter_worker.py`` (skipped when ``.venv-spleeter`` has not been made), so the page can say what
  fraction of the separator's time the cleanup adds.

Absolute times drift on a shared 2-core machine, so the page reports ratios to the baselines measured in the same run.

Run: ``python -m benchmarks.speed [--model PATH]`` (default: the shipped model). Results go to
``benchmarks/results/speed.json``; ``python -m benchmarks.report`` puts :func:`markdown` of them in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import soundfile as sf
import typer

from benchmarks import report
from stemclean import spectral
from stemclean.engine import Model
from stemclean.train.separators import WORKER, venv_python

RESULTS_NAME = "speed.json"
STEPS = ("1", "2", "4", "auto")
BASELINES = ("stft_istft", "wiener")
RATE = spectral.SAMPLE_RATE
GOALS = {"realtime_now": 20.0, "realtime_target": 100.0, "peak_rss_mb": 1024.0, "long_over_short_rss": 1.3}
_SYNTH_BLOCK_S = 10


def write_song(folder: Path, seconds: int, name: str) -> tuple[Path, Path]:
    """Write a synthetic (stem, mix) pair, float32 stereo, block by block so a 20-minute file costs no memory.

    The true stem is a harmonic melody; the rest of the mix is noise bursts and a bass line; the "separated" stem is the
    true stem plus 30 % of the rest, so ``--steps auto`` sees bleed and runs the sampler.
    """
    stem_path, mix_path = folder / f"{name}_vocals.wav", folder / f"{name}_mix.wav"
    with (
        sf.SoundFile(stem_path, "w", RATE, 2, subtype="FLOAT") as stem_f,
        sf.SoundFile(mix_path, "w", RATE, 2, subtype="FLOAT") as mix_f,
    ):
        for start in range(0, seconds, _SYNTH_BLOCK_S):
            rng = np.random.default_rng(start)
            t = start + np.arange(min(_SYNTH_BLOCK_S, seconds - start) * RATE) / RATE
            note = 220.0 * 2 ** (np.floor(t * 2) % 12 / 12)
            melody = sum(0.2 / k * np.sin(2 * np.pi * k * note * t) for k in range(1, 6))
            bursts = rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0.6) * 0.1
            bass = 0.2 * np.sin(2 * np.pi * 55 * 2 ** (np.floor(t / 2) % 5 / 12) * t)
            true_stem = np.stack([melody, 0.8 * melody], axis=1)
            rest = np.stack([bursts + bass, 0.9 * bursts + bass], axis=1)
            stem_f.write((true_stem + 0.3 * rest).astype(np.float32))
            mix_f.write((true_stem + rest).astype(np.float32))
    return stem_path, mix_path


def timed(command: list[str]) -> tuple[dict, str]:
    """Run ``command`` under GNU time: its wall time, peak RSS and stdout."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as timing:
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M", "-o", timing.name, *command], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
        wall, rss_kb = timing.read().split()[-2:]
    return {"wall_s": float(wall), "peak_rss_mb": int(rss_kb) / 1024}, done.stdout


def measure_run(stem: Path, mix: Path, model: Path, steps: str, seconds: float, out: Path) -> dict:
    """One whole ``stemclean run`` process at default settings except ``--steps``."""
    command = [sys.executable, "-m", "stemclean", "run", str(stem), "-m", str(mix), "-o", str(out), "--overwrite"]
    measured, stdout = timed([*command, "--model", str(model), "--steps", steps, "--json", "--quiet"])
    summary = json.loads(stdout)
    return {
        **measured,
        "steps_requested": steps,
        "steps_run": summary["steps"],
        "start_level": summary["start_level"],
        "engine_s": summary["processing_s"],
        "rtf_with_load": seconds / measured["wall_s"],
        "rtf_without_load": seconds / summary["processing_s"],
    }


def measure_baseline(name: str, stem: Path, mix: Path, seconds: float) -> dict:
    """A baseline in its own process (this module's hidden ``--baseline`` mode), whole file in memory."""
    measured, stdout = timed([sys.executable, "-m", "benchmarks.speed", "--baseline", name, str(stem), str(mix)])
    compute = json.loads(stdout)["compute_s"]
    return {
        **measured,
        "compute_s": compute,
        "rtf_with_load": seconds / measured["wall_s"],
        "rtf_without_load": seconds / compute,
    }


def _run_baseline(name: str, stem_path: Path, mix_path: Path) -> None:
    stem, mix = (sf.read(p, dtype="float32")[0].T for p in (stem_path, mix_path))
    started = time.perf_counter()
    if name == "wiener":
        from stemclean.train import baselines  # norbert lives in the [train] extra

        baselines.wiener(stem, mix, RATE)
    else:
        for audio in (stem, mix):
            spectral.istft(spectral.stft(audio), audio.shape[-1])
    print(json.dumps({"compute_s": time.perf_counter() - started}))


def measure_separator(python: Path, mix: Path) -> dict:
    """Spleeter 2stems on ``mix`` as one whole worker process: TensorFlow's import, the model load and separation."""
    with tempfile.TemporaryDirectory(dir=mix.parent) as tmp:
        waveform = Path(tmp) / "mixture.npy"
        np.save(waveform, sf.read(mix, dtype="float32")[0])
        measured, _ = timed([str(python), str(WORKER), str(waveform), tmp])
    return measured


def fastest(measurements: dict[str, Callable[[], dict]], repeats: int) -> dict[str, dict]:
    """Each measurement's fastest of ``repeats`` tries, taken in turns so that load from other processes on a shared
    machine falls on all of them alike; the fastest try is the one least disturbed."""
    best: dict[str, dict] = {}
    for _ in range(repeats):
        for name, measure in measurements.items():
            result = measure()
            if name not in best or result["wall_s"] < best[name]["wall_s"]:
                best[name] = result
    return best


def run_benchmark(model: Path, seconds: int, long_seconds: int, repeats: int) -> dict:
    """Every measurement of the module docstring, in one temporary folder."""
    card = Model(model, device="cpu").metadata
    results: dict = {"meta": report.provenance(), "model": str(model), "model_version": card.get("version", "?")}
    results.update(seconds=seconds, long_seconds=long_seconds, repeats=repeats)
    results["goals"] = GOALS
    with tempfile.TemporaryDirectory(prefix="stemclean-speed-") as tmp:
        folder = Path(tmp)
        stem, mix = write_song(folder, seconds, "short")
        out = folder / "out.wav"
        measurements = {f"steps {s}": partial(measure_run, stem, mix, model, s, seconds, out) for s in STEPS}
        measurements.update({name: partial(measure_baseline, name, stem, mix, seconds) for name in BASELINES})
        try:
            measurements["spleeter"] = partial(measure_separator, venv_python(), mix)
        except FileNotFoundError:  # no .venv-spleeter: the page leaves the separator out
            pass
        best = fastest(measurements, repeats)
        results["runs"] = {s: best[f"steps {s}"] for s in STEPS}
        results["baselines"] = {name: best[name] for name in BASELINES}
        if "spleeter" in best:
            results["separator"] = {"name": "Spleeter 2stems", **best["spleeter"],
                                    "rtf_with_load": seconds / best["spleeter"]["wall_s"]}
        for path in (stem, mix, out):
            path.unlink()
        if long_seconds:
            long_stem, long_mix = write_song(folder, long_seconds, "long")
            results["long_run"] = measure_run(long_stem, long_mix, model, "auto", long_seconds, out)
    return results


def main(
    model: Annotated[
        Optional[Path], typer.Option(help="ONNX model. Default: $STEMCLEAN_MODEL or the shipped one.")
    ] = None,
    seconds: Annotated[int, typer.Option(help="Length of the stem for the speed runs.")] = 180,
    long_seconds: Annotated[int, typer.Option(help="Length for the memory check (0 skips it).")] = 1200,
    repeats: Annotated[int, typer.Option(help="Tries per measurement; the fastest counts.")] = 3,
    baseline: Annotated[Optional[str], typer.Option(hidden=True)] = None,
    files: Annotated[Optional[list[Path]], typer.Argument(hidden=True)] = None,
) -> None:
    """Measure stemclean's speed and memory against norbert's Wiener filter and the bare STFT floor."""
    if baseline:
        _run_baseline(baseline, *files)
        return
    model = report.loadable_model(model, "speed")
    if model is None:
        return
    results = run_benchmark(model, seconds, long_seconds, repeats)
    typer.echo(f"wrote {report.save_results(RESULTS_NAME, results)}", err=True)


def length_name(seconds: float) -> str:
    return f"{seconds / 60:g}-minute" if seconds >= 60 else f"{seconds:g}-second"


def markdown(results: dict) -> str:
    """The speed section of docs/BENCHMARKS.md."""
    runs, base, goals = results["runs"], results["baselines"], results["goals"]
    wiener_s, floor_s = base["wiener"]["compute_s"], base["stft_istft"]["compute_s"]
    rows = [
        [
            f"stemclean --steps {steps}",
            str(r["steps_run"]),
            f"{r['rtf_with_load']:.1f}x",
            f"{r['rtf_without_load']:.1f}x",
            f"{r['peak_rss_mb']:.0f} MB",
            f"{r['engine_s'] / wiener_s:.2f}",
            f"{r['engine_s'] / floor_s:.1f}",
        ]
        for steps, r in runs.items()
    ]
    for name, label in (
        ("wiener", "norbert Wiener, 2 sources, 1 iteration"),
        ("stft_istft", "bare STFT -> iSTFT, stem + mix"),
    ):
        b = base[name]
        rows.append(
            [
                label,
                "–",
                f"{b['rtf_with_load']:.1f}x",
                f"{b['rtf_without_load']:.1f}x",
                f"{b['peak_rss_mb']:.0f} MB",
                f"{b['compute_s'] / wiener_s:.2f}",
                f"{b['compute_s'] / floor_s:.1f}",
            ]
        )
    headers = [
        "what",
        "steps run",
        "real time (whole process)",
        "real time (model loaded)",
        "peak RSS",
        "time / Wiener",
        "time / STFT floor",
    ]
    auto = runs["auto"]
    lines = [
        "## Speed",
        "",
        report.how_measured(results["meta"]),
        f"Model: `{results['model']}` (version `{results['model_version']}`). "
        f"Input: a {length_name(results['seconds'])} synthetic stereo 44.1 kHz stem with bleed, and its mix.",
        "",
        f"Each row is the fastest of {results['repeats']} runs, taken in turns, each in its own process. "
        "*Whole process* counts Python start-up, imports and model loading; *model loaded* counts only the engine's "
        "work (reading, level estimate, sampler, writing). The baselines hold the whole file in memory. The ratio "
        "columns divide each row's compute time by the baseline's, measured in the same run (below 1: faster).",
        "",
        report.table(headers, rows),
        "",
        f"Goals: at least {goals['realtime_now']:.0f}x real time now, {goals['realtime_target']:.0f}x as the target, "
        f"at most {goals['peak_rss_mb']:.0f} MB peak. Default settings (`--steps auto`): "
        f"{auto['rtf_with_load']:.1f}x real time with model load, {auto['peak_rss_mb']:.0f} MB peak.",
    ]
    if {"1", "4"} <= runs.keys():
        # Each extra step is one more model pass, so the 1-step to 4-step difference isolates the network's cost.
        per_step = (runs["4"]["engine_s"] - runs["1"]["engine_s"]) / (3 * results["seconds"])
        lines += ["", f"Model time per step: {per_step * 1000:.0f} ms per second of audio (the engine-time difference "
                      "between 4 steps and 1 step, divided by 3 steps and the audio's length)."]
    if "long_run" in results:
        long = results["long_run"]
        ratio = long["peak_rss_mb"] / auto["peak_rss_mb"]
        verdict = "within" if ratio <= goals["long_over_short_rss"] else "over"
        lines += [
            "",
            f"Memory check: a {length_name(results['long_seconds'])} file at default settings peaked at "
            f"{long['peak_rss_mb']:.0f} MB, {ratio:.2f}x the {length_name(results['seconds'])} run ({verdict} the "
            f"{goals['long_over_short_rss']}x limit), at {long['rtf_with_load']:.1f}x real time.",
        ]
    if "separator" in results:
        sep = results["separator"]
        lines += [
            "",
            f"The separation it follows: {sep['name']} on the same mix, as one whole process of "
            f"`scripts/spleeter_worker.py` (TensorFlow CPU, all cores), took {sep['wall_s']:.1f} s "
            f"({sep['rtf_with_load']:.1f}x real time, {sep['peak_rss_mb']:.0f} MB peak). `stemclean run` at default "
            f"settings, whole process, adds {auto['wall_s'] / sep['wall_s']:.0%} of that time.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    typer.run(main)
