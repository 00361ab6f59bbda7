"""Train the denoiser on the rendered corpus: ladder examples drawn on the fly plus real Spleeter pairs.

Training runs in phases, following ControlNet: first the trunk alone on stem-only denoising, then the control branch
with the trunk frozen (its zero convolutions start it at the trunk's behaviour), then optionally everything jointly.
A plan such as ``trunk:1500,control:1500,joint:500`` names them; ``joint:N`` alone is the plain-joint ablation.

Checkpoints are written atomically every ``--save-every`` steps, and a rerun of the same command resumes from
``RUN/last.pt``, so a long run can span sessions.

    python -m stemclean.train.fit --run runs/main --plan trunk:1500,control:1500,joint:500
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import typer

from stemclean import audio, engine, schedule, spectral
from stemclean.files import atomic_path
from stemclean.stems import stem_index
from stemclean.train.corpus import load_manifest
from stemclean.train.degrade import degrade_spec
from stemclean.train.export import git_commit, load_checkpoint
from stemclean.train.network import Denoiser, block_dilations, with_stereo_inputs
from stemclean.train.separators import SPLEETER_STEMS

SEGMENT_SECONDS = 2.0
LADDER_STEMS = ("vocals", "drums", "bass", "other", "accompaniment")
_SILENT_RMS = 1e-4


@dataclass
class Example:
    """One training case: the damaged stem, the mixture and the true stem, as complex spectra [channels, F, T]."""

    damaged: np.ndarray
    mix: np.ndarray
    clean: np.ndarray
    level: float
    stem_type: int


class CorpusSampler:
    """Draws random segments from the rendered corpus and damages them with the ladder or with real Spleeter output.

    Segments are mono, or with ``stereo`` both channels as a (left, right) pair; one stereo pair in ten is a single
    channel twice, which is how the engine feeds a stereo model a mono file.
    """

    def __init__(self, corpus: Path, spleeter: Path | None, split: str, seed: int, real_fraction: float = 0.3,
                 clean_fraction: float = 0.05, stereo: bool = False):
        self.corpus, self.spleeter_root, self.split, self.stereo = corpus, spleeter, split, stereo
        self.rng = np.random.default_rng(seed)
        self.real_fraction, self.clean_fraction = real_fraction, clean_fraction
        self.segment = int(SEGMENT_SECONDS * spectral.SAMPLE_RATE)
        self._real_levels: dict[tuple[str, str], float] = {}
        self.refresh()
        if not self.songs:
            raise FileNotFoundError(f"no rendered {split} songs under {corpus}")

    def refresh(self) -> None:
        """Re-read the manifest, so a run started on a partly rendered corpus picks up songs as they land."""
        entries = load_manifest(self.corpus).values()
        self.songs = [self.corpus / self.split / e["id"] for e in entries
                      if e["split"] == self.split and (self.corpus / self.split / e["id"] / "mixture.wav").exists()]
        root = self.spleeter_root
        self.spleeter = {song.name: root / self.split / song.name for song in self.songs
                         if root and (root / self.split / song.name / "accompaniment.wav").exists()}

    def runtime_level(self, song: Path, stem: str) -> float:
        """The level the engine's spectral estimate gives this whole Spleeter file, memoised.

        Real pairs are conditioned on what the sampler will be told at inference, not on the level their SI-SDR
        implies: on the val split, a model fine-tuned with SI-SDR levels lost about 0.6 dB of ΔSI-SDR when run with
        the estimated ones instead.
        """
        key = (song.name, stem)
        if key not in self._real_levels:
            self._real_levels[key] = engine.estimate_level(
                audio.file_source(self.spleeter[song.name] / f"{stem}.wav"), audio.file_source(song / "mixture.wav"))
        return self._real_levels[key]

    def _read(self, path: Path, start: int, channels: list[int]) -> np.ndarray:
        audio, _ = sf.read(str(path), start=start, stop=start + self.segment, dtype="float32", always_2d=True)
        return audio[:, [min(c, audio.shape[1] - 1) for c in channels]].T  # [channels, samples]

    def _true_stem(self, song: Path, stem: str, start: int, channels: list[int]) -> np.ndarray:
        if stem == "accompaniment":
            return sum(self._read(song / f"{name}.wav", start, channels) for name in ("drums", "bass", "other"))
        return self._read(song / f"{stem}.wav", start, channels)

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
        for _ in range(8):  # prefer segments where the stem is playing; a silent stem is still a valid case
            song = self.songs[rng.integers(len(self.songs))]
            use_real = song.name in self.spleeter and rng.random() < self.real_fraction
            stem = str(rng.choice(SPLEETER_STEMS if use_real else LADDER_STEMS))
            frames = sf.info(str(song / "mixture.wav")).frames
            start = int(rng.integers(0, max(1, frames - self.segment)))
            channel = int(rng.integers(2))
            channels = [channel] if not self.stereo else [channel, channel] if rng.random() < 0.1 else [0, 1]
            clean = self._true_stem(song, stem, start, channels)
            if np.sqrt(np.mean(clean**2)) > _SILENT_RMS:
                break
        mix = self._read(song / "mixture.wav", start, channels)
        clean_spec, mix_spec = spectral.stft(clean), spectral.stft(mix)
        if use_real:
            damaged = self._read(self.spleeter[song.name] / f"{stem}.wav", start, channels)
            level = self.runtime_level(song, stem)
            damaged_spec = spectral.stft(damaged)
        elif rng.random() < self.clean_fraction:
            level, damaged_spec = 0.0, clean_spec
        else:
            level = float(rng.random())
            damaged_spec = degrade_spec(clean_spec, mix_spec - clean_spec, level, rng, stem_type=stem)
        label = "unknown" if rng.random() < 0.1 else stem
        return Example(damaged_spec, mix_spec, clean_spec, level, stem_index(label))

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


_WINDOW = torch.hann_window(spectral.N_FFT)


def _to_wave(spec: torch.Tensor) -> torch.Tensor:
    """[B, 2, F, T] -> [B, samples] with the same transform as stemclean.spectral.istft."""
    return torch.istft(torch.complex(spec[:, 0], spec[:, 1]), spectral.N_FFT, spectral.HOP_LENGTH, window=_WINDOW,
                       center=True)


def loss_terms(pred: torch.Tensor, target: torch.Tensor, mix: torch.Tensor) -> dict[str, torch.Tensor]:
    """Complex compressed-spectrum L1, multi-resolution STFT and negative SI-SDR, all invariant to the song's level."""
    scale = torch.sqrt(torch.mean(mix.pow(2).sum(1, keepdim=True), dim=(1, 2, 3), keepdim=True)) + 1e-5
    p, t = pred / scale, target / scale

    def compress(z: torch.Tensor) -> torch.Tensor:
        mag = torch.sqrt(z.pow(2).sum(1, keepdim=True) + 1e-10)
        return z * mag.pow(0.3 - 1.0)

    spectral_l1 = (compress(p) - compress(t)).abs().mean()
    wave_p, wave_t = _to_wave(p), _to_wave(t)
    mrstft = 0.0
    for n_fft in (512, 1024, 2048):
        win = torch.hann_window(n_fft)
        mp = torch.stft(wave_p, n_fft, n_fft // 4, window=win, return_complex=True).abs()
        mt = torch.stft(wave_t, n_fft, n_fft // 4, window=win, return_complex=True).abs()
        convergence = torch.linalg.norm(mp - mt) / (torch.linalg.norm(mt) + 1e-7)
        mrstft = mrstft + convergence + (torch.log(mp + 1e-5) - torch.log(mt + 1e-5)).abs().mean()
    energy = wave_t.pow(2).sum(-1)
    active = energy > 1e-6 * wave_t.shape[-1]
    dot = (wave_p * wave_t).sum(-1, keepdim=True)
    projection = dot / (energy[:, None] + 1e-8) * wave_t
    si_sdr = 10 * torch.log10(projection.pow(2).sum(-1) / ((wave_p - projection).pow(2).sum(-1) + 1e-8) + 1e-8)
    neg_si_sdr = -(si_sdr[active].mean() if active.any() else si_sdr.sum() * 0)
    bleed = bleed_db(p, t, mix / scale)
    bleed = bleed[active].mean() if active.any() else bleed.sum() * 0
    return {"spectral": spectral_l1, "mrstft": mrstft / 3, "neg_si_sdr": neg_si_sdr, "bleed_db": bleed}


def bleed_db(pred: torch.Tensor, target: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """Energy of the true residual left in the prediction, relative to the target, in dB (a differentiable SIR).

    BSS-eval's SIR projects the error onto the other sources through a short filter; a complex gain per STFT bin is the
    spectral analogue: for each frequency, the error's least-squares projection onto the true residual ``mix - target``
    over time. The SI-SDR and spectral losses alone let the model trade bleed for fewer artifacts.
    """
    error, resid = pred - target, mix - target
    cross_re = (error[:, 0] * resid[:, 0] + error[:, 1] * resid[:, 1]).sum(-1)
    cross_im = (error[:, 1] * resid[:, 0] - error[:, 0] * resid[:, 1]).sum(-1)
    resid_energy = resid.pow(2).sum(1).sum(-1)
    interference = ((cross_re.pow(2) + cross_im.pow(2)) / (resid_energy + 1e-8)).sum(-1)
    return 10 * torch.log10(interference / (target.pow(2).sum((1, 2, 3)) + 1e-8) + 1e-4)


# Settings a checkpoint records beside its plan, so the model card can say how each stage was trained.
RECIPE_KEYS = ("real_fraction", "bleed_weight", "sdr_weight")


def total_loss(terms: dict[str, torch.Tensor], bleed_weight: float = 0.01, sdr_weight: float = 0.01) -> torch.Tensor:
    return terms["spectral"] + terms["mrstft"] + sdr_weight * terms["neg_si_sdr"] + bleed_weight * terms["bleed_db"]


def consistency_input(model: Denoiser, batch: dict[str, torch.Tensor], rng: np.random.Generator) -> dict:
    """Replace the input with what the sampler feeds the model at its next level.

    The model's own prediction at level t is re-blended to a lower level t' (schedule.reblend); training on these
    intermediate states is what lets a second and third step improve on the first (LCM-style consistency).
    """
    with torch.no_grad():
        x0 = model(batch["stem"], batch["mix"], batch["level"], batch["stem_type"])
    t = batch["level"].numpy().astype(np.float64)
    t_next = t * rng.uniform(0.2, 0.8, size=t.shape)
    ratio = torch.tensor(schedule.sigma(t_next) / schedule.sigma(np.maximum(t, 1e-6)), dtype=torch.float32)
    stem = x0 + ratio[:, None, None, None] * (batch["stem"] - x0)
    return {**batch, "stem": stem, "level": torch.tensor(t_next, dtype=torch.float32)}


def parse_plan(plan: str) -> list[tuple[str, int]]:
    phases = []
    for item in plan.split(","):
        name, steps = item.split(":")
        if name not in ("trunk", "control", "joint"):
            raise typer.BadParameter(f"unknown phase {name!r}; use trunk, control or joint")
        phases.append((name, int(steps)))
    return phases


def steps_done(state: dict) -> int:
    """Optimizer steps a checkpoint has taken: its plan's finished phases plus the current one's progress.

    A run stopped before its plan's end (for time) has taken fewer steps than the plan names.
    """
    phases = parse_plan(state["plan"])
    return sum(steps for _, steps in phases[: state["phase_index"]]) + state["phase_step"]


def configure_phase(model: Denoiser, phase: str, lr: float) -> torch.optim.Optimizer:
    """Trunk: stem-only, control branch off. Control: trunk frozen. Joint: everything trains.

    Which parameters train is set from the phase alone, never from the flags an earlier phase left behind.
    """
    model.use_control = phase != "trunk"
    trainable = model.trunk_parameters() if phase == "trunk" else (
        model.control_parameters() if phase == "control" else list(model.parameters()))
    chosen = set(map(id, trainable))
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)
    return torch.optim.AdamW(trainable, lr=lr, weight_decay=1e-4)


def save(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def main(
    run: Path = typer.Option(Path("runs/main"), help="Folder for checkpoints and the log."),
    plan: str = typer.Option("trunk:1500,control:1500,joint:500", help="Phases and their optimizer steps."),
    corpus: Path = typer.Option(Path("data/corpus")),
    spleeter: Path = typer.Option(Path("data/spleeter")),
    batch_size: int = typer.Option(8, help="Channels per step: a stereo model draws half as many (left, right) pairs."),
    lr: float = typer.Option(1e-3),
    width: int = typer.Option(32, help="Channels per band (a new run only; --init and resume keep the parent's)."),
    blocks: int = typer.Option(4, help="Blocks per branch (a new run only); fewer run faster."),
    stereo: bool = typer.Option(False, help="Give the control branch the partner channel (a new run, or an --init "
                                "parent that is mono: its new inputs start at zero, so it starts as the parent)."),
    time_stride: int = typer.Option(None, min=1, max=2,
                                    help="1 or 2: the blocks' frame stride (default: the parent's, or 1). "
                                    "2 runs them at half the frame rate; it may change an --init parent's."),
    consistency: float = typer.Option(0.3, help="Share of batches trained on the sampler's own intermediate states."),
    real_fraction: float = typer.Option(0.3, help="Share of vocals/accompaniment examples from real Spleeter pairs."),
    init: Path = typer.Option(None, help="Start a new run from this checkpoint's weights (fine-tuning)."),
    bleed_weight: float = typer.Option(0.01, help="Weight of the bleed (differentiable SIR) loss, per dB."),
    sdr_weight: float = typer.Option(0.01, help="Weight of the negative SI-SDR loss, per dB."),
    save_every: int = typer.Option(100),
    threads: int = typer.Option(2),
    seed: int = typer.Option(0),
) -> None:
    """Train (or resume) the denoiser."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    run.mkdir(parents=True, exist_ok=True)
    phases = parse_plan(plan)
    state = {"phase_index": 0, "phase_step": 0, "wall_time": 0.0, "examples": 0}
    last = run / "last.pt"
    saved, history = None, []
    if last.exists():
        model, saved = load_checkpoint(last)
        state = {k: saved[k] for k in state}
        history = saved.get("history", [])
        typer.echo(f"resuming {last}: phase {state['phase_index']} step {state['phase_step']}", err=True)
    elif init is not None:
        model, parent = load_checkpoint(init)
        # The parent's training counts toward this model's totals, and its plan stays on record for the model card.
        state.update(wall_time=parent["wall_time"], examples=parent["examples"])
        history = [*parent.get("history", []),
                   {"plan": parent["plan"], "run": str(init.parent), "steps": steps_done(parent),
                    **{k: parent[k] for k in RECIPE_KEYS if k in parent}}]
        typer.echo(f"starting from the weights of {init}", err=True)
        if time_stride is not None:
            model.time_stride = time_stride  # no parameter depends on it, so the parent's weights carry over
        if stereo and not model.stereo:
            model = with_stereo_inputs(model)
    else:
        model = Denoiser(width=width, dilations=block_dilations(blocks), time_stride=time_stride or 1, stereo=stereo)
    sampler = CorpusSampler(corpus, spleeter, "train", seed=seed + 1000 * state["phase_index"] + state["phase_step"],
                            real_fraction=real_fraction, stereo=model.stereo)
    examples_per_step = batch_size // 2 if model.stereo else batch_size
    recipe = dict(zip(RECIPE_KEYS, (real_fraction, bleed_weight, sdr_weight), strict=True))
    rng = np.random.default_rng(seed + 7)
    log = (run / "log.jsonl").open("a")

    for phase_index in range(state["phase_index"], len(phases)):
        phase, n_steps = phases[phase_index]
        phase_lr = lr if phase != "joint" or phase_index == 0 else lr * 0.3
        optimizer = configure_phase(model, phase, phase_lr)
        if saved is not None and saved["phase_index"] == phase_index and saved["phase_step"] > 0:
            optimizer.load_state_dict(saved["optimizer"])
        model.train()
        for step in range(state["phase_step"] if phase_index == state["phase_index"] else 0, n_steps):
            started = time.time()
            batch = sampler.batch(examples_per_step)
            if rng.random() < consistency:
                batch = consistency_input(model, batch, rng)
            pred = model(batch["stem"], batch["mix"], batch["level"], batch["stem_type"])
            terms = loss_terms(pred, batch["clean"], batch["mix"])
            loss = total_loss(terms, bleed_weight, sdr_weight)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            for group in optimizer.param_groups:  # cosine decay within the phase after a short warm-up
                warm = min(1.0, (step + 1) / 50)
                group["lr"] = phase_lr * warm * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / n_steps)))
            optimizer.step()
            state.update(phase_index=phase_index, phase_step=step + 1, wall_time=state["wall_time"] + time.time() - started,
                         examples=state["examples"] + batch_size)
            record = {"phase": phase, "step": step + 1, "loss": loss.item(), **{k: v.item() for k, v in terms.items()},
                      "seconds": round(time.time() - started, 3)}
            log.write(json.dumps(record) + "\n")
            log.flush()
            if (step + 1) % save_every == 0 or step + 1 == n_steps:
                checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "model_config": model.config, "use_control": model.use_control, "plan": plan,
                              "history": history, **recipe, "commit": git_commit(), **state}
                save(last, checkpoint)
                sampler.refresh()
                if step + 1 == n_steps:
                    save(run / f"{phase_index}-{phase}.pt", checkpoint)
        state["phase_step"] = 0
    typer.echo(f"done: {state['examples']} examples in {state['wall_time'] / 3600:.2f} h", err=True)


if __name__ == "__main__":
    typer.run(main)
