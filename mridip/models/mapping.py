"""Deep image prior for quantitative parameter mapping.

The generator does not output images but parameter maps; a signal model
(:mod:`mridip.operators.signal`) renders them into the contrast-weighted images that
the scanner encoded, and the imaging operator takes those to k-space:

    maps = f_theta(z),    x_e = S_e(maps),    y_e ~ A_e x_e,

so ``theta`` is fitted to the undersampled k-space of all contrasts at once, and the
decay along the contrasts is the signal model's by construction (a subspace or low-rank
constraint only approximates it). This is the DIP form of model-based parameter
mapping (Block et al., IEEE TMI 2014; Sumpf et al., JMRI 2011, with a handcrafted
regulariser there); the network's structure is the spatial prior of the maps.

Network: the DIP skip network of :class:`mridip.models.dip.SkipNet` with ``2 + P``
output channels, read as ``(Re M0, Im M0, u_1 .. u_P)``: the complex amplitude and the
signal model's ``P`` real maps (``signal.generator_parameters()``: T2; T1 and the
inversion efficiency for ``ir``; T1* and ``B / A`` for ``molli``; T1 for ``sr`` and
``vfa``). Each real map is a smooth, bounded function of its ``u``,

    log p = log lo + (log hi - log lo) * sigmoid(u + u0)    (time constants)
    p = lo + (hi - lo) * sigmoid(u + u0)                    (ratios, efficiencies)

with ``u0`` such that ``u = 0`` gives the initial value (``t2_init_ms``, ``t1_init_ms``):
the maps stay inside the signal model's range without clipping (which would stop their
gradient), and the network works on the log scale on which relaxation times spread.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mridip.errors import ProtocolError
from mridip.models.common import center_crop, check_frames, check_image_shape, check_num_frames
from mridip.models.dip import noise_input, skip_net
from mridip.operators.signal import T2Decay


class MappingDIP(nn.Module):
    """DIP whose output is parameter maps, rendered to contrast images by a signal model.

    ``G(frames)`` -> complex64 ``(B, Y, X)``: the contrast images (echoes, inversion times,
    flip angles) ``frames`` of the maps, e.g. ``M0 exp(-TE_e / T2)`` for T2 (the frames of a
    multi-contrast file are its contrasts). :meth:`parameter_maps` gives the maps themselves.

    Parameters
    ----------
    num_frames : int
        ``E``, the number of echoes; must equal ``signal.num_contrasts``.
    image_shape : (int, int)
        ``(Y, X)``.
    signal : nn.Module
        The signal model (:mod:`mridip.operators.signal`: T2Decay, InversionRecovery,
        LookLocker, SaturationRecovery, VariableFlipAngle) with its contrasts and ranges,
        from the data and the protocol's ``[mapping]`` table; not a ``[model]`` option.
    scales, channels, skip_channels, input_channels, upsample_mode, norm :
        The skip network's shape (see :func:`mridip.models.dip.make_dip`).
    input_scale : float
        The fixed input is ``U[0, 1) * input_scale``, ``(1, input_channels, Yg, Xg)``.
    reg_noise_std : float
        Std of the perturbation of the input at every training-mode call (0: none).
    t2_init_ms : float
        T2 where the network's third output is 0, ms (inside the signal model's range; T2 only).
    t1_init_ms : float
        T1 where the network's output is 0, ms (T1 models; MOLLI starts T1* at 0.6 of it).
    seed : int
        Seed of the fixed input.

    Buffers: ``z`` ``(1, input_channels, Yg, Xg)``; the signal model's ``te``.
    """

    def __init__(
        self,
        num_frames: int,
        image_shape: tuple[int, int],
        signal: nn.Module | None = None,
        *,
        scales: int = 5,
        channels: int = 128,
        skip_channels: int = 4,
        input_channels: int = 32,
        upsample_mode: str = "bilinear",
        norm: str = "instance",
        input_scale: float = 0.1,
        reg_noise_std: float = 0.0,
        t2_init_ms: float = 100.0,
        t1_init_ms: float = 1000.0,
        seed: int = 0,
    ):
        super().__init__()
        self.num_frames = check_num_frames(num_frames)
        self.image_shape = check_image_shape(image_shape)
        if signal is None:
            raise ProtocolError("MappingDIP needs its signal model (echo times, inversion times, ...): build "
                                "it with mridip.operators.signal.signal_model(name, ...), e.g. T2Decay(echo_times_ms)")
        if signal.num_contrasts != self.num_frames:
            what = "echo times" if isinstance(signal, T2Decay) else "contrasts (inversion times / flip angles)"
            raise ProtocolError(f"the data have {self.num_frames} frames but the signal model has "
                                f"{signal.num_contrasts} {what}")
        if reg_noise_std < 0:
            raise ProtocolError(f"reg_noise_std must be >= 0; got {reg_noise_std}")
        self.signal = signal
        self.parameters_spec = tuple(signal.generator_parameters(t2_init_ms=t2_init_ms, t1_init_ms=t1_init_ms))
        self.net = skip_net(2 + len(self.parameters_spec), scales=scales, channels=channels,
                            skip_channels=skip_channels, input_channels=input_channels,
                            upsample_mode=upsample_mode, norm=norm)
        self.reg_noise_std = float(reg_noise_std)
        self.seed = seed
        self._bounds = []
        for p in self.parameters_spec:
            lo, hi, init = (math.log(p.lo), math.log(p.hi), math.log(p.init)) if p.log else (p.lo, p.hi, p.init)
            frac = (init - lo) / (hi - lo)
            self._bounds.append((lo, hi, math.log(frac / (1.0 - frac)), p.log))
        yz, xz = self.net.input_size(self.image_shape)
        self.register_buffer("z", noise_input((1, int(input_channels), yz, xz), seed, float(input_scale)))

    def maps(self) -> tuple[torch.Tensor, ...]:
        """``(M0, p_1, .., p_P)``: complex64 ``(Y, X)`` and the real ``(Y, X)`` maps (ms for times),
        in the order of ``signal.generator_parameters()`` (``(M0, T2)`` for T2)."""
        z = self.z
        if self.training and self.reg_noise_std > 0:
            z = z + self.reg_noise_std * torch.randn_like(z)
        out = center_crop(self.net(z), self.image_shape)[0].float()  # (2 + P, Y, X)
        m0 = torch.complex(out[0], out[1])
        reals = []
        for u, (lo, hi, u0, log) in zip(out[2:], self._bounds):
            v = lo + (hi - lo) * torch.sigmoid(u + u0)
            reals.append(torch.exp(v) if log else v)
        return (m0, *reals)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Contrast images of contrasts ``frames`` ``(B,)``: complex64 ``(B, Y, X)``."""
        frames = check_frames(frames, self.num_frames, self.z.device)
        m0, *reals = self.maps()
        return self.signal.render(m0, reals, frames)

    @torch.no_grad()
    def parameter_maps(self) -> dict[str, torch.Tensor]:
        """The signal model's maps (``{"M0": |M0|, "T2": T2}`` for T2; ``M0, T1`` for T1 models;
        ``M0, T1, T1star, A, B`` for MOLLI), float32 ``(Y, X)`` each (times in ms), in eval mode."""
        was = self.training
        self.eval()
        try:
            m0, *reals = self.maps()
        finally:
            self.train(was)
        return self.signal.maps_of(m0, reals)
