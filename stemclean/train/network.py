"""The denoiser: a band-split trunk that cleans the stem, and a ControlNet-style branch that reads the mixture.

Shapes follow the ONNX interface in docs/ARCHITECTURE.md: spectra arrive as ``[B, 2, F, T]`` (real, imaginary) and the
network returns the clean stem in the same layout. It predicts two complex masks, one over the stem and one over the
residual ``mix - stem``: the first removes bleed and artifacts, the second restores what the separator dropped (for
example everything above Spleeter's 11 kHz cut).

Cost matters more than size here: the engine must run many times faster than real time on two CPU cores, so the blocks
are depthwise-separable convolutions over time and across bands, and the band-split front end keeps the band count low.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stemclean.spectral import N_BINS, N_FFT, SAMPLE_RATE
from stemclean.stems import STEM_TYPES

# Band widths in Hz, from the bottom up: narrow where pitch lives, wide where only the envelope matters.
_BAND_PLAN_HZ = ((1000, 100), (4000, 250), (8000, 500), (16000, 1000), (SAMPLE_RATE // 2, 2000))
_EPS = 1e-5
_GATE_BIAS = -5.0
# Each branch's blocks cycle through these time dilations (kernel 5): four blocks see +-30 frames, about +-0.35 s;
# six see +-126 frames, and at half rate (time_stride 2) that is +-252 STFT frames, about +-2.9 s.
_DILATION_CYCLE = (1, 2, 4, 8, 16, 32)
# Control-branch features per bin: mono ones, those a stereo model adds, and the bleed evidence (see _complex_features).
CONTROL_FEATURES, STEREO_FEATURES, EVIDENCE_FEATURES = 5, 6, 2
# The window of the local least-squares bleed evidence: 5 bins (~108 Hz) by 43 frames (~0.5 s), as lsdebleed uses.
EVIDENCE_BINS, EVIDENCE_FRAMES = 5, 43
# The de-bleed gain is clipped to this: a larger one means the residual is tiny there, and the product is noise.
_MAX_DEBLEED_GAIN = 2.0


def band_edges() -> list[tuple[int, int]]:
    """(start, stop) STFT-bin ranges that tile all N_BINS bins without overlap."""
    hz_per_bin = SAMPLE_RATE / N_FFT
    edges, start, upper = [], 0, 0
    for upper_hz, width_hz in _BAND_PLAN_HZ:
        width = max(1, round(width_hz / hz_per_bin))
        upper = min(N_BINS, round(upper_hz / hz_per_bin) + (upper_hz >= SAMPLE_RATE // 2))
        while start < upper:
            stop = min(start + width, upper)
            if upper - stop < width // 2:
                stop = upper
            edges.append((start, stop))
            start = stop
    return edges


def band_groups(edges: list[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    """Runs of neighbouring bands of equal width, as (first bin, bins per band, bands, index of the first band).

    The band-split and band-merge projections run one batched matmul per run instead of one per band: fewer, larger
    ops, which mostly shortens training steps (the exported graph gains less, as its time goes to full-resolution
    elementwise work).
    """
    groups: list[tuple[int, int, int, int]] = []
    for k, (start, stop) in enumerate(edges):
        if groups and groups[-1][1] == stop - start:
            first, width, count, index = groups[-1]
            groups[-1] = (first, width, count + 1, index)
        else:
            groups.append((start, stop - start, 1, k))
    return groups


def block_dilations(blocks: int) -> tuple[int, ...]:
    """The time dilations of ``blocks`` blocks per branch: 1, 2, 4, ..., 32, then again from 1."""
    return tuple(_DILATION_CYCLE[i % len(_DILATION_CYCLE)] for i in range(blocks))


def stereo_partner(x: torch.Tensor) -> torch.Tensor:
    """Each batch item's partner channel. A stereo model takes its batch as (left, right) pairs of one track."""
    return x.reshape(-1, 2, *x.shape[1:]).flip(1).reshape(x.shape)


def _power(z: torch.Tensor) -> torch.Tensor:
    """|z|^2 per bin of a [B, 2, F, T] (real, imaginary) spectrum: [B, 1, F, T]."""
    return (z * z).sum(1, keepdim=True)


def _log_mag(power: torch.Tensor) -> torch.Tensor:
    """log |z| from |z|^2, as log(sqrt(p + eps^2)) written without the square root."""
    return 0.5 * torch.log(power + _EPS**2)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a times the conjugate of b per bin, [B, 2, F, T] (real, imaginary)."""
    a_re, a_im = a[:, :1], a[:, 1:]
    b_re, b_im = b[:, :1], b[:, 1:]
    return torch.cat([a_re * b_re + a_im * b_im, a_im * b_re - a_re * b_im], dim=1)


def _phase_agreement(cross: torch.Tensor, power_a: torch.Tensor, power_b: torch.Tensor) -> torch.Tensor:
    """cos and sin of the phase difference of a and b, weighted toward zero where either side is silent, from their
    :func:`_cross` product and powers (shared with the bleed evidence: full-resolution ops are much of the run time)."""
    return cross / torch.sqrt(power_a * power_b + _EPS**2)


def _box_sum(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Sum over ``size`` neighbours (odd, centred; edges sum what exists) along ``dim`` of a [B, C, F, T] tensor, as a
    running sum differenced at the window's ends. Average pools over the same windows were a visible share of a
    training step in torch's profiler on this CPU; the running sums are not."""
    half = size // 2
    pad = (half + 1, half) if dim == 3 else (0, 0, half + 1, half)
    running = torch.cumsum(F.pad(x, pad), dim=dim)
    return running.narrow(dim, size, x.shape[dim]) - running.narrow(dim, 0, x.shape[dim])


def _local_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over the evidence window around each bin. The evidence is ratios of such sums, so sums serve as means."""
    return _box_sum(_box_sum(x, EVIDENCE_BINS, 2), EVIDENCE_FRAMES, 3)


def bleed_evidence(s: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per bin, the local least-squares gain of the stem on the residual and their local coherence, [B, 1, F, T] each.

    The gain ``a = Re<s, r> / <r, r>`` (clipped to [0, 2]) is what the closed-form de-bleed ``s - a r`` removes:
    additive bleed of a source that also sits in the residual makes it large. The coherence ``|<s, r>|^2 / (<s, s>
    <r, r>)`` tells that case from a ratio mask's output, whose stem and residual are coherent by construction too but
    where ``s - a r`` would cut the stem itself. Given both, the network can learn when the closed form applies.
    """
    return _evidence(_cross(s, r), _power(s), _power(r))


def _evidence(cross: torch.Tensor, power_s: torch.Tensor, power_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`bleed_evidence` from the per-bin products the input features have already computed."""
    # One window sum over all four channels: each sum is a handful of full-resolution ops whatever its channel count.
    # In float64: a float32 running sum's rounding, about 1e-7 of the running total, swamped the small windows above
    # Spleeter's 11 kHz cut and in quiet stretches, where the coherence then read up to 1e19 (it is at most 1). A third
    # to half of a real pair's bins were such outliers, and the control branch's input norm scaled every other
    # feature down to almost nothing.
    sums = _local_sum(torch.cat([cross, power_s, power_r], dim=1).double())
    # clamped: rounding can still leave a hair below zero in a silent stretch after a loud one
    cross, power = sums[:, :2], torch.clamp(sums[:, 2:], min=0.0)
    power_s, power_r = power[:, 0:1], power[:, 1:2]
    gain = torch.clamp(cross[:, 0:1] / (power_r + _EPS**2), 0.0, _MAX_DEBLEED_GAIN)
    coherence = torch.clamp((cross * cross).sum(1, keepdim=True) / (power_s * power_r + _EPS**4), max=1.0)
    return gain.float(), coherence.float()


def _complex_features(stem: torch.Tensor, mix: torch.Tensor, resid: torch.Tensor, stereo: bool,
                      evidence: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Scale-invariant per-bin features of the stem (trunk) and of the mixture and residual (control).

    Every spectrum is divided by the mixture's RMS magnitude, so a quiet and a loud song look the same to the network.
    A stereo model's control branch also sees how each bin's level and phase differ from the partner channel's, in
    the stem and in the mixture: bleed from an instrument panned elsewhere than the stem's source shows up there.
    Each power spectrum and cross product is computed once and shared by the log magnitudes, the phase terms and the
    evidence: these full-resolution elementwise ops are a large share of the model's run time. With ``evidence`` the
    control branch also gets :func:`bleed_evidence`, and its de-bleed gain is returned for the output head (else None).
    """
    mix_power = _power(mix)
    scale = torch.sqrt(torch.mean(mix_power, dim=(2, 3), keepdim=True)) + _EPS
    s, r = stem / scale, resid / scale
    power_s, power_m, power_r = _power(s), mix_power / (scale * scale), _power(r)
    log_s, log_m = _log_mag(power_s), _log_mag(power_m)
    trunk = torch.cat([log_s, s], dim=1)  # [B, 3, F, T]
    cross = _cross(s, r)
    control = [log_m, _log_mag(power_r), log_s - log_m, _phase_agreement(cross, power_s, power_r)]  # [B, 5, F, T]
    gain = None
    if evidence:  # before the stereo terms, which with_stereo_inputs appends as the last input columns
        gain, coherence = _evidence(cross, power_s, power_r)
        control += [gain, coherence]
    if stereo:
        m = mix / scale
        s_other, m_other = stereo_partner(stem) / scale, stereo_partner(mix) / scale
        power_s_other, power_m_other = _power(s_other), _power(m_other)
        control += [_log_mag(power_s_other) - log_s, _log_mag(power_m_other) - log_m,
                    _phase_agreement(_cross(s, s_other), power_s, power_s_other),
                    _phase_agreement(_cross(m, m_other), power_m, power_m_other)]  # 6 more
    return trunk, torch.cat(control, dim=1), gain


class BandSplit(nn.Module):
    """Projects each band's bins x features to ``width`` channels: [B, feat, F, T] -> [B, width, K, T].

    Each run of equal-width bands (:func:`band_groups`) is one batched ``weight @ x`` with the time axis last, built
    from the bands' own ``nn.Linear`` weights, so the layout of the parameters does not depend on the grouping.
    """

    def __init__(self, n_features: int, width: int):
        super().__init__()
        self.edges = band_edges()
        self.groups = band_groups(self.edges)
        self.proj = nn.ModuleList(nn.Linear((stop - start) * n_features, width) for start, stop in self.edges)
        self.norm = nn.GroupNorm(1, width)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        b, c, _, t = feats.shape
        bands = []
        for first, bins, count, index in self.groups:
            layers = self.proj[index : index + count]
            x = feats[:, :, first : first + bins * count, :].reshape(b, c, count, bins, t)
            x = x.transpose(1, 2).reshape(b, count, c * bins, t)  # features-major per band, as each Linear expects
            weight = torch.stack([layer.weight for layer in layers])  # [count, width, c * bins]
            bias = torch.stack([layer.bias for layer in layers])[:, :, None]
            bands.append(torch.matmul(weight, x) + bias)  # [B, count, width, T]
        return self.norm(torch.cat(bands, dim=1).transpose(1, 2))  # [B, width, K, T]


class BandMerge(nn.Module):
    """Maps [B, width, K, T] back to ``n_out`` values per STFT bin: [B, n_out, F, T].

    Like :class:`BandSplit` it keeps time last and runs one batched matmul per run of equal-width bands. The last
    layer's rows (stored bin-major, ``bins x n_out``) are reordered output-major, so each run's result reshapes
    straight into [B, n_out, bins, T].
    """

    def __init__(self, width: int, n_out: int):
        super().__init__()
        self.edges = band_edges()
        self.groups = band_groups(self.edges)
        self.n_out = n_out
        self.proj = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, (stop - start) * n_out))
            for start, stop in self.edges
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        b, width, _, t = hidden.shape
        first_weight = torch.stack([layers[0].weight for layers in self.proj])  # [K, width, width]
        first_bias = torch.stack([layers[0].bias for layers in self.proj])[:, :, None]
        h = F.gelu(torch.matmul(first_weight, hidden.transpose(1, 2)) + first_bias)  # [B, K, width, T]
        outs = []
        for _, bins, count, index in self.groups:
            lasts = [layers[2] for layers in self.proj[index : index + count]]
            weight = torch.stack([last.weight.reshape(bins, self.n_out, width).transpose(0, 1).reshape(-1, width)
                                  for last in lasts])  # [count, n_out * bins, width], output-major
            bias = torch.stack([last.bias.reshape(bins, self.n_out).t().reshape(-1) for last in lasts])[:, :, None]
            out = (torch.matmul(weight, h[:, index : index + count]) + bias).reshape(b, count, self.n_out, bins, t)
            outs.append(out.transpose(1, 2).reshape(b, self.n_out, count * bins, t))
        return torch.cat(outs, dim=2)  # [B, n_out, F, T]


def _depthwise_time(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` (depthwise, kernel (1, k)) on [B, C, K, T], computed as a 1-d convolution over [B * K, C, T].

    The same result as ``conv(x)``; the 2-d depthwise convolution's backward pass on this CPU build took several
    times as long as the 1-d one's, and it was most of a training step in torch's profiler.
    """
    if torch.onnx.is_in_onnx_export():  # onnxruntime runs the 2-d form directly; the layout changes cost it time
        return conv(x)
    b, c, k, t = x.shape
    y = F.conv1d(x.transpose(1, 2).reshape(b * k, c, t), conv.weight[:, :, 0, :], conv.bias,
                 padding=conv.padding[1], dilation=conv.dilation[1], groups=c)
    return y.reshape(b, k, c, t).transpose(1, 2)


def _depthwise_band(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` (depthwise, kernel (k, 1)) on [B, C, K, T] as a 1-d convolution over [B * T, C, K]; see above."""
    if torch.onnx.is_in_onnx_export():
        return conv(x)
    b, c, k, t = x.shape
    y = F.conv1d(x.permute(0, 3, 1, 2).reshape(b * t, c, k), conv.weight[:, :, :, 0], conv.bias,
                 padding=conv.padding[0], groups=c)
    return y.reshape(b, t, c, k).permute(0, 2, 3, 1)


class Block(nn.Module):
    """Residual block: depthwise conv over time (dilated) and across bands, pointwise mixing, FiLM from the condition.

    With ``bands`` set, a dense mixing across all bands follows (one K x K matrix shared by the channels, as an
    MLP-Mixer token-mixing step): the depthwise band conv sees +-1 band, but a voice's harmonics and a bleeding
    instrument span the whole spectrum. It starts at zero, so it adds nothing until trained.
    """

    def __init__(self, width: int, dilation: int, cond_dim: int, bands: int | None = None):
        super().__init__()
        self.time = nn.Conv2d(width, width, (1, 5), padding=(0, 2 * dilation), dilation=(1, dilation), groups=width)
        self.band = nn.Conv2d(width, width, (3, 1), padding=(1, 0), groups=width)
        self.norm = nn.GroupNorm(1, width)
        self.mlp = nn.Sequential(nn.Conv2d(width, 2 * width, 1), nn.GELU(), nn.Conv2d(2 * width, width, 1))
        self.film = nn.Linear(cond_dim, 2 * width)
        self.band_mix = None
        if bands is not None:
            self.band_norm = nn.GroupNorm(1, width)
            self.band_mix = _zeroed(nn.Linear(bands, bands))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)
        h = self.norm(_depthwise_band(self.band, _depthwise_time(self.time, x)))
        h = h * (1 + scale) + shift
        x = x + self.mlp(h)
        if self.band_mix is not None:  # [B, C, K, T] -> mix K -> back
            x = x + self.band_mix(self.band_norm(x).transpose(2, 3)).transpose(2, 3)
        return x


def _zeroed(layer: nn.Module) -> nn.Module:
    """``layer`` with its weight and bias set to zero, so it outputs zeros until trained."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _zero_conv(width: int) -> nn.Conv2d:
    """1x1 convolution initialised to zero, so the control branch starts with no effect on the trunk (ControlNet)."""
    return _zeroed(nn.Conv2d(width, width, 1))


class Denoiser(nn.Module):
    """Trunk + control branch. ``use_control=False`` runs the trunk alone (phase 1 and the trunk-only ablation)."""

    def __init__(self, width: int = 48, dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2), cond_dim: int = 64,
                 time_stride: int = 1, stereo: bool = False, evidence: bool = False, band_mix: bool = False):
        super().__init__()
        if time_stride not in (1, 2):
            raise ValueError(f"time_stride must be 1 or 2, got {time_stride}")
        self.width, self.dilations, self.cond_dim = width, tuple(dilations), cond_dim
        # 2 runs the blocks at half the frame rate, for less model time; the band-split output keeps full rate.
        self.time_stride = time_stride
        self.stereo = stereo
        # evidence: the control branch reads bleed_evidence, and the head can apply the closed-form de-bleed it implies.
        self.evidence, self.band_mix = evidence, band_mix
        self.use_control = True
        # Fixed frequencies of the level embedding: a buffer, so no training phase can pick them up as a parameter.
        self.register_buffer("level_freqs", torch.exp(torch.linspace(0, math.log(100.0), cond_dim // 2)))
        self.type_embed = nn.Embedding(len(STEM_TYPES), cond_dim)
        self.cond_mlp = nn.Sequential(nn.Linear(cond_dim, cond_dim), nn.GELU(), nn.Linear(cond_dim, cond_dim))

        bands = len(band_edges()) if band_mix else None
        self.trunk_in = BandSplit(3, width)
        self.trunk_blocks = nn.ModuleList(Block(width, d, cond_dim, bands) for d in dilations)
        self.head = BandMerge(width, 4 + evidence)

        n_control = CONTROL_FEATURES + stereo * STEREO_FEATURES + evidence * EVIDENCE_FEATURES
        self.control_in = BandSplit(n_control, width)
        self.control_blocks = nn.ModuleList(Block(width, d, cond_dim, bands) for d in dilations)
        self.zero_convs = nn.ModuleList(_zero_conv(width) for _ in dilations)

        # Start from the identity: both mask corrections begin near zero, so an untrained model returns its input,
        # and the de-bleed gate starts almost shut (sigmoid(-5), under 1%).
        for layer in self.head.proj:
            nn.init.normal_(layer[-1].weight, std=1e-3)
            nn.init.zeros_(layer[-1].bias)
        if evidence:
            self.set_gate_bias(_GATE_BIAS)

    @property
    def config(self) -> dict:
        """The constructor arguments that rebuild this network's shape: checkpoints store them, copies reuse them."""
        return {"width": self.width, "dilations": self.dilations, "cond_dim": self.cond_dim,
                "time_stride": self.time_stride, "stereo": self.stereo, "evidence": self.evidence,
                "band_mix": self.band_mix}

    def set_gate_bias(self, bias: float) -> None:
        """Set the de-bleed gate's bias in every band. The gate's gradient scales with sigmoid'(bias): at the initial
        -5 it is under 1% of the signal, and a run's gate can stay shut for good; a fine-tune can reopen it."""
        for layer in self.head.proj:
            layer[-1].bias.data.view(-1, 5)[:, 4] = bias

    def reset_control_joins(self) -> None:
        """Zero every zero convolution, so the control branch adds nothing until it is trained again: ControlNet's
        start, for a trained model whose control inputs changed under it (a fix to how they are computed)."""
        for conv in self.zero_convs:
            _zeroed(conv)

    def trunk_parameters(self) -> list[nn.Parameter]:
        control = set(map(id, self.control_parameters()))
        return [p for p in self.parameters() if id(p) not in control]

    def control_parameters(self) -> list[nn.Parameter]:
        return [*self.control_in.parameters(), *self.control_blocks.parameters(), *self.zero_convs.parameters()]

    def forward(self, stem: torch.Tensor, mix: torch.Tensor, level: torch.Tensor, stem_type: torch.Tensor) -> torch.Tensor:
        angles = level[:, None].float() * self.level_freqs[None, :]
        cond = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1) + self.type_embed(stem_type)
        cond = self.cond_mlp(cond)

        resid = mix - stem
        trunk_feats, control_feats, debleed_gain = _complex_features(stem, mix, resid, self.stereo, self.evidence)
        full = self.trunk_in(trunk_feats)
        h = start = self._slow(full)
        if self.use_control:
            c = self._slow(self.control_in(control_feats))
            for block, control_block, zero_conv in zip(self.trunk_blocks, self.control_blocks, self.zero_convs):
                c = control_block(c, cond)
                h = block(h + zero_conv(c), cond)
        else:
            for block in self.trunk_blocks:
                h = block(h, cond)
        h = self._fast(h, start, full)

        # Bounded complex corrections: stem mask = 1 + ds, residual mask = dr, each |component| < 2.
        out = self.head(h)
        delta = 2.0 * torch.tanh(out[:, :4] / 2.0)
        ds_re, ds_im, dr_re, dr_im = delta[:, 0:1], delta[:, 1:2], delta[:, 2:3], delta[:, 3:4]
        if debleed_gain is not None and self.use_control:  # the gated de-bleed s - a r reads the mix: control only
            dr_re = dr_re - torch.sigmoid(out[:, 4:5]) * debleed_gain
        s_re, s_im, r_re, r_im = stem[:, 0:1], stem[:, 1:2], resid[:, 0:1], resid[:, 1:2]
        out_re = s_re + ds_re * s_re - ds_im * s_im + dr_re * r_re - dr_im * r_im
        out_im = s_im + ds_re * s_im + ds_im * s_re + dr_re * r_im + dr_im * r_re
        return torch.cat([out_re, out_im], dim=1)

    def _slow(self, x: torch.Tensor) -> torch.Tensor:
        """Down to the blocks' frame rate. Frame 0 alone, then pairs (1, 2), (3, 4), ...: explicit padding instead of
        ``ceil_mode``, so any frame count works and onnxruntime averages the edge exactly as torch does."""
        if self.time_stride == 1:
            return x
        return F.avg_pool2d(x, (1, 2), stride=(1, 2), padding=(0, 1), count_include_pad=False)

    def _fast(self, h: torch.Tensor, start: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
        """Back to full rate: what the blocks added to ``start``, repeated over each frame pair, on top of ``full``."""
        if self.time_stride == 1:
            return h
        update = F.interpolate(h - start, scale_factor=(1.0, 2.0), mode="nearest")
        return full + update[..., 1 : full.shape[-1] + 1]


def with_stereo_inputs(model: Denoiser) -> Denoiser:
    """A stereo copy of a mono model that behaves exactly like it until trained: the partner-channel features enter
    the control branch through new, zero-initialised input columns (the ControlNet way of adding a condition)."""
    stereo = Denoiser(**{**model.config, "stereo": True})
    state = model.state_dict()
    for k, (start, stop) in enumerate(stereo.control_in.edges):
        key = f"control_in.proj.{k}.weight"
        old = state[key]
        state[key] = torch.cat([old, old.new_zeros(old.shape[0], STEREO_FEATURES * (stop - start))], dim=1)
    stereo.load_state_dict(state)
    stereo.use_control = model.use_control
    return stereo


def deeper(model: Denoiser, blocks: int) -> Denoiser:
    """A copy of ``model`` with ``blocks`` blocks per branch that computes exactly what it did until trained.

    The new blocks come last. Each new trunk block's MLP ends in zeros and its band mixing starts at zero, so it passes
    its input through; each new control block joins the trunk through a new zero convolution. Growing a trained model
    this way tests whether more capacity pays without starting the training over.
    """
    if blocks < len(model.dilations):
        raise ValueError(f"a model with {len(model.dilations)} blocks cannot grow to {blocks}")
    dilations = model.dilations + block_dilations(blocks)[len(model.dilations):]
    grown = Denoiser(**{**model.config, "dilations": dilations})
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(int(key.split(".")[1]) >= len(model.dilations) for key in missing), missing
    for block in grown.trunk_blocks[len(model.dilations):]:
        _zeroed(block.mlp[-1])
    grown.use_control = model.use_control
    return grown
