"""Training smoke path: a few optimizer steps on a tiny synthetic corpus, then ONNX export and the parity check."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch
from scipy.ndimage import uniform_filter

from stemclean import audio, engine, spectral
from stemclean.train import curves, fit, network, sampler as sampling, validate
from stemclean.train.degrade import add_leak
from stemclean.train.export import export, load_checkpoint, parity_error, save_weights
from stemclean.train.network import Denoiser, band_edges, bleed_evidence, deeper, with_stereo_inputs


def _tone(freq: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * spectral.SAMPLE_RATE)) / spectral.SAMPLE_RATE
    wave = np.sin(2 * np.pi * freq * t) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
    return np.stack([wave, wave * rng.uniform(0.5, 1.0)], axis=1).astype(np.float32) * 0.2


def _write_corpus(root, split: str):
    """Two 3-second 'songs' of tones and noise, in the corpus layout of docs/ARCHITECTURE.md."""
    rng = np.random.default_rng(0)
    songs = []
    for i in range(2):
        song = root / split / f"song{i}"
        song.mkdir(parents=True)
        stems = {
            "vocals": _tone(440 * (i + 1), 3, rng),
            "drums": (rng.standard_normal((3 * spectral.SAMPLE_RATE, 2)) * 0.05).astype(np.float32),
            "bass": _tone(55 * (i + 1), 3, rng),
            "other": _tone(1320, 3, rng),
        }
        for name, samples in stems.items():
            sf.write(song / f"{name}.wav", samples, spectral.SAMPLE_RATE, subtype="FLOAT")
        sf.write(song / "mixture.wav", sum(stems.values()), spectral.SAMPLE_RATE, subtype="FLOAT")
        songs.append({"id": f"song{i}", "split": split})
    (root / "manifest.json").write_text(json.dumps({"songs": songs}))
    return root


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    return _write_corpus(tmp_path_factory.mktemp("corpus"), "train")


def test_bands_tile_every_bin_once():
    edges = band_edges()
    assert edges[0][0] == 0 and edges[-1][1] == spectral.N_BINS
    assert all(a[1] == b[0] for a, b in zip(edges, edges[1:]))


def test_zero_convs_start_at_the_trunk():
    """ControlNet property: before control training, switching the control branch on changes nothing."""
    model = Denoiser(width=16).eval()
    stem, mix = torch.randn(1, 2, spectral.N_BINS, 20), torch.randn(1, 2, spectral.N_BINS, 20)
    args = (stem, mix, torch.tensor([0.5]), torch.tensor([0]))
    with torch.no_grad():
        with_control = model(*args)
        model.use_control = False
        trunk_only = model(*args)
    assert torch.equal(with_control, trunk_only)


def test_a_deeper_copy_starts_as_its_parent_and_then_learns():
    parent = Denoiser(width=8, dilations=(1, 2), evidence=True, band_mix=True).eval()
    for conv in parent.zero_convs:  # a trained control branch, so the path through it matters
        torch.nn.init.normal_(conv.weight, std=0.1)
    grown = deeper(parent, 4).eval()
    assert grown.dilations == (1, 2, 4, 8)
    rng = torch.Generator().manual_seed(0)
    stem = torch.randn(1, 2, spectral.N_BINS, 12, generator=rng)
    args = (stem, stem + torch.randn(1, 2, spectral.N_BINS, 12, generator=rng), torch.tensor([0.5]), torch.tensor([0]))
    with torch.no_grad():
        assert torch.allclose(grown(*args), parent(*args), atol=1e-6)
        for block in grown.trunk_blocks[2:]:  # once the new blocks have weight, they change the result
            torch.nn.init.normal_(block.mlp[-1].weight, std=0.1)
        assert not torch.allclose(grown(*args), parent(*args), atol=1e-4)


def test_a_reset_control_branch_no_longer_reaches_the_output_until_it_learns_again():
    model = Denoiser(width=8, dilations=(1, 2), evidence=True).eval()
    for conv in model.zero_convs:  # a trained control branch
        torch.nn.init.normal_(conv.weight, std=0.1)
    rng = torch.Generator().manual_seed(1)
    stem = torch.randn(1, 2, spectral.N_BINS, 12, generator=rng)
    args = (stem, stem + torch.randn(1, 2, spectral.N_BINS, 12, generator=rng), torch.tensor([0.5]), torch.tensor([0]))

    def output_with_control_input_scaled(factor: float) -> torch.Tensor:
        for proj in model.control_in.proj:
            proj.weight.data *= factor
        with torch.no_grad():
            return model(*args)

    assert not torch.allclose(output_with_control_input_scaled(1.0), output_with_control_input_scaled(3.0), atol=1e-4)
    model.reset_control_joins()
    assert torch.allclose(output_with_control_input_scaled(1.0), output_with_control_input_scaled(3.0), atol=1e-6)


def test_stereo_copy_starts_as_its_mono_parent_and_then_reads_the_partner():
    mono = Denoiser(width=8, dilations=(1, 2)).eval()
    for conv in mono.zero_convs:  # a trained control branch, so the control features matter
        torch.nn.init.normal_(conv.weight, std=0.1)
    stereo = with_stereo_inputs(mono).eval()
    rng = torch.Generator().manual_seed(0)
    stem = torch.randn(2, 2, spectral.N_BINS, 12, generator=rng)
    mix = stem + torch.randn(2, 2, spectral.N_BINS, 12, generator=rng)
    args = (stem, mix, torch.tensor([0.5, 0.5]), torch.tensor([0, 0]))
    with torch.no_grad():
        assert torch.allclose(stereo(*args), mono(*args), atol=1e-6)
        for proj in stereo.control_in.proj:  # once the new inputs have weight, the partner changes the result
            torch.nn.init.normal_(proj.weight, std=0.1)
        swapped_partner = (torch.stack([stem[0], -stem[1]]), torch.stack([mix[0], -mix[1]]), *args[2:])
        assert not torch.allclose(stereo(*args)[0], stereo(*swapped_partner)[0], atol=1e-4)


def test_stereo_sampler_draws_left_right_pairs(tiny_corpus):
    sampler = sampling.CorpusSampler(tiny_corpus, None, "train", seed=3, stereo=True)
    batch = sampler.batch(12)
    assert batch["stem"].shape == (24, 2, spectral.N_BINS, 173)
    assert torch.equal(batch["level"][0::2], batch["level"][1::2])
    left, right = batch["clean"][0::2], batch["clean"][1::2]
    same = [torch.equal(a, b) for a, b in zip(left, right)]
    assert same.count(False) > len(same) / 2, "the corpus is stereo, so most pairs differ"  # ~1 in 10 is one channel twice


def test_sampler_draws_ladder_and_clean_cases(tiny_corpus):
    sampler = sampling.CorpusSampler(tiny_corpus, None, "train", seed=1, clean_fraction=0.5)
    batch = sampler.batch(6)
    assert batch["stem"].shape == (6, 2, spectral.N_BINS, 173)
    levels = batch["level"].numpy()
    assert np.all((levels >= 0) & (levels <= 1))
    # the ladder must actually damage the stem wherever the level is clearly above zero
    damaged = levels > 0.3
    diff = (batch["stem"] - batch["clean"]).pow(2).sum(dim=(1, 2, 3)).numpy()
    assert np.all(diff[damaged] > 0)


def test_real_pairs_carry_the_level_the_engine_will_estimate(tiny_corpus, tmp_path, monkeypatch):
    spleeter = tmp_path / "spleeter"
    for song in ("song0", "song1"):
        folder = tiny_corpus / "train" / song
        mix, _ = sf.read(folder / "mixture.wav", dtype="float32")
        vocals, _ = sf.read(folder / "vocals.wav", dtype="float32")
        (spleeter / "train" / song).mkdir(parents=True)
        # a crude separator: the vocals with a fifth of the accompaniment left in
        sf.write(spleeter / "train" / song / "vocals.wav", vocals + 0.2 * (mix - vocals), spectral.SAMPLE_RATE)
        sf.write(spleeter / "train" / song / "accompaniment.wav", 0.8 * (mix - vocals), spectral.SAMPLE_RATE)
    cache = tmp_path / "run" / "levels.jsonl"
    cache.parent.mkdir()
    sampler = sampling.CorpusSampler(tiny_corpus, spleeter, "train", seed=2, real_fraction=1.0, level_cache=cache)
    batch = sampler.batch(4)
    expected = {engine.estimate_level(audio.file_source(spleeter / "train" / song / f"{stem}.wav"),
                                      audio.file_source(tiny_corpus / "train" / song / "mixture.wav"))
                for song in ("song0", "song1") for stem in ("vocals", "accompaniment")}
    assert all(min(abs(level - e) for e in expected) < 1e-6 for level in batch["level"].tolist())
    assert min(expected) > 0.3, "a separator's bleed must read as damage"

    # a resumed run reads the levels back instead of estimating them again, and skips a line cut short by a kill
    with cache.open("a") as partial:
        partial.write('{"song": "song0", "st')
    monkeypatch.setattr(engine, "estimate_level", lambda *_: pytest.fail("estimated a cached level again"))
    resumed = sampling.CorpusSampler(tiny_corpus, spleeter, "train", seed=2, real_fraction=1.0, level_cache=cache)
    assert resumed.batch(4)["level"].tolist() == batch["level"].tolist()


def test_bleed_loss_sees_the_residual_not_other_error():
    rng = np.random.default_rng(3)
    target, resid = (torch.from_numpy(rng.standard_normal((1, 2, 64, 40)).astype(np.float32)) for _ in range(2))
    noise = torch.from_numpy(rng.standard_normal((1, 2, 64, 40)).astype(np.float32))
    mix = target + resid
    with_bleed = fit.bleed_db(target + 0.1 * resid, target, mix).item()
    with_noise = fit.bleed_db(target + 0.1 * noise, target, mix).item()
    assert abs(with_bleed - (-20.0)) < 1.0  # 10% of an equally loud residual is -20 dB of bleed
    assert with_noise < with_bleed - 10.0


def test_joint_phase_trains_the_trunk_even_after_a_control_phase_froze_it():
    model = Denoiser(width=8, dilations=(1, 2))
    trunk, control = set(map(id, model.trunk_parameters())), set(map(id, model.control_parameters()))
    fit.configure_phase(model, "control", 1e-3)
    joint = {id(p) for group in fit.configure_phase(model, "joint", 1e-3).param_groups for p in group["params"]}
    assert control <= joint and trunk <= joint
    assert id(model.level_freqs) not in joint


def test_fit_resumes_and_exports_with_parity(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    common = dict(run=run, corpus=tiny_corpus, spleeter=tmp_path / "none", batch_size=2, lr=1e-3, width=8,
                  blocks=2, time_stride=None, stereo=False, consistency=0.5, real_fraction=0.3, init=None,
                  bleed_weight=0.01, sdr_weight=0.01, save_every=2, threads=1, seed=0, evidence=False,
                  band_mix=False, segment_seconds=2.0, bleed_fraction=0.3, bf16=False, val_every=0, workers=0,
                  resume_weights=None, snapshot=None, songs=None, real_mixes=None, recordings=None,
                  recordings_fraction=0.0, gate_bias=None, reset_control=False, grow_blocks=None,
                  real_eq_db=0.0, ema=0.0, break_fraction=0.0, real_speed=0.0, weight_decay=1e-4)
    fit.main(plan="trunk:2,control:2", **common)
    first = torch.load(run / "last.pt", weights_only=False)
    assert (first["phase_index"], first["phase_step"]) == (1, 2)
    assert (first["bleed_weight"], first["sdr_weight"]) == (0.01, 0.01), "the card reads the recipe from here"
    control_weights = first["model"]["zero_convs.0.weight"]
    assert control_weights.abs().sum() > 0, "control phase must train the zero convolutions"

    fit.main(plan="trunk:2,control:2,joint:2", **common)  # resumes into the new third phase
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in log] == ["trunk"] * 2 + ["control"] * 2 + ["joint"] * 2
    assert all(np.isfinite(r["loss"]) for r in log)

    shipped = tmp_path / "shipped" / "weights.pt"  # what export --weights ships beside the ONNX file
    save_weights(torch.load(run / "last.pt", weights_only=False), shipped)
    assert "optimizer" not in torch.load(shipped, weights_only=False)
    tuned = tmp_path / "tuned"
    fit.main(plan="joint:2", **{**common, "run": tuned, "init": shipped, "width": 16, "blocks": 3, "time_stride": 2,
                                "stereo": True})
    parent, child = torch.load(run / "last.pt", weights_only=False), torch.load(tuned / "last.pt", weights_only=False)
    assert parent["model_config"] == {"width": 8, "dilations": (1, 2), "cond_dim": 64, "time_stride": 1,
                                      "stereo": False, "evidence": False, "band_mix": False}
    # the parent's shape, with half-rate blocks and stereo inputs
    assert child["model_config"] == {**parent["model_config"], "time_stride": 2, "stereo": True}
    assert child["history"] == [{"plan": "trunk:2,control:2,joint:2", "run": str(shipped.parent), "steps": 6,
                                 "real_fraction": 0.3, "bleed_weight": 0.01, "sdr_weight": 0.01,
                                 "bleed_fraction": 0.3, "segment_seconds": 2.0, "bf16": False,
                                 "recordings_fraction": 0.0, "real_eq_db": 0.0, "ema": 0.0, "break_fraction": 0.0,
                                 "real_speed": 0.0, "weight_decay": 1e-4}]
    assert child["examples"] == parent["examples"] + 2 * common["batch_size"]
    assert not torch.equal(child["model"]["zero_convs.0.weight"], parent["model"]["zero_convs.0.weight"])

    for checkpoint in (run / "last.pt", tuned / "last.pt"):  # mono at full rate, stereo at half rate; 97 frames
        model, _ = load_checkpoint(checkpoint)
        path = tmp_path / "model.onnx"
        export(model, path, "test-commit")
        assert parity_error(model, path, frames=97) < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["commit"] == "test-commit" and meta["stereo"] == "1"
    assert int(meta["n_fft"]) == spectral.N_FFT and int(meta["sample_rate"]) == spectral.SAMPLE_RATE


def test_card_counts_the_steps_each_stage_took_not_the_ones_it_planned():
    from stemclean.train.card import _optimizer_steps

    stopped_early = {"plan": "trunk:10,control:20", "phase_index": 1, "phase_step": 5}
    assert fit.steps_done(stopped_early) == 15
    history = [{"plan": "joint:8"}, {"plan": "joint:800", "steps": 600}]  # the first has no record: it ran its plan
    assert _optimizer_steps({**stopped_early, "history": history}) == 8 + 600 + 15


def _bleed_case(seed: int = 0, frames: int = 120):
    """Spectra of a stem, the others, and the stem with a quarter of the others leaked in (additive bleed)."""
    gen = torch.Generator().manual_seed(seed)
    stem, others = (torch.randn(1, 2, spectral.N_BINS, frames, generator=gen) for _ in range(2))
    return stem, others, stem + 0.25 * others


def test_bleed_evidence_finds_additive_bleed_and_the_closed_form_removes_it():
    stem, others, bled = _bleed_case()
    gain, coherence = bleed_evidence(bled, stem + others - bled)
    # stem + g o against the residual (1 - g) o: the least-squares gain is g / (1 - g), with g = 1/4
    # and their coherence is (g (1 - g))^2 / ((1 + g^2)(1 - g)^2), about 0.06, where independent sources give ~0
    assert abs(gain.median().item() - 1 / 3) < 0.05 and abs(coherence.median().item() - 0.059) < 0.02
    clean_gain, clean_coherence = bleed_evidence(stem, others)
    assert clean_gain.median().item() < 0.05 and clean_coherence.median().item() < 0.02
    model = Denoiser(width=8, dilations=(1, 2), evidence=True).eval()
    for layer in model.head.proj:  # open the de-bleed gate everywhere, leave the learned masks at zero
        torch.nn.init.zeros_(layer[-1].weight)
        layer[-1].bias.data.view(-1, 5)[:, 4] = 20.0
    with torch.no_grad():
        out = model(bled, stem + others, torch.tensor([0.5]), torch.tensor([0]))
    before, after = ((x - stem).pow(2).sum() / stem.pow(2).sum() for x in (bled, out))
    assert 10 * torch.log10(before / after) > 10.0, "the open gate must apply s - a r and remove most of the bleed"


def test_bleed_evidence_stays_a_coherence_where_the_stem_is_empty():
    """Spleeter's stems are empty above 11 kHz and the music has quiet stretches: there the windows hold almost
    nothing, and the evidence must still be a coherence in [0, 1] that a float64 computation agrees with. In float32
    running sums it read up to 1e19 in a third or more of the bins, and swamped the control branch's input."""
    rng = np.random.default_rng(5)
    seconds = 4
    n = seconds * spectral.SAMPLE_RATE
    loudness = np.where(np.arange(n) < n // 2, 1.0, 1e-3)  # a loud half, then a quiet one
    voice, music = (loudness * _tone(f, seconds, rng)[:, 0] for f in (330, 1100))
    music = music + loudness * 0.05 * rng.standard_normal(n)
    stem_spec = spectral.stft((voice + 0.2 * music).astype(np.float32)[None])
    stem_spec[:, spectral.N_BINS // 2 :] = 0  # as Spleeter's masks leave it above its cut
    mix_spec = spectral.stft((voice + music).astype(np.float32)[None])
    stem, mix = (torch.from_numpy(spectral.to_channels(x)) for x in (stem_spec, mix_spec))
    gain, coherence = bleed_evidence(stem, mix - stem)
    assert 0.0 <= coherence.min().item() and coherence.max().item() <= 1.0
    assert 0.0 <= gain.min().item() and gain.max().item() <= 2.0
    # the same windows summed directly in float64 (zero padding: an edge window sums what exists)
    s, r = stem_spec[0].astype(np.complex128), (mix_spec - stem_spec)[0].astype(np.complex128)
    window = (network.EVIDENCE_BINS, network.EVIDENCE_FRAMES)

    def local_sum(x):
        return uniform_filter(x, size=window, mode="constant") * np.prod(window)

    cross = local_sum((s * np.conj(r)).real) + 1j * local_sum((s * np.conj(r)).imag)
    power_s, power_r = (local_sum(np.abs(x) ** 2) for x in (s, r))
    reference_coherence = np.abs(cross) ** 2 / (power_s * power_r + 1e-20)
    reference_gain = np.clip(cross.real / (power_r + 1e-10), 0.0, 2.0)
    assert reference_coherence.max() <= 1.0 + 1e-6
    assert np.abs(coherence[0, 0].numpy() - reference_coherence).max() < 1e-3
    assert np.abs(gain[0, 0].numpy() - reference_gain).max() < 1e-3


def test_evidence_and_band_mixing_models_export_with_parity(tmp_path):
    model = Denoiser(width=8, dilations=(1, 32), time_stride=2, evidence=True, band_mix=True)
    for block in [*model.trunk_blocks, *model.control_blocks]:  # trained band mixing, so it is in the graph
        torch.nn.init.normal_(block.band_mix.weight, std=0.1)
    path = tmp_path / "model.onnx"
    export(model, path, "test-commit")
    assert parity_error(model, path, frames=97) < 1e-4


def test_sampler_draws_additive_bleed_at_the_documented_levels(tiny_corpus):
    sampler = sampling.CorpusSampler(tiny_corpus, None, "train", seed=4, bleed_fraction=1.0, segment_seconds=1.0)
    for _ in range(6):
        example = sampler.draw()
        leak = example.damaged - example.clean
        ratio = 10 * np.log10(np.vdot(example.clean, example.clean).real / np.vdot(leak, leak).real)
        assert 5.5 < ratio < 30.5
        assert np.allclose(example.mix, example.clean + (example.mix - example.clean))  # exact sum of the sources


def _write_recordings(root, split: str, rng, estimate, index: int = 0, voice_until: float | None = None) -> None:
    """One mix of a real-recordings corpus in realcorpus's layout (a high tone as vocals, a low one as accompaniment,
    the vocals silent after ``voice_until`` seconds if given), with ``estimate(stems, name)`` as its Spleeter output."""
    entry = {"id": f"real-{split}-{index:04d}", "split": split, "duration_s": 2.0,
             "vocals": {"mode": "sung", "group": "a"}, "accompaniment": {"group": "b"}}
    stems = {"vocals": _tone(3000, 2, rng), "accompaniment": _tone(150, 2, rng)}
    if voice_until is not None:
        stems["vocals"][int(voice_until * spectral.SAMPLE_RATE):] = 0.0
    for folder, samples_of in ((root / "corpus" / split / entry["id"], lambda name: stems[name]),
                               (root / "spleeter" / split / entry["id"], lambda name: estimate(stems, name))):
        folder.mkdir(parents=True)
        for name in stems:
            sf.write(folder / f"{name}.flac", samples_of(name), spectral.SAMPLE_RATE, subtype="PCM_16")
    manifest = root / "corpus" / "manifest.json"
    songs = json.loads(manifest.read_text())["songs"] if manifest.exists() else []
    manifest.write_text(json.dumps({"songs": [*songs, entry]}))


def test_break_cases_score_the_accompaniment_where_the_voice_is_silent(tmp_path):
    """An instrumental stretch: the accompaniment is the whole mixture there, and Spleeter's estimate lacks some."""
    def leaky(stems, name):  # each estimate fades its own stem out and keeps a quarter of the other one
        fade = np.linspace(1.0, 0.2, len(stems[name]), dtype=np.float32)[:, None]
        return fade * stems[name] + 0.25 * sum(v for k, v in stems.items() if k != name)

    rng = np.random.default_rng(7)
    _write_recordings(tmp_path / "real", "val", rng, leaky)  # voice throughout: no case
    _write_recordings(tmp_path / "real", "val", rng, leaky, index=1, voice_until=1.0)
    cases = validate.break_cases(tmp_path / "real", seconds=0.5)
    assert [(c.song, c.kind, c.row) for c in cases] == [("real-val-0001", "break",
                                                         "Real Spleeter accompaniment, no voice")]
    case = cases[0]
    assert np.allclose(case.clean, case.mix, atol=1e-3), "no voice there: the true accompaniment is the mixture"
    assert validate.gain(case.mix, case) > 6.0, "giving the mixture back is the fix"
    _write_recordings(tmp_path / "real", "val", rng, leaky, index=2, voice_until=1.0)
    assert [c.song for c in validate.break_cases(tmp_path / "real", seconds=0.5, mixes=2)] == [
        "real-val-0001", "real-val-0002"], "more stretches when asked, one per mix that has one"
    assert len(validate.break_cases(tmp_path / "real", seconds=0.5, mixes=1)) == 1


def test_card_counts_the_real_mixes_and_the_pairs_made_of_them(tmp_path):
    from stemclean.train.card import recordings_summary

    rng = np.random.default_rng(5)
    for index in range(2):
        _write_recordings(tmp_path / "real", "train", rng, lambda stems, name: stems[name], index=index)
    (tmp_path / "real" / "spleeter" / "train" / "real-train-0001" / "vocals.flac").unlink()  # still separating
    splits = recordings_summary(tmp_path / "real")["splits"]
    assert (splits["train"]["mixes"], splits["train"]["spleeter_pairs"]) == (2, 1)
    assert splits["val"]["mixes"] == 0
    assert recordings_summary(tmp_path / "absent") is None


def test_val_gain_ignores_changes_no_one_can_hear_and_counts_audible_ones():
    """An estimate already within 60 dB of the truth that a model leaves at 45 dB has lost nothing audible."""
    rng = np.random.default_rng(11)
    clean = _tone(440, 2, rng)[:, 0]
    noise = rng.standard_normal(clean.shape).astype(np.float32)

    def at(sdr_db):  # the true stem plus noise sdr_db below it, as a spectrum
        scale = np.sqrt(np.sum(clean ** 2) / np.sum(noise ** 2) * 10 ** (-sdr_db / 10))
        return spectral.stft((clean + scale * noise)[None])

    def case(damaged):
        return validate.Case("s", "break", "row", damaged, at(np.inf), at(np.inf), 0.5, 0)

    assert validate.gain(at(45), case(at(60))) == 0.0
    assert validate.gain(at(10), case(at(20))) == pytest.approx(-10.0, abs=0.5)


def test_val_cases_score_a_model_that_removes_bleed_above_one_that_does_nothing(tmp_path):
    corpus = _write_corpus(tmp_path / "corpus", "val")
    # a real recording whose Spleeter estimates carry a quarter of the other stem: bleed, like the rows above
    _write_recordings(tmp_path / "real", "val", np.random.default_rng(3),
                      lambda stems, name: stems[name] + 0.25 * sum(v for k, v in stems.items() if k != name))
    cases = validate.ValSet(corpus, None, tmp_path / "real").cases()
    assert [case.kind for case in cases].count("bleed") == 2 * len(validate.BLEED_ROWS)
    assert sorted(case.row for case in cases if case.kind == "real") == ["Real Spleeter accompaniment",
                                                                       "Real Spleeter vocals"]

    class Oracle(torch.nn.Module):  # returns the true stem: the best any model can do
        def forward(self, stem, mix, level, stem_type):
            return torch.from_numpy(spectral.to_channels(next(c.clean for c in cases if np.array_equal(
                spectral.to_channels(c.damaged), stem.numpy()))))

    class Identity(torch.nn.Module):
        def forward(self, stem, mix, level, stem_type):
            return stem

    identity, best = validate.score(Identity(), cases, oracle=True), validate.score(Oracle(), cases)
    assert abs(identity["bleed"]) < 1e-6 and abs(identity["real"]) < 1e-6
    assert best["bleed"] > 10.0 and best["real"] > 10.0 and best["medians"]["real"] > 10.0
    assert identity["oracle"]["bleed"] > 3.0, "the oracle mask removes most additive bleed of tones"
    halfway = validate.score(Oracle(), cases, scales=(0.5, 1.0))["scaled"]  # half the correction towards the truth
    assert halfway["1.0"]["bleed"] == pytest.approx(best["bleed"])
    assert 0.0 < halfway["0.5"]["bleed"] < best["bleed"] - 3.0 and 0.0 < halfway["0.5"]["real"] < best["real"] - 3.0


def test_validate_scores_the_real_pairs_of_the_split_it_is_asked_for(tmp_path):
    # train estimates are the true stems, val ones carry bleed: the oracle mask cannot gain on the first
    rng = np.random.default_rng(5)
    _write_recordings(tmp_path / "real", "train", rng, lambda stems, name: stems[name])
    _write_recordings(tmp_path / "real", "val", rng,
                      lambda stems, name: stems[name] + 0.25 * sum(v for k, v in stems.items() if k != name))
    model = Denoiser(width=8, dilations=(1,), time_stride=2, evidence=True, band_mix=True)
    checkpoint = tmp_path / "model.pt"
    torch.save({"model": model.state_dict(), "model_config": model.config, "use_control": True}, checkpoint)
    scores = {}
    for split in ("train", "val"):
        out = tmp_path / f"{split}.json"
        validate.main(checkpoint, corpus=tmp_path / "none", spleeter=None, recordings=tmp_path / "real",
                      gate_bias=None, real_split=split, correction_scales=None, out=out)
        scores[split] = json.loads(out.read_text())
    assert [scores[split]["cases"] for split in ("train", "val")] == [2, 2]
    assert [c["row"] for c in scores["val"]["per_case"]] == ["Real Spleeter vocals", "Real Spleeter accompaniment"]
    assert all(c["oracle"] > 3 for c in scores["val"]["per_case"]), "each case's own oracle gain, as in the means"
    assert scores["train"]["real_split"] == "train"
    assert scores["train"]["oracle"]["real"] <= 0 < 3 < scores["val"]["oracle"]["real"]
    assert min(c["input_sdr"] for c in scores["train"]["per_case"]) > 40 > 20 > max(
        c["input_sdr"] for c in scores["val"]["per_case"]), "where each input already was, beside its gain"


def test_a_weights_only_snapshot_resumes_the_run_on_a_machine_without_it(tiny_corpus, tmp_path):
    common = dict(corpus=tiny_corpus, spleeter=tmp_path / "none", batch_size=2, lr=1e-3, width=8, blocks=2,
                  time_stride=2, stereo=False, consistency=0.0, real_fraction=0.0, init=None, bleed_weight=0.01,
                  sdr_weight=0.01, save_every=1, threads=1, seed=0, evidence=True, band_mix=True, segment_seconds=1.0,
                  bleed_fraction=0.5, bf16=False, val_every=0, workers=0, songs=None, real_mixes=None, recordings=None,
                  recordings_fraction=0.0, gate_bias=None, reset_control=False, grow_blocks=None,
                  real_eq_db=0.0, ema=0.0, break_fraction=0.0, real_speed=0.0, weight_decay=1e-4)
    snapshot = tmp_path / "models" / "snapshot.pt"
    fit.main(run=tmp_path / "first", plan="trunk:2", resume_weights=None, snapshot=snapshot, **common)
    assert "optimizer" not in torch.load(snapshot, weights_only=False)
    # resumed mid-phase with the optimizer's state, the run takes the weight decay it is given, not the saved one
    fit.main(run=tmp_path / "first", plan="trunk:3", resume_weights=None, snapshot=None,
             **{**common, "weight_decay": 0.05})
    decays = {g["weight_decay"] for g in torch.load(tmp_path / "first" / "last.pt", weights_only=False)["optimizer"][
        "param_groups"]}
    assert decays == {0.05}
    fit.main(run=tmp_path / "fresh", plan="trunk:2,control:1", resume_weights=snapshot, snapshot=None, **common)
    resumed = torch.load(tmp_path / "fresh" / "last.pt", weights_only=False)
    assert (resumed["phase_index"], resumed["phase_step"], resumed["examples"]) == (1, 1, 3 * common["batch_size"])
    assert resumed["model_config"]["evidence"] and resumed["model_config"]["band_mix"]

    # a fine-tune that reopens a shut de-bleed gate: one step from the reset bias, and the history says so
    fit.main(run=tmp_path / "reopened", plan="joint:1", resume_weights=None, snapshot=None,
             **{**common, "init": snapshot, "gate_bias": -1.0})
    reopened = torch.load(tmp_path / "reopened" / "last.pt", weights_only=False)
    gate = torch.stack([reopened["model"][f"head.proj.{k}.2.bias"].view(-1, 5)[:, 4] for k in range(3)])
    assert torch.allclose(gate, torch.full_like(gate, -1.0), atol=0.05)
    assert reopened["history"][-1]["gate_bias_after"] == -1.0

    # a fine-tune one block deeper: the checkpoint rebuilds the grown network, and the history says so
    fit.main(run=tmp_path / "deeper", plan="joint:1", resume_weights=None, snapshot=None,
             **{**common, "init": snapshot, "grow_blocks": 3})
    grown = torch.load(tmp_path / "deeper" / "last.pt", weights_only=False)
    assert len(grown["model_config"]["dilations"]) == 3 and grown["history"][-1]["grown_to_blocks"] == 3
    assert len(load_checkpoint(tmp_path / "deeper" / "last.pt")[0].trunk_blocks) == 3


def test_a_weight_average_is_what_checkpoints_ship_and_a_resume_keeps_averaging(tiny_corpus, tmp_path):
    common = dict(run=tmp_path / "run", corpus=tiny_corpus, spleeter=tmp_path / "none", batch_size=2, lr=1e-3,
                  width=8, blocks=2, time_stride=None, stereo=False, consistency=0.0, real_fraction=0.0, init=None,
                  bleed_weight=0.01, sdr_weight=0.01, save_every=1, threads=1, seed=0, evidence=True, band_mix=False,
                  segment_seconds=1.0, bleed_fraction=0.5, bf16=False, val_every=0, workers=0, resume_weights=None,
                  snapshot=None, songs=None, real_mixes=None, recordings=None, recordings_fraction=0.0,
                  gate_bias=None, reset_control=False, grow_blocks=None, real_eq_db=0.0, ema=0.5,
                  break_fraction=0.0, real_speed=0.0, weight_decay=1e-4)
    fit.main(plan="joint:2", **common)
    before = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    fit.main(plan="joint:3", **common)  # one more step, resumed from the checkpoint
    after = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert after["ema"] == 0.5 and after["phase_step"] == 3
    for name, raw in after["raw"].items():
        if raw.is_floating_point() and "level_freqs" not in name:
            # decay 0.5: the new average is half the resumed average and half the new raw weights
            assert torch.allclose(after["model"][name], 0.5 * before["model"][name] + 0.5 * raw, atol=1e-6), name
    moved = [n for n, w in after["raw"].items() if w.is_floating_point() and not torch.equal(w, after["model"][n])]
    assert moved, "the optimizer's weights and their average must differ after training"
    assert torch.equal(load_checkpoint(tmp_path / "run" / "last.pt")[0].state_dict()["head.proj.0.2.bias"],
                       after["model"]["head.proj.0.2.bias"]), "export and val load the average"
    save_weights(after, tmp_path / "snapshot.pt")
    assert {"optimizer", "raw"}.isdisjoint(torch.load(tmp_path / "snapshot.pt", weights_only=False))


def test_a_short_training_run_lowers_the_loss():
    """Twenty joint steps on one batch of tones with bleed, with the training loss: the loss must fall by a fifth.

    The batch is fixed, so the fall is learning, not a change of examples; a network or loss that cannot learn
    (no gradient reaching the weights, a detached branch) leaves it flat.
    """
    torch.manual_seed(0)
    torch.set_num_threads(1)  # as fit --threads 1 does: on a busy 2-core machine more threads spin and run slower
    rng = np.random.default_rng(0)
    t = np.arange(spectral.SAMPLE_RATE // 2) / spectral.SAMPLE_RATE
    clean = np.stack([0.2 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
                      for f in (220.0, 330.0, 440.0, 550.0)]).astype(np.float32)
    others = (0.05 * rng.standard_normal(clean.shape)).astype(np.float32)

    def channels(audio_array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(spectral.to_channels(spectral.stft(audio_array)))

    stem, mix, target = channels(clean + 0.5 * others), channels(clean + others), channels(clean)
    level, stem_type = torch.full((len(clean),), 0.5), torch.zeros(len(clean), dtype=torch.long)
    model = Denoiser(width=8, dilations=(1, 2))
    optimizer = fit.configure_phase(model, "joint", 3e-3)
    losses = []
    for _ in range(20):
        loss = fit.total_loss(fit.loss_terms(model(stem, mix, level, stem_type), target, mix))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.2 * abs(losses[0]), f"loss went from {losses[0]:.3f} to {losses[-1]:.3f}"


def test_sampler_draws_real_recordings_with_their_spleeter_pairs(tiny_corpus, tmp_path):
    """A real-recordings corpus in realcorpus's layout: with every draw from it, the true stem is its vocals or
    accompaniment, the mixture their sum, and the damaged stem its Spleeter estimate."""
    root = tmp_path / "real"
    _write_recordings(root, "train", np.random.default_rng(5), lambda stems, name: 0.5 * stems[name])
    sampler = sampling.CorpusSampler(tiny_corpus, None, "train", seed=6, real_fraction=1.0, segment_seconds=1.0,
                                     recordings=root, recordings_fraction=1.0)
    for _ in range(4):
        example = sampler.draw()
        assert np.allclose(example.damaged, 0.5 * example.clean, atol=1e-3 * np.abs(example.clean).max())
        tones = {round(f * spectral.N_FFT / spectral.SAMPLE_RATE) for f in (3000, 150)}  # the two stems' bins
        peaks = {int(np.argmax(np.abs(x).sum(axis=(0, 2)))) for x in (example.clean, example.mix - example.clean)}
        assert peaks == tones, "the mixture is the drawn stem plus the other one"


def test_sampler_draws_the_share_of_real_pairs_it_is_asked_for_from_stretches_without_voice(tiny_corpus, tmp_path):
    """--break-fraction 1: every Spleeter pair comes from where the voice is silent, from whichever mix has such a
    stretch; a pair there is either silent vocals or an accompaniment that is the whole mixture."""
    root = tmp_path / "real"
    _write_recordings(root, "train", np.random.default_rng(5), lambda stems, name: 0.5 * stems[name])
    _write_recordings(root, "train", np.random.default_rng(6), lambda stems, name: 0.5 * stems[name], index=1,
                      voice_until=0.8)

    def voice_free(example):
        energy = [np.vdot(x, x).real for x in (example.clean, example.mix - example.clean, example.mix)]
        return min(energy[:2]) < 1e-4 * energy[2]

    for fraction, expected in ((1.0, {True}), (0.0, {True, False})):
        sampler = sampling.CorpusSampler(tiny_corpus, None, "train", seed=8, real_fraction=1.0, segment_seconds=0.5,
                                         recordings=root, recordings_fraction=1.0, break_fraction=fraction)
        assert {voice_free(sampler.draw()) for _ in range(12)} == expected


def test_random_equaliser_is_smooth_and_bounded():
    rng = np.random.default_rng(0)
    curves = np.stack([20 * np.log10(sampling.random_equaliser(rng, 6.0)[:, 0]) for _ in range(50)])
    assert np.abs(curves).max() <= 6.0 + 1e-4
    assert np.abs(curves).max(axis=1).mean() > 1.0, "most draws move the timbre audibly"
    above_1khz = curves[:, round(1000 * spectral.N_FFT / spectral.SAMPLE_RATE):]
    assert np.abs(np.diff(above_1khz, axis=1)).max() < 0.25, "a broad shape: no notch between neighbouring bins"


def test_an_equalised_real_pair_keeps_the_separators_mask(tiny_corpus, tmp_path):
    """--real-eq-db filters estimate, mixture and true stem alike: the estimate's ratio to the mixture (the mask) is
    the unfiltered draw's, while the two stems' tones are scaled differently from draw to draw."""
    root = tmp_path / "real"
    _write_recordings(root, "train", np.random.default_rng(5), lambda stems, name: 0.5 * stems[name])
    options = dict(seed=6, real_fraction=1.0, segment_seconds=1.0, recordings=root, recordings_fraction=1.0)
    plain = sampling.CorpusSampler(tiny_corpus, None, "train", **options)
    equalised = sampling.CorpusSampler(tiny_corpus, None, "train", real_eq_db=6.0, **options)
    tones = [round(f * spectral.N_FFT / spectral.SAMPLE_RATE) for f in (3000, 150)]
    tilts = []
    for _ in range(6):
        a, b = plain.draw(), equalised.draw()
        gains = np.abs(b.mix[:, tones]).sum(axis=(0, 2)) / np.abs(a.mix[:, tones]).sum(axis=(0, 2))
        assert np.all(np.abs(20 * np.log10(gains)) <= 6.0 + 1e-3)
        for x, y in ((a.damaged, b.damaged), (a.clean, b.clean)):
            np.testing.assert_allclose(y[:, tones], x[:, tones] * gains[None, :, None], rtol=1e-3,
                                       atol=1e-4 * np.abs(x).max())
        tilts.append(20 * np.log10(gains[0] / gains[1]))
    assert np.ptp(tilts) > 1.0, "the filter differs between the voice's and the accompaniment's bands, and by draw"


def test_a_speed_changed_real_pair_still_adds_up_and_moves_in_pitch(tiny_corpus, tmp_path):
    """--real-speed plays estimate, mixture and true stem alike faster or slower: the estimate keeps its share of the
    true stem, and a tone comes out at another pitch from draw to draw."""
    root = tmp_path / "real"
    _write_recordings(root, "train", np.random.default_rng(5), lambda stems, name: 0.5 * stems[name])
    options = dict(seed=6, real_fraction=1.0, segment_seconds=1.0, recordings=root, recordings_fraction=1.0)
    plain = sampling.CorpusSampler(tiny_corpus, None, "train", **options)
    changed = sampling.CorpusSampler(tiny_corpus, None, "train", real_speed=0.1, **options)
    hz = np.arange(spectral.N_BINS) * spectral.SAMPLE_RATE / spectral.N_FFT
    near_voice = (hz > 1500) & (hz < 6000)

    def voice_pitch(example):  # the centroid around the 3 kHz tone that stands in for the vocals
        power = (np.abs(example.mix) ** 2).sum(axis=(0, 2))[near_voice]
        return float((hz[near_voice] * power).sum() / power.sum())

    ratios = []
    for _ in range(6):
        a, b = plain.draw(), changed.draw()
        assert b.mix.shape == a.mix.shape, "still one segment long"
        np.testing.assert_allclose(b.damaged, 0.5 * b.clean, atol=1e-3 * np.abs(b.clean).max())
        np.testing.assert_allclose(voice_pitch(a), 3000, rtol=0.01)
        ratios.append(voice_pitch(b) / voice_pitch(a))
    assert all(0.89 < ratio < 1.11 for ratio in ratios), "within the speed range"
    assert np.ptp(ratios) > 0.03, "the pitch differs by draw"


def test_sampler_can_draw_from_the_first_real_mixes_alone(tiny_corpus, tmp_path):
    """The overfit sweep's --real-mixes N: only the first N separated mixes by id are drawn, pairs or remixes."""
    root = tmp_path / "real"
    for index, share in ((1, 0.25), (0, 0.5)):  # written out of id order
        _write_recordings(root, "train", np.random.default_rng(index), lambda stems, name: share * stems[name], index)
    for real_mixes, shares in ((1, {0.5}), (None, {0.5, 0.25})):
        sampler = sampling.CorpusSampler(tiny_corpus, None, "train", seed=7, real_fraction=1.0, segment_seconds=1.0,
                                         recordings=root, recordings_fraction=1.0, real_mixes=real_mixes)
        drawn = set()
        for _ in range(16):
            example = sampler.draw()
            drawn.add(round(float(np.abs(example.damaged).sum() / np.abs(example.clean).sum()), 2))
        assert drawn == shares


def test_curves_read_a_runs_log_and_its_committed_val_records_alike(tmp_path):
    """A fresh machine has no runs/: the val records kept under benchmarks/results/curves/ plot the same points."""
    run = tmp_path / "v2x"
    run.mkdir()
    records = [{"step": 1, "loss": 1.0},
               {"step": 2, "loss": 0.9, "val": {"real": 0.1}, "examples": 8, "wall_hours": 0.01},
               {"step": 3, "loss": 0.8},
               {"step": 4, "loss": 0.7, "val": {"real": 0.3}, "examples": 16, "wall_hours": 0.02,
                "val_raw": {"real": 0.2}}]  # a run with a weight average logs its raw weights' scores too
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    kept = tmp_path / "v2x.jsonl"
    kept.write_text("".join(json.dumps(r) + "\n" for r in records if "val" in r))
    points = curves.val_points(run)
    assert [p["real"] for p in points] == [0.1, 0.3] and [p["examples"] for p in points] == [8, 16]
    assert [p.get("raw") for p in points] == [None, {"real": 0.2}]
    assert curves.val_points(kept) == points
    curves.plot([run, kept], tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 10_000
