"""A fixed val set scored during training: the y-axis of the learning curves.

It mirrors the benchmark's cases on the val split (never test): each val song's real Spleeter vocals and
accompaniment, and three additive-bleed rows made from the song's own stems. One excerpt per song and case, channel 0,
one sampler step at the level the case implies, scored as ΔSI-SDR against the true stem. It is a cheap proxy for
``benchmarks.quality --split val``, cheap enough to run every few hundred steps of a long run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from stemclean import audio, engine, spectral
from stemclean.stems import stem_index
from stemclean.train.corpus import load_manifest
from stemclean.train.degrade import add_leak
from stemclean.train.metrics import si_sdr
from stemclean.train.sampler import level_of, others_of, parts_of
from stemclean.train.separators import SPLEETER_STEMS

VAL_SECONDS = 6.0
# (row name, stem that receives the leak, leak level below it in dB, delay in seconds, low-pass cutoff in Hz)
BLEED_ROWS = (
    ("accompaniment into vocals, -12 dB", "vocals", 12.0, 0.0, None),
    ("vocals into accompaniment, -20 dB", "accompaniment", 20.0, 0.0, None),
    ("rest into other, delayed 3 ms, low-passed 4 kHz, -12 dB", "other", 12.0, 0.003, 4000.0),
)


_SILENT_SHARE = 1e-3  # a stem with less than this share of the excerpt's mixture energy is not scored


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
            cases.append(Case(entry["id"], "bleed", row, damaged, mix, clean, level_of(damaged, clean),
                              stem_index(stem)))
    return cases


class ValSet:
    """The val cases, rebuilt only when the set of val Spleeter pairs on disk changes (they may still be rendering
    when a run starts); ``cases()`` is cheap otherwise."""

    def __init__(self, corpus: Path, spleeter: Path | None):
        self.corpus, self.spleeter = corpus, spleeter
        self._key: tuple[str, ...] | None = None
        self._cases: list[Case] = []

    def cases(self) -> list[Case]:
        root = self.spleeter / "val" if self.spleeter else None
        key = tuple(sorted(p.parent.name for p in root.glob("*/accompaniment.wav"))) if root and root.exists() else ()
        if key != self._key:
            self._key, self._cases = key, val_cases(self.corpus, self.spleeter)
        return self._cases


def oracle_spec(case: Case) -> np.ndarray:
    """The oracle ideal ratio mask's output (power ratio of the true stem and residual, on the mixture), as in
    ``baselines.oracle_irm``: the ceiling of mask-based cleanup, for the gap a model closes."""
    stem_power, resid_power = np.abs(case.clean) ** 2, np.abs(case.mix - case.clean) ** 2
    return stem_power / np.maximum(stem_power + resid_power, 1e-20) * case.mix


def _gain(estimate: np.ndarray, case: Case) -> float:
    """ΔSI-SDR of an estimate's spectrum over the damaged input, both against the true stem, on waveforms."""
    length = spectral.HOP_LENGTH * (case.clean.shape[-1] - 1)
    truth = spectral.istft(case.clean, length)
    return si_sdr(spectral.istft(estimate, length), truth) - si_sdr(spectral.istft(case.damaged, length), truth)


def _means(gains: dict[tuple[str, str], list[float]]) -> dict:
    kinds = sorted({kind for kind, _ in gains})
    return {**{kind: float(np.mean([g for (k, _), v in gains.items() if k == kind for g in v])) for kind in kinds},
            "rows": {row: float(np.mean(v)) for (_, row), v in gains.items()}}


def score(model: torch.nn.Module, cases: list[Case], oracle: bool = False) -> dict:
    """Mean ΔSI-SDR per kind and per row of one model pass over every case (and the oracle mask's, if asked)."""
    model.eval()
    gains: dict[tuple[str, str], list[float]] = {}
    ceiling: dict[tuple[str, str], list[float]] = {}
    with torch.no_grad():
        for case in cases:
            pred = model(torch.from_numpy(spectral.to_channels(case.damaged)),
                         torch.from_numpy(spectral.to_channels(case.mix)),
                         torch.tensor([case.level]), torch.tensor([case.stem_type]))
            gains.setdefault((case.kind, case.row), []).append(_gain(spectral.from_channels(pred.numpy()), case))
            if oracle:
                ceiling.setdefault((case.kind, case.row), []).append(_gain(oracle_spec(case), case))
    model.train()
    return {"cases": len(cases), **_means(gains), **({"oracle": _means(ceiling)} if oracle else {})}
