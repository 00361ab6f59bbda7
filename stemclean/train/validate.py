"""A fixed val set scored during training: the y-axis of the learning curves.

It mirrors the benchmark's cases on the val split (never test): each val song's real Spleeter vocals and
accompaniment, three additive-bleed rows made from the song's own stems, and, where the real-recordings corpus is
made, the Spleeter pairs of its first val mixes (real voices over real music: the kind of material users bring) and
Spleeter's accompaniment over stretches of them without voice (kind ``break``: intros, breaks and outros).
One excerpt per song and case, channel 0, one sampler step at the start level the engine estimates, scored as ΔSI-SDR
against the true stem. It is a cheap proxy for ``benchmarks.quality --split val``, cheap enough to run every few hundred steps
of a long run. ``python -m stemclean.train.validate CHECKPOINT`` scores one checkpoint the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import typer

from stemclean import audio, engine, schedule, spectral
from stemclean.files import write_text_atomic
from stemclean.stems import stem_index
from stemclean.train import realcorpus
from stemclean.train.corpus import load_manifest
from stemclean.train.degrade import add_leak
from stemclean.train.export import load_checkpoint
from stemclean.train.metrics import si_sdr
from stemclean.train.sampler import others_of, parts_of
from stemclean.train.separators import SPLEETER_STEMS

VAL_SECONDS = 6.0
# (row name, stem that receives the leak, leak level below it in dB, delay in seconds, low-pass cutoff in Hz)
BLEED_ROWS = (
    ("accompaniment into vocals, -12 dB", "vocals", 12.0, 0.0, None),
    ("vocals into accompaniment, -20 dB", "accompaniment", 20.0, 0.0, None),
    ("rest into other, delayed 3 ms, low-passed 4 kHz, -12 dB", "other", 12.0, 0.003, 4000.0),
)


_SILENT_SHARE = 1e-3  # a stem with less than this share of the excerpt's mixture energy is not scored
# Real-recording val mixes scored: enough speakers and soundtracks to average over, few enough to keep a val pass short.
REAL_MIXES = 8
BREAK_MIXES = 8  # real mixes whose voice-free stretch is scored (break_cases)


def _energy(spec: np.ndarray) -> float:
    return float(np.vdot(spec, spec).real)


@dataclass
class Case:
    """One scored excerpt: kind is ``spleeter`` or ``bleed``; spectra are [1, F, T] complex."""

    song: str
    kind: str
    row: str
    damaged: np.ndarray
    mix: np.ndarray
    clean: np.ndarray
    level: float
    stem_type: int


def val_cases(corpus: Path, spleeter: Path | None, seconds: float = VAL_SECONDS, split: str = "val",
              songs: tuple[str, ...] | None = None) -> list[Case]:
    """Every val song's cases (or those of ``songs`` in ``split``, for the overfit check), from the song's middle."""
    cases = []
    segment = int(seconds * spectral.SAMPLE_RATE)
    for entry in sorted(load_manifest(corpus).values(), key=lambda e: e["id"]):
        song = corpus / split / entry["id"]
        if entry["split"] != split or (songs and entry["id"] not in songs) or not (song / "mixture.wav").exists():
            continue
        start = max(0, sf.info(str(song / "mixture.wav")).frames // 2 - segment // 2)

        def read(path: Path) -> np.ndarray:
            return sf.read(str(path), start=start, stop=start + segment, dtype="float32", always_2d=True)[0][:, :1].T

        def stems(names: tuple[str, ...]) -> np.ndarray:
            return spectral.stft(sum(read(song / f"{name}.wav") for name in names))

        mix = spectral.stft(read(song / "mixture.wav"))
        pair = spleeter / split / entry["id"] if spleeter else None
        if pair is not None and (pair / "accompaniment.wav").exists():
            for stem in SPLEETER_STEMS:
                if _energy(stems(parts_of(stem))) < _SILENT_SHARE * _energy(mix):
                    continue
                level = engine.estimate_level(audio.file_source(pair / f"{stem}.wav"),
                                              audio.file_source(song / "mixture.wav"))
                cases.append(Case(entry["id"], "spleeter", f"Spleeter {stem}", spectral.stft(read(pair / f"{stem}.wav")),
                                  mix, stems(parts_of(stem)), level, stem_index(stem)))
        for row, stem, ratio_db, delay, cutoff in BLEED_ROWS:
            clean = stems(parts_of(stem))
            if _energy(clean) < _SILENT_SHARE * _energy(mix):  # SI-SDR needs a stem that plays
                continue
            damaged = add_leak(clean, stems(others_of(stem)), ratio_db, delay, cutoff)
            cases.append(Case(entry["id"], "bleed", row, damaged, mix, clean, engine.spectrum_level(damaged, mix),
                              stem_index(stem)))
    return cases


def _real_val_pairs(recordings: Path, split: str) -> list[dict]:
    """The first REAL_MIXES ``split`` mixes of the real recordings, by id, whose Spleeter pairs are made."""
    return realcorpus.first_separated(realcorpus.load_pairs(recordings, split), REAL_MIXES)


def real_cases(recordings: Path, seconds: float = VAL_SECONDS, split: str = "val") -> list[Case]:
    """Spleeter vocals and accompaniment of the first REAL_MIXES finished ``split`` mixes of the real recordings,
    from each mix's middle, at the level the engine estimates for the whole file (as the sampler conditions them)."""
    cases = []
    segment = int(seconds * spectral.SAMPLE_RATE)
    for pair in _real_val_pairs(recordings, split):
        whole = realcorpus.mixture(pair)  # (samples, 2): read once, for the level and the excerpt
        start = max(0, len(whole) // 2 - segment // 2)
        cases += _pair_cases(pair, whole, start, segment, SPLEETER_STEMS, "real", "Real Spleeter {}")
    return cases


def break_cases(recordings: Path, seconds: float = VAL_SECONDS, split: str = "val", mixes: int = BREAK_MIXES
                ) -> list[Case]:
    """Spleeter's accompaniment over a stretch without voice (an intro, a break, an outro) of the first ``mixes``
    finished ``split`` mixes that have one, by id.

    There the true accompaniment is the whole mixture, and Spleeter has often put some of the music in its vocals: a
    model must give it back, not take more (stage 15's weights lost several dB on such a stretch where v1 gained,
    and the middles that real_cases scores never fall in one)."""
    cases = []
    segment = int(seconds * spectral.SAMPLE_RATE)
    pairs = realcorpus.load_pairs(recordings, split)
    for pair in realcorpus.first_separated(pairs, len(pairs)):
        vocals = sf.read(pair["vocals"], dtype="float32", always_2d=True)[0]
        whole = realcorpus.mixture(pair)
        if len(whole) < segment:
            continue
        share = realcorpus.voice_share(vocals, whole - vocals, segment)
        start = int(np.argmin(share))
        if share[start] < realcorpus.VOICE_FREE:
            cases += _pair_cases(pair, whole, start, segment, ("accompaniment",), "break",
                                 "Real Spleeter accompaniment, no voice")
        if len(cases) >= mixes:
            break
    return cases


def _pair_cases(pair: dict, whole: np.ndarray, start: int, segment: int, stems: tuple[str, ...], kind: str,
                row: str) -> list[Case]:
    """Cases of a real pair's excerpt at ``start``, one per stem that is not silent there, the first channel only,
    at the level the engine estimates for the whole file."""
    mix = spectral.stft(whole[start : start + segment, :1].T)
    whole_mix = audio.array_source(whole.T, spectral.SAMPLE_RATE)

    def read(path: Path) -> np.ndarray:
        return sf.read(str(path), start=start, stop=start + segment, dtype="float32", always_2d=True)[0][:, :1].T

    cases = []
    for stem in stems:
        clean = spectral.stft(read(pair[stem]))
        if _energy(clean) < _SILENT_SHARE * _energy(mix):
            continue
        estimate = pair[f"spleeter_{stem}"]
        level = engine.estimate_level(audio.file_source(estimate), whole_mix)
        cases.append(Case(pair["id"], kind, row.format(stem), spectral.stft(read(estimate)), mix, clean, level,
                          stem_index(stem)))
    return cases


class ValSet:
    """The val cases, rebuilt only when the set of val Spleeter pairs on disk changes (they may still be rendering
    when a run starts); ``cases()`` is cheap otherwise. With ``recordings``, the real-recording cases join them."""

    def __init__(self, corpus: Path, spleeter: Path | None, recordings: Path | None = None):
        self.corpus, self.spleeter, self.recordings = corpus, spleeter, recordings
        self._key: tuple | None = None
        self._cases: list[Case] = []

    def cases(self) -> list[Case]:
        root = self.spleeter / "val" if self.spleeter else None
        key = tuple(sorted(p.parent.name for p in root.glob("*/accompaniment.wav"))) if root and root.exists() else ()
        real = self._real_ids()
        if (key, real) != self._key:
            self._key = key, real
            self._cases = val_cases(self.corpus, self.spleeter) + (
                real_cases(self.recordings) + break_cases(self.recordings) if real else [])
        return self._cases

    def _real_ids(self) -> tuple[str, ...]:
        """The real-recording val mixes that real_cases would score now (none without the corpus)."""
        if self.recordings is None or not (self.recordings / "corpus" / "manifest.json").exists():
            return ()
        return tuple(p["id"] for p in _real_val_pairs(self.recordings, "val"))


def oracle_spec(case: Case) -> np.ndarray:
    """The oracle ideal ratio mask's output (power ratio of the true stem and residual, on the mixture), as in
    ``baselines.oracle_irm``: the ceiling of mask-based cleanup, for the gap a model closes."""
    stem_power, resid_power = np.abs(case.clean) ** 2, np.abs(case.mix - case.clean) ** 2
    return stem_power / np.maximum(stem_power + resid_power, 1e-20) * case.mix


def sdr(spec: np.ndarray, case: Case) -> float:
    """SI-SDR of a spectrum against the case's true stem, on waveforms."""
    length = spectral.HOP_LENGTH * (case.clean.shape[-1] - 1)
    return si_sdr(spectral.istft(spec, length), spectral.istft(case.clean, length))


def gain(estimate: np.ndarray, case: Case, input_sdr: float | None = None) -> float:
    """ΔSI-SDR of an estimate's spectrum over the damaged input, each capped at the ladder's inaudible
    ``SDR_AT_ZERO``; ``input_sdr`` is the input's :func:`sdr`, when the caller has it already.

    Spleeter's accompaniment over a voice-free stretch is often within 50-60 dB of the truth; a model that left it at
    45 dB read as a loss of many dB that no one can hear, and those cases set the ``break`` median."""
    damaged = sdr(case.damaged, case) if input_sdr is None else input_sdr
    return min(sdr(estimate, case), schedule.SDR_AT_ZERO) - min(damaged, schedule.SDR_AT_ZERO)


def _means(gains: dict[tuple[str, str], list[float]]) -> dict:
    """Mean gain per kind and per row, and the median per kind: with a few songs, one case that gains several dB
    (a song without vocals, whose Spleeter accompaniment lacks what went to the vocals) can carry the mean alone."""
    kinds = sorted({kind for kind, _ in gains})
    per_kind = {kind: [g for (k, _), v in gains.items() if k == kind for g in v] for kind in kinds}
    return {**{kind: float(np.mean(v)) for kind, v in per_kind.items()},
            "medians": {kind: float(np.median(v)) for kind, v in per_kind.items()},
            "rows": {row: float(np.mean(v)) for (_, row), v in gains.items()}}


def model_output(model: torch.nn.Module, case: Case) -> np.ndarray:
    """One pass of ``model`` without gradients over a case, as a [1, F, T] complex spectrum; the caller sets the
    model's mode (``eval()`` for scoring)."""
    with torch.no_grad():
        pred = model(torch.from_numpy(spectral.to_channels(case.damaged)),
                     torch.from_numpy(spectral.to_channels(case.mix)),
                     torch.tensor([case.level]), torch.tensor([case.stem_type]))
    return spectral.from_channels(pred.numpy())


def score(model: torch.nn.Module, cases: list[Case], oracle: bool = False, scales: tuple[float, ...] = (),
          per_case: bool = False) -> dict:
    """Mean ΔSI-SDR per kind and per row of one model pass over every case (and the oracle mask's, if asked; with
    ``per_case``, each case's own gain too, since with a few mixes one case can carry or sink a mean).

    With ``scales``, also of the input plus each factor times the model's correction (``scaled``): where a factor
    below 1 scores higher, the model acts more strongly than those cases support, as a model does on material it
    has fitted more confidently than it generalises."""
    model.eval()
    gains: dict[tuple[str, str], list[float]] = {}
    ceiling: dict[tuple[str, str], list[float]] = {}
    scaled: dict[float, dict[tuple[str, str], list[float]]] = {factor: {} for factor in scales}
    each = []
    with torch.no_grad():
        for case in cases:
            output, input_sdr = model_output(model, case), sdr(case.damaged, case)
            record = {"song": case.song, "row": case.row, "level": round(case.level, 3),
                      "gain": gain(output, case, input_sdr)}
            if per_case:  # where the input already was: a loss from 55 dB is not one from 15
                record["input_sdr"] = input_sdr
            gains.setdefault((case.kind, case.row), []).append(record["gain"])
            for factor in scales:
                corrected = case.damaged + factor * (output - case.damaged)
                scaled[factor].setdefault((case.kind, case.row), []).append(gain(corrected, case, input_sdr))
            if oracle:
                record["oracle"] = gain(oracle_spec(case), case, input_sdr)
                ceiling.setdefault((case.kind, case.row), []).append(record["oracle"])
            each.append(record)
    model.train()
    return {"cases": len(cases), **_means(gains), **({"oracle": _means(ceiling)} if oracle else {}),
            **({"scaled": {str(f): _means(g) for f, g in scaled.items()}} if scales else {}),
            **({"per_case": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in each]}
               if per_case else {})}


def main(
    checkpoint: Path,
    corpus: Path = typer.Option(Path("data/corpus")),
    spleeter: Path = typer.Option(Path("data/spleeter")),
    recordings: Path = typer.Option(Path("data/real"), help="The real-recordings corpus, if made."),
    gate_bias: float = typer.Option(None, help="Score with the de-bleed gate's bias set to this (10: fully open), "
                                    "to see what the gate is worth before training it."),
    real_split: str = typer.Option(None, help="Score only the real recordings' Spleeter pairs of this split, chosen "
                                   "as the val ones are: with train, how well a run fits the pairs it trains on, to "
                                   "tell underfitting (train no better than val) from a failure to generalise."),
    correction_scales: str = typer.Option(None, help="Comma-separated factors, e.g. 0.5,0.75: also score the input "
                                          "plus each factor times the model's correction (see score)."),
    break_mixes: int = typer.Option(BREAK_MIXES, help="How many voice-free stretches to score with --real-split "
                                    "(one per mix that has one); training's val scores the first BREAK_MIXES."),
    out: Path = typer.Option(None, help="Also write the scores here as JSON."),
) -> None:
    """Score CHECKPOINT on the val set as training does (with the oracle mask's scores beside it)."""
    model, _ = load_checkpoint(checkpoint)
    if gate_bias is not None:
        model.set_gate_bias(gate_bias)
    cases = (real_cases(recordings, split=real_split) + break_cases(recordings, split=real_split, mixes=break_mixes)
             if real_split
             else ValSet(corpus, spleeter, recordings).cases())
    scales = tuple(float(f) for f in correction_scales.split(",")) if correction_scales else ()
    scores = {"checkpoint": str(checkpoint), "gate_bias": gate_bias, "real_split": real_split,
              **score(model, cases, oracle=True, scales=scales, per_case=True)}
    typer.echo(json.dumps(scores, indent=1))
    if out is not None:
        write_text_atomic(out, json.dumps(scores, indent=1))


if __name__ == "__main__":
    typer.run(main)
