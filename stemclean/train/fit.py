"""Train the denoiser on the rendered corpus: ladder examples drawn on the fly plus real Spleeter pairs.

Training runs in phases, following ControlNet: first the trunk alone on stem-only denoising, then the control branch
with the trunk frozen (its zero convolutions start it at the trunk's behaviour), then optionally everything jointly.
A plan such as ``trunk:1500,control:1500,joint:500`` names them; ``joint:N`` alone is the plain-joint ablation.

Checkpoints are written atomically every ``--save-every`` steps, and a rerun of the same command resumes from
``RUN/last.pt``, so a long run can span sessions. With ``--ema``, a checkpoint's ``model`` is the moving average of
the weights (what val scores, export ships and ``--init`` starts from) and ``raw`` the optimizer's own, which a
resume continues from (a weights-only snapshot keeps only the average).

    python -m stemclean.train.fit --run runs/main --plan trunk:1500,control:1500,joint:500
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import typer
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from stemclean import schedule, spectral
from stemclean.files import atomic_path
from stemclean.train import validate
from stemclean.train.export import git_commit, load_checkpoint, save_weights
from stemclean.train.network import Denoiser, block_dilations, deeper, with_stereo_inputs
from stemclean.train.sampler import BatchStream, CorpusSampler

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
RECIPE_KEYS = ("real_fraction", "bleed_weight", "sdr_weight", "bleed_fraction", "segment_seconds", "bf16",
               "recordings_fraction", "real_eq_db", "ema", "break_fraction", "real_speed", "weight_decay")


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


def configure_phase(model: Denoiser, phase: str, lr: float, weight_decay: float = 1e-4) -> torch.optim.Optimizer:
    """Trunk: stem-only, control branch off. Control: trunk frozen. Joint: everything trains.

    Which parameters train is set from the phase alone, never from the flags an earlier phase left behind.
    """
    model.use_control = phase != "trunk"
    trainable = model.trunk_parameters() if phase == "trunk" else (
        model.control_parameters() if phase == "control" else list(model.parameters()))
    chosen = set(map(id, trainable))
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)
    return torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)


def save(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def weight_average(model: Denoiser, decay: float, saved: dict | None) -> AveragedModel | None:
    """The exponential moving average of ``model``'s weights (``decay`` per step; none when 0).

    With batches of a few excerpts, each step moves the weights noisily and the val scores of neighbouring steps
    differ by more than a stage gains; the average is the usual remedy (demucs trains with one). A resumed run's
    ``model`` holds the average and ``raw`` the optimizer's weights, which go back into ``model`` here.
    """
    if not decay:
        return None
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
    if saved is not None and "raw" in saved:
        model.load_state_dict(saved["raw"])
        average.n_averaged.fill_(1)  # already an average: the first update must not copy the raw weights over it
    return average


def main(
    run: Path = typer.Option(Path("runs/main"), help="Folder for checkpoints and the log."),
    plan: str = typer.Option("trunk:1500,control:1500,joint:500", help="Phases and their optimizer steps."),
    corpus: Path = typer.Option(Path("data/corpus")),
    spleeter: Path = typer.Option(Path("data/spleeter")),
    batch_size: int = typer.Option(8, help="Channels per step: a stereo model draws half as many (left, right) pairs."),
    lr: float = typer.Option(1e-3),
    width: int = typer.Option(32, help="Channels per band (a new run only; --init and resume keep the parent's)."),
    blocks: int = typer.Option(4, help="Blocks per branch (a new run only); fewer run faster. Time dilations cycle "
                               "1, 2, 4, ..., 32, so 6 blocks at --time-stride 2 see about +-2.9 s."),
    evidence: bool = typer.Option(False, help="New run: the control branch reads the local least-squares bleed gain "
                                  "and coherence, and the head can apply the closed-form de-bleed they imply."),
    band_mix: bool = typer.Option(False, help="New run: each block mixes all bands densely (context across the "
                                  "whole spectrum, not just +-1 band per block)."),
    segment_seconds: float = typer.Option(2.0, help="Length of each training segment; long context needs long ones."),
    bleed_fraction: float = typer.Option(0.0, help="Share of synthetic examples that are additive bleed (a fixed-"
                                         "filter leak of the others) instead of the artifact ladder."),
    bf16: bool = typer.Option(False, help="Run the network's forward pass under bfloat16 autocast (the loss stays "
                              "float32)."),
    val_every: int = typer.Option(0, help="Score the val set (stemclean.train.validate) every N steps and log it; "
                                  "0 never."),
    workers: int = typer.Option(1, help="DataLoader worker processes preparing batches beside training; 0 prepares "
                                "them in the training process."),
    stereo: bool = typer.Option(False, help="Give the control branch the partner channel (a new run, or an --init "
                                "parent that is mono: its new inputs start at zero, so it starts as the parent)."),
    time_stride: int = typer.Option(None, min=1, max=2,
                                    help="1 or 2: the blocks' frame stride (default: the parent's, or 1). "
                                    "2 runs them at half the frame rate; it may change an --init parent's."),
    consistency: float = typer.Option(0.3, help="Share of batches trained on the sampler's own intermediate states."),
    real_fraction: float = typer.Option(0.3, help="Share of vocals/accompaniment examples from real Spleeter pairs."),
    init: Path = typer.Option(None, help="Start a new run from this checkpoint's weights (fine-tuning)."),
    gate_bias: float = typer.Option(None, help="With --init: reset the de-bleed gate's bias to this (an --evidence "
                                    "parent whose gate never opened; see Denoiser.set_gate_bias)."),
    reset_control: bool = typer.Option(False, help="With --init: zero the control branch's zero convolutions, so the "
                                       "parent starts without the branch and it joins again as trained "
                                       "(Denoiser.reset_control_joins)."),
    grow_blocks: int = typer.Option(None, help="With --init: give each branch this many blocks, the new ones last and "
                                    "starting as the identity (network.deeper), to test whether depth pays."),
    bleed_weight: float = typer.Option(0.01, help="Weight of the bleed (differentiable SIR) loss, per dB."),
    sdr_weight: float = typer.Option(0.01, help="Weight of the negative SI-SDR loss, per dB."),
    recordings: Path = typer.Option(Path("data/real"), help="The real-recordings corpus (stemclean.train.realcorpus), "
                                    "if made."),
    recordings_fraction: float = typer.Option(0.0, help="Share of examples drawn from the real recordings, when any "
                                              "exist: their Spleeter pairs (--real-fraction of those) or their stems "
                                              "damaged and remixed like the rendered ones."),
    real_eq_db: float = typer.Option(0.0, help="Pass each real Spleeter pair (estimate, mixture and true stem alike) "
                                     "through a random smooth equaliser of up to this many dB: new timbres that keep "
                                     "the separator's mask (sampler.random_equaliser)."),
    break_fraction: float = typer.Option(0.0, help="Share of the real recordings' Spleeter pairs drawn from a stretch "
                                         "without voice (sampler.CorpusSampler._voice_free_start)."),
    real_speed: float = typer.Option(0.0, help="Play each real recording's Spleeter pair (estimate, mixture and true "
                                     "stem alike) up to this fraction faster or slower, pitch and tempo together "
                                     "(sampler.CorpusSampler._speed_changed); 0 off."),
    weight_decay: float = typer.Option(1e-4, help="AdamW's decoupled weight decay (per unit of learning rate): a "
                                       "larger one holds the weights nearer zero, against fitting the training mixes "
                                       "alone."),
    ema: float = typer.Option(0.0, help="Keep a moving average of the weights with this decay per step (e.g. 0.999; "
                              "0 off): val scores and checkpoints' model use it, and the raw weights are logged "
                              "beside it as val_raw."),
    songs: str = typer.Option(None, help="Train on these comma-separated song ids alone (the overfit check)."),
    real_mixes: int = typer.Option(None, help="Draw real recordings from the first N train mixes (by id) that have "
                                   "Spleeter pairs alone: the overfit sweep over how many real mixes a run fits."),
    resume_weights: Path = typer.Option(None, help="Without RUN/last.pt, resume this run from a weights-only "
                                        "snapshot (see --snapshot): same plan position, fresh optimizer state."),
    snapshot: Path = typer.Option(None, help="Also write a weights-only copy of every checkpoint here, small enough "
                                  "to commit, so a fresh machine can resume the run with --resume-weights."),
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
    resume_from = last if last.exists() else resume_weights
    if resume_from is not None:
        model, saved = load_checkpoint(resume_from)
        state = {k: saved[k] for k in state}
        history = saved.get("history", [])
        typer.echo(f"resuming {resume_from}: phase {state['phase_index']} step {state['phase_step']}", err=True)
    elif init is not None:
        model, parent = load_checkpoint(init)
        # The parent's training counts toward this model's totals, and its plan stays on record for the model card.
        state.update(wall_time=parent["wall_time"], examples=parent["examples"])
        history = [*parent.get("history", []),
                   {"plan": parent["plan"], "run": str(init.parent), "steps": steps_done(parent),
                    **{k: parent[k] for k in RECIPE_KEYS if k in parent}}]
        typer.echo(f"starting from the weights of {init}", err=True)
        if gate_bias is not None:
            if not model.evidence:
                raise typer.BadParameter("--gate-bias needs an --evidence parent: there is no gate")
            model.set_gate_bias(gate_bias)
            history[-1]["gate_bias_after"] = gate_bias
        if reset_control:
            model.reset_control_joins()
            history[-1]["control_reset_after"] = True
        if time_stride is not None:
            model.time_stride = time_stride  # no parameter depends on it, so the parent's weights carry over
        if stereo and not model.stereo:
            model = with_stereo_inputs(model)
        if grow_blocks is not None:
            model = deeper(model, grow_blocks)
            history[-1]["grown_to_blocks"] = grow_blocks
    else:
        model = Denoiser(width=width, dilations=block_dilations(blocks), time_stride=time_stride or 1, stereo=stereo,
                         evidence=evidence, band_mix=band_mix)
    sampler = CorpusSampler(corpus, spleeter, "train", seed=seed + 1000 * state["phase_index"] + state["phase_step"],
                            real_fraction=real_fraction, stereo=model.stereo, bleed_fraction=bleed_fraction,
                            segment_seconds=segment_seconds, songs=tuple(songs.split(",")) if songs else None,
                            recordings=recordings, recordings_fraction=recordings_fraction,
                            level_cache=run / "levels.jsonl", real_mixes=real_mixes, real_eq_db=real_eq_db,
                            break_fraction=break_fraction, real_speed=real_speed)
    average = weight_average(model, ema, saved)
    examples_per_step = batch_size // 2 if model.stereo else batch_size
    batches = iter(torch.utils.data.DataLoader(BatchStream(sampler, examples_per_step), batch_size=None,
                                               num_workers=workers, prefetch_factor=4 if workers else None,
                                               persistent_workers=workers > 0))
    val_set = validate.ValSet(corpus, spleeter, recordings)
    recipe = dict(zip(RECIPE_KEYS, (real_fraction, bleed_weight, sdr_weight, bleed_fraction, segment_seconds, bf16,
                                    recordings_fraction, real_eq_db, ema, break_fraction, real_speed, weight_decay),
                                strict=True))
    rng = np.random.default_rng(seed + 7)
    log = (run / "log.jsonl").open("a")

    for phase_index in range(state["phase_index"], len(phases)):
        phase, n_steps = phases[phase_index]
        phase_lr = lr if phase != "joint" or phase_index == 0 else lr * 0.3
        optimizer = configure_phase(model, phase, phase_lr, weight_decay)
        if average is not None:
            average.module.use_control = model.use_control
        if saved is not None and saved["phase_index"] == phase_index and saved["phase_step"] > 0 and "optimizer" in saved:
            optimizer.load_state_dict(saved["optimizer"])  # a weights-only snapshot restarts Adam's moments
            for group in optimizer.param_groups:  # the saved state carries the decay it ran with; the option rules
                group["weight_decay"] = weight_decay
        model.train()
        for step in range(state["phase_step"] if phase_index == state["phase_index"] else 0, n_steps):
            started = time.time()
            batch = next(batches)
            if rng.random() < consistency:
                batch = consistency_input(model, batch, rng)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                pred = model(batch["stem"], batch["mix"], batch["level"], batch["stem_type"])
            terms = loss_terms(pred.float(), batch["clean"], batch["mix"])
            loss = total_loss(terms, bleed_weight, sdr_weight)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            for group in optimizer.param_groups:  # cosine decay within the phase after a short warm-up
                warm = min(1.0, (step + 1) / 50)
                group["lr"] = phase_lr * warm * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / n_steps)))
            optimizer.step()
            if average is not None:
                average.update_parameters(model)
            state.update(phase_index=phase_index, phase_step=step + 1, wall_time=state["wall_time"] + time.time() - started,
                         examples=state["examples"] + batch_size)
            record = {"phase": phase, "step": step + 1, "loss": loss.item(), **{k: v.item() for k, v in terms.items()},
                      "seconds": round(time.time() - started, 3)}
            if val_every and (step + 1) % val_every == 0:
                record["val"] = validate.score(average.module if average else model, val_set.cases())
                if average is not None:
                    record["val_raw"] = validate.score(model, val_set.cases())
                record.update(examples=state["examples"], wall_hours=state["wall_time"] / 3600)
            log.write(json.dumps(record) + "\n")
            log.flush()
            if (step + 1) % save_every == 0 or step + 1 == n_steps:
                weights = {"model": average.module.state_dict(), "raw": model.state_dict()} if average else {
                    "model": model.state_dict()}
                checkpoint = {**weights, "optimizer": optimizer.state_dict(),
                              "model_config": model.config, "use_control": model.use_control, "plan": plan,
                              "history": history, **recipe, "commit": git_commit(), **state}
                save(last, checkpoint)
                if snapshot is not None:
                    save_weights(checkpoint, snapshot)
                if step + 1 == n_steps:
                    save(run / f"{phase_index}-{phase}.pt", checkpoint)
        state["phase_step"] = 0
    typer.echo(f"done: {state['examples']} examples in {state['wall_time'] / 3600:.2f} h", err=True)


if __name__ == "__main__":
    typer.run(main)
