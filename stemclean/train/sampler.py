"""Training examples drawn on the fly from the corpus: real separator pairs, additive bleed and the artifact ladder.

Three kinds of example, mixed by share:

- **real**: a Spleeter output with its song's true mixture and true stem (the ground truth that matters most);
- **bleed**: the true stem plus a fixed-filter leak of other sources (:func:`degrade.random_leak_spec`), the case a
  least-squares de-bleed solves and a separator's mask does not produce. It is conditioned on the engine's start-level
  estimate, as real pairs are: the engine reads it differently from the level its error implies, and the model's
  gain depends on the level it is told (docs/TRAINING.md, "Stage 10 stopped, stage 11");
- **ladder**: the true stem through the artifact ladder at a random level.

Bleed and ladder examples are remixed (issue 20): the other sources come from a different song than the target stem
half of the time, at a random gain and channel, so the number of distinct mixtures is effectively unlimited. Real
pairs keep their own mixture, since that is what Spleeter separated; what can vary there is their timbre
(:func:`random_equaliser`) and their speed (:meth:`CorpusSampler._speed_changed`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from stemclean import audio, engine, spectral
from stemclean.stems import stem_index
from stemclean.train.corpus import load_manifest
from stemclean.train import realcorpus
from stemclean.train.degrade import degrade_spec, random_leak_spec
from stemclean.train.separators import SPLEETER_STEMS

LADDER_STEMS = ("vocals", "drums", "bass", "other", "accompaniment")
CORPUS_STEMS = ("vocals", "drums", "bass", "other")
_SILENT_RMS = 1e-4
_VOICE_FREE_GRID = 2048  # samples between the voice-free starts a pair keeps (CorpusSampler._voice_free_start)
_REMIX_GAIN_DB = 6.0  # the others' level is moved by up to this much either way when remixed
_EQ_LOWEST_HZ = 20.0


def random_equaliser(rng: np.random.Generator, max_db: float) -> np.ndarray:
    """A smooth random gain per STFT bin, at most ``max_db`` either way, shaped ``[bins, 1]`` to scale a spectrum.

    Applied alike to a real pair's separator estimate, mixture and true stem, it moves the voice's and the music's
    timbre while the pair stays one the separator could have made: a mask on the mixture commutes with a fixed filter,
    so the filtered estimate is the same mask on the filtered mixture. Three cosines over log frequency (20 Hz to
    Nyquist) give tilts and broad bumps, as microphones, rooms and mastering do, not narrow notches.
    """
    hz = np.maximum(np.arange(spectral.N_BINS) * spectral.SAMPLE_RATE / spectral.N_FFT, _EQ_LOWEST_HZ)
    position = np.log(hz / _EQ_LOWEST_HZ) / np.log(spectral.SAMPLE_RATE / 2 / _EQ_LOWEST_HZ)  # 0 to 1
    order = np.arange(1, 4)[:, None]
    curve = np.sum(rng.uniform(-1, 1, (3, 1)) * np.cos(np.pi * order * position + rng.uniform(0, 2 * np.pi, (3, 1))),
                   axis=0)
    curve *= rng.uniform(0, max_db) / max(float(np.abs(curve).max()), 1e-9)
    return (10.0 ** (curve / 20.0)).astype(np.float32)[:, None]


@dataclass
class Example:
    """One training case: the damaged stem, the mixture and the true stem, as complex spectra [channels, F, T]."""

    damaged: np.ndarray
    mix: np.ndarray
    clean: np.ndarray
    level: float
    stem_type: int


def parts_of(stem: str) -> tuple[str, ...]:
    """The corpus stems that make up ``stem`` (accompaniment is drums + bass + other)."""
    return ("drums", "bass", "other") if stem == "accompaniment" else (stem,)


def others_of(stem: str) -> tuple[str, ...]:
    """The corpus stems that make up everything but ``stem``."""
    return tuple(name for name in CORPUS_STEMS if name not in parts_of(stem))


def _read_levels(cache: Path | None) -> dict[tuple[str, str], float]:
    """The levels a run's earlier processes appended to ``cache`` (a line cut short by a kill is skipped).

    The cache lives in the run's folder, so a run keeps the levels it was conditioned on; a new run estimates afresh.
    """
    levels: dict[tuple[str, str], float] = {}
    if cache is not None and cache.exists():
        for line in cache.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            levels[entry["song"], entry["stem"]] = entry["level"]
    return levels


class CorpusSampler:
    """Draws random segments from the rendered corpus and damages them (see the module docstring).

    Segments are mono, or with ``stereo`` both channels as a (left, right) pair; one stereo pair in ten is a single
    channel twice, which is how the engine feeds a stereo model a mono file.
    """

    def __init__(self, corpus: Path, spleeter: Path | None, split: str, seed: int, real_fraction: float = 0.3,
                 clean_fraction: float = 0.05, stereo: bool = False, bleed_fraction: float = 0.0,
                 segment_seconds: float = 2.0, songs: tuple[str, ...] | None = None, recordings: Path | None = None,
                 recordings_fraction: float = 0.0, level_cache: Path | None = None, real_mixes: int | None = None,
                 real_eq_db: float = 0.0, break_fraction: float = 0.0, real_speed: float = 0.0):
        self.corpus, self.spleeter_root, self.split, self.stereo = corpus, spleeter, split, stereo
        # this share of the real recordings' Spleeter pairs is drawn from a stretch without voice, where they have one
        self.break_fraction, self._voice_free = break_fraction, {}
        # real pairs through a random_equaliser of up to this many dB; its own generator, so every other draw is the
        # same with it or without it
        self.real_eq_db, self.eq_rng = real_eq_db, np.random.default_rng([seed, 1])
        # the real recordings' pairs played up to this fraction faster or slower (_speed_changed); its own generator too
        self.real_speed, self.speed_rng = real_speed, np.random.default_rng([seed, 2])
        # real voices over real music (stemclean.train.realcorpus), drawn this share of the time when there are any
        self.recordings_root, self.recordings_fraction = recordings, recordings_fraction
        self.only = songs  # draw from these songs alone (the overfit check); None: every song of the split
        self.real_mixes = real_mixes  # the first N separated real mixes alone (the overfit sweep); None: all
        self.rng = np.random.default_rng(seed)
        self.real_fraction, self.clean_fraction, self.bleed_fraction = real_fraction, clean_fraction, bleed_fraction
        self.segment = int(segment_seconds * spectral.SAMPLE_RATE)
        self.level_cache = level_cache
        self._real_levels = _read_levels(level_cache)
        self._frames: dict[Path, int] = {}
        self.refresh()
        if not self.songs:
            raise FileNotFoundError(f"no rendered {split} songs under {corpus}")

    def refresh(self) -> None:
        """Re-read the manifest, so a run started on a partly rendered corpus picks up songs as they land."""
        entries = load_manifest(self.corpus).values()
        self.songs = [self.corpus / self.split / e["id"] for e in entries
                      if e["split"] == self.split and (self.corpus / self.split / e["id"] / "mixture.wav").exists()
                      and (not self.only or e["id"] in self.only)]
        root = self.spleeter_root
        self.spleeter = {song.name: root / self.split / song.name for song in self.songs
                         if root and (root / self.split / song.name / "accompaniment.wav").exists()}
        recordings = self.recordings_root
        self.recordings = (realcorpus.load_pairs(recordings, self.split)
                           if recordings and (recordings / "corpus" / "manifest.json").exists() and not self.only else [])
        self.separated = [pair for pair in self.recordings if pair["spleeter_vocals"] is not None]
        if self.real_mixes is not None:  # the mixes validate scores first, so it scores what was fitted
            self.separated = self.recordings = realcorpus.first_separated(self.recordings, self.real_mixes)

    def runtime_level(self, song: Path, stem: str) -> float:
        """The level the engine's spectral estimate gives this whole Spleeter file, memoised.

        Real pairs are conditioned on what the sampler will be told at inference, not on the level their SI-SDR
        implies: on the val split, a model fine-tuned with SI-SDR levels lost about 0.6 dB of ΔSI-SDR when run with
        the estimated ones instead.
        """
        return self._level(song.name, stem, self.spleeter[song.name] / f"{stem}.wav",
                           lambda: audio.file_source(song / "mixture.wav"))

    def _level(self, song: str, stem: str, estimate: Path, mix: Callable[[], audio.Source]) -> float:
        """The engine's level for the whole file ``estimate`` against ``mix()``, memoised and appended to
        ``level_cache``: each estimate reads both whole files, and a resumed run that rebuilt them all spent tens of
        CPU-minutes of its session doing so, on the cores that train."""
        if (song, stem) not in self._real_levels:
            level = engine.estimate_level(audio.file_source(estimate), mix())
            self._real_levels[song, stem] = level
            if self.level_cache is not None:
                with self.level_cache.open("a") as cache:
                    cache.write(json.dumps({"song": song, "stem": stem, "level": level}) + "\n")
        return self._real_levels[song, stem]

    def _length(self, path: Path) -> int:
        if path not in self._frames:
            self._frames[path] = sf.info(str(path)).frames
        return self._frames[path]

    def _read(self, path: Path, start: int, channels: list[int], length: int | None = None) -> np.ndarray:
        """``length`` samples (the segment's by default) of ``channels`` from ``start``, as [channels, samples]."""
        length = length or self.segment
        data, _ = sf.read(str(path), start=start, stop=start + length, dtype="float32", always_2d=True)
        data = data[:, [min(c, data.shape[1] - 1) for c in channels]].T  # [channels, samples]
        if data.shape[1] < length:  # a song shorter than the segment is padded with silence
            data = np.pad(data, ((0, 0), (0, length - data.shape[1])))
        return data

    def _sum(self, song: Path, names: tuple[str, ...], start: int, channels: list[int]) -> np.ndarray:
        return sum(self._read(song / f"{name}.wav", start, channels) for name in names)

    def _channels(self) -> list[int]:
        """One random channel, or for a stereo model (left, right), one pair in ten a single channel twice."""
        rng = self.rng
        channel = int(rng.integers(2))
        return [channel] if not self.stereo else [channel, channel] if rng.random() < 0.1 else [0, 1]

    def _place(self) -> tuple[Path, int, list[int]]:
        """A random song, start sample and channel list."""
        song = self.songs[self.rng.integers(len(self.songs))]
        start = int(self.rng.integers(0, max(1, self._length(song / "mixture.wav") - self.segment)))
        return song, start, self._channels()

    def draw(self) -> Example:
        """One example; a song whose files are being rewritten by the renderer is skipped, not fatal."""
        for _ in range(20):
            try:
                return self._draw_once()
            except (OSError, RuntimeError):
                self.refresh()
        raise RuntimeError(f"cannot read training songs under {self.corpus}")

    def _draw_once(self) -> Example:
        rng = self.rng
        if self.recordings and rng.random() < self.recordings_fraction:
            return self._draw_recording()
        for _ in range(8):  # prefer segments where the stem is playing; a silent stem is still a valid case
            song, start, channels = self._place()
            use_real = song.name in self.spleeter and rng.random() < self.real_fraction
            stem = str(rng.choice(SPLEETER_STEMS if use_real else LADDER_STEMS))
            clean = self._sum(song, parts_of(stem), start, channels)
            if np.sqrt(np.mean(clean**2)) > _SILENT_RMS:
                break
        label = stem_index("unknown" if rng.random() < 0.1 else stem)
        if use_real:
            return self._real_pair(self._read(self.spleeter[song.name] / f"{stem}.wav", start, channels),
                                   self._read(song / "mixture.wav", start, channels), clean,
                                   self.runtime_level(song, stem), label)
        others = self._remixed_others(song, stem, start, channels)
        return self._synthetic(spectral.stft(clean), spectral.stft(others), stem, label)

    def _synthetic(self, clean_spec: np.ndarray, other_spec: np.ndarray, stem: str, label: int) -> Example:
        """An additive-bleed, clean or ladder example of ``clean_spec`` with ``other_spec`` as the other sources."""
        rng = self.rng
        mix_spec = clean_spec + other_spec
        if rng.random() < self.bleed_fraction:
            damaged_spec = random_leak_spec(clean_spec, other_spec, rng)
            return Example(damaged_spec, mix_spec, clean_spec, engine.spectrum_level(damaged_spec, mix_spec), label)
        if rng.random() < self.clean_fraction:
            return Example(clean_spec, mix_spec, clean_spec, 0.0, label)
        level = float(rng.random())
        return Example(degrade_spec(clean_spec, other_spec, level, rng, stem_type=stem), mix_spec, clean_spec, level,
                       label)

    def _draw_recording(self) -> Example:
        """An example from the real recordings: vocals or accompaniment, with its Spleeter estimate (real_fraction of
        the time, when any are made) or else damaged like a rendered stem, the other stem remixed from another mix
        half of the time."""
        rng = self.rng
        # The Spleeter pair is drawn from the mixes that have one: while the pairs are still being made, drawing from
        # every mix would cut the real pairs' share to the finished fraction of the corpus.
        separated = bool(self.separated) and rng.random() < self.real_fraction
        candidates = self.separated if separated else self.recordings
        pair = candidates[rng.integers(len(candidates))]
        start = None
        if separated and rng.random() < self.break_fraction:
            pair, start = self._voice_free_start(pair)
        if start is None:
            start = int(rng.integers(0, max(1, self._length(pair["vocals"]) - self.segment)))
        channels = self._channels()
        stem = str(rng.choice(SPLEETER_STEMS))
        other = SPLEETER_STEMS[1 - SPLEETER_STEMS.index(stem)]
        label = stem_index("unknown" if rng.random() < 0.1 else stem)
        if separated:
            speed = 1.0 + self.speed_rng.uniform(-self.real_speed, self.real_speed) if self.real_speed > 0 else 1.0
            length = round(self.segment * speed)
            estimate = pair[f"spleeter_{stem}"]
            clean, rest, separated_stem = (self._read(path, start, channels, length)
                                           for path in (pair[stem], pair[other], estimate))
            level = self._level(pair["id"], stem, estimate,  # as runtime_level: what the engine will estimate
                                lambda: audio.array_source(realcorpus.mixture(pair).T, spectral.SAMPLE_RATE))
            signals = (self._speed_changed(signal) for signal in (separated_stem, clean + rest, clean))
            return self._real_pair(*signals, level, label)
        clean = self._read(pair[stem], start, channels)
        source = pair if rng.random() < 0.5 else self.recordings[rng.integers(len(self.recordings))]
        source_start = start if source is pair else int(rng.integers(0, max(1, self._length(source[other]) - self.segment)))
        gain = 1.0 if source is pair else 10.0 ** (rng.uniform(-_REMIX_GAIN_DB, _REMIX_GAIN_DB) / 20.0)
        others = np.float32(gain) * self._read(source[other], source_start, channels)
        return self._synthetic(spectral.stft(clean), spectral.stft(others), stem, label)

    def _voice_free_start(self, pair: dict, tries: int = 20) -> tuple[dict, int | None]:
        """A Spleeter pair and a random start of a segment without voice in it (realcorpus.voice_share), trying
        other pairs when this one has none; None as the start when none of ``tries`` pairs has one.

        About one training segment in twenty-five falls in such a stretch by chance, where songs have intros, breaks
        and outros far more often, and there a model must give back the music that Spleeter put in its vocals (the
        ``break`` val kind). Each pair's voice-free starts are found once, on a coarse grid of starts.
        """
        for _ in range(tries):
            if pair["id"] not in self._voice_free:
                vocals, music = (sf.read(pair[stem], dtype="float32", always_2d=True)[0] for stem in SPLEETER_STEMS)
                share = realcorpus.voice_share(vocals, music, self.segment)[::_VOICE_FREE_GRID]
                self._voice_free[pair["id"]] = np.flatnonzero(share < realcorpus.VOICE_FREE) * _VOICE_FREE_GRID
            starts = self._voice_free[pair["id"]]
            if len(starts):
                return pair, int(starts[self.rng.integers(len(starts))])
            pair = self.separated[self.rng.integers(len(self.separated))]
        return pair, None

    def _speed_changed(self, signal: np.ndarray) -> np.ndarray:
        """``signal`` [channels, samples] resampled to the segment's length: played faster (longer reads) or slower.

        A pair read over ``speed`` segments and squeezed into one is the song played ``speed`` times as fast, pitch
        and tempo alike, as a turntable's pitch fader does: new keys, tempi and formants for the few soundtracks and
        speakers the real mixes are made of. Estimate, mixture and true stem are resampled alike, so the mixture is
        still the sum of the stems, and the estimate is still, nearly, a time-frequency mask on the mixture, warped
        with it.
        """
        if signal.shape[1] == self.segment:
            return signal
        # soxr takes the two lengths as its rates: the read is played back in exactly one segment
        resampled = soxr.resample(signal.T, signal.shape[1], self.segment).T
        return np.ascontiguousarray(np.pad(resampled, ((0, 0), (0, max(0, self.segment - resampled.shape[1]))))
                                    [:, :self.segment], dtype=np.float32)

    def _real_pair(self, estimate: np.ndarray, mix: np.ndarray, clean: np.ndarray, level: float,
                   label: int) -> Example:
        """A separator's pair as an Example, all three through one :func:`random_equaliser` when ``real_eq_db``."""
        specs = [spectral.stft(signal) for signal in (estimate, mix, clean)]
        if self.real_eq_db > 0:
            gain = random_equaliser(self.eq_rng, self.real_eq_db)
            specs = [gain * spec for spec in specs]
        return Example(*specs, level, label)

    def _remixed_others(self, song: Path, stem: str, start: int, channels: list[int]) -> np.ndarray:
        """The other sources: the same song's half of the time, else another song's at a random gain and channel."""
        rng = self.rng
        if rng.random() < 0.5:
            return self._sum(song, others_of(stem), start, channels)
        other_song, other_start, other_channels = self._place()
        gain = np.float32(10.0 ** (rng.uniform(-_REMIX_GAIN_DB, _REMIX_GAIN_DB) / 20.0))
        return gain * self._sum(other_song, others_of(stem), other_start, other_channels)

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        examples = [self.draw() for _ in range(size)]

        def stack(field: str) -> torch.Tensor:
            return torch.from_numpy(np.concatenate([spectral.to_channels(getattr(e, field)) for e in examples]))

        return {
            "stem": stack("damaged"), "mix": stack("mix"), "clean": stack("clean"),
            # One value per batch item, that is per channel of each example.
            "level": torch.tensor([e.level for e in examples for _ in e.mix], dtype=torch.float32),
            "stem_type": torch.tensor([e.stem_type for e in examples for _ in e.mix], dtype=torch.long),
        }


class BatchStream(torch.utils.data.IterableDataset):
    """Endless batches from a :class:`CorpusSampler`, for a DataLoader worker process.

    Reading, STFTs and the ladder take a large share of a training step on two cores; a worker prepares the next
    batches while the main process trains, so data preparation is off the critical path. The sampler re-reads the
    manifest every ``refresh_every`` batches, as the corpus may still be rendering.
    """

    def __init__(self, sampler: CorpusSampler, batch_size: int, refresh_every: int = 100):
        super().__init__()
        self.sampler, self.batch_size, self.refresh_every = sampler, batch_size, refresh_every

    def __iter__(self):
        count = 0
        while True:
            yield self.sampler.batch(self.batch_size)
            count += 1
            if count % self.refresh_every == 0:
                self.sampler.refresh()
