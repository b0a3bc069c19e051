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

Network: the DIP skip network of :class:`mridip.models.dip.SkipNet` with three output
channels, read as ``(Re M0, Im M0, u)``; ``T2`` is a smooth, bounded function of ``u``,

    log T2 = log t2_min + (log t2_max - log t2_min) * sigmoid(u + u0),

with ``u0`` such that ``u = 0`` gives ``t2_init``: T2 stays inside the signal model's
range without clipping (which would stop its gradient), and the network works on the
log scale on which T2 values of tissues spread.
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
    """DIP whose output is a T2 map and a complex M0 map, rendered to echo images.

    ``G(frames)`` -> complex64 ``(B, Y, X)``: the echo images ``M0 exp(-TE_e / T2)`` of
    echoes ``frames`` (the frames of a multi-echo file are its contrasts).
    :meth:`parameter_maps` gives the maps themselves.

    Parameters
    ----------
    num_frames : int
        ``E``, the number of echoes; must equal ``signal.num_contrasts``.
    image_shape : (int, int)
        ``(Y, X)``.
    signal : T2Decay
        The signal model (echo times and T2 range, from the data and the protocol's
        ``[mapping]`` table; not a ``[model]`` option).
    scales, channels, skip_channels, input_channels, upsample_mode, norm :
        The skip network's shape (see :func:`mridip.models.dip.make_dip`).
    input_scale : float
        The fixed input is ``U[0, 1) * input_scale``, ``(1, input_channels, Yg, Xg)``.
    reg_noise_std : float
        Std of the perturbation of the input at every training-mode call (0: none).
    t2_init_ms : float
        T2 where the network's third output is 0, ms (inside the signal model's range).
    seed : int
        Seed of the fixed input.

    Buffers: ``z`` ``(1, input_channels, Yg, Xg)``; the signal model's ``te``.
    """

    def __init__(
        self,
        num_frames: int,
        image_shape: tuple[int, int],
        signal: T2Decay | None = None,
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
        seed: int = 0,
    ):
        super().__init__()
        self.num_frames = check_num_frames(num_frames)
        self.image_shape = check_image_shape(image_shape)
        if signal is None:
            raise ProtocolError("MappingDIP needs its signal model (echo times): build it with "
                                "mridip.operators.signal.T2Decay(echo_times_ms)")
        if signal.num_contrasts != self.num_frames:
            raise ProtocolError(f"the data have {self.num_frames} frames but the signal model has "
                                f"{signal.num_contrasts} echo times")
        if reg_noise_std < 0:
            raise ProtocolError(f"reg_noise_std must be >= 0; got {reg_noise_std}")
        if not signal.t2_min < float(t2_init_ms) < signal.t2_max:
            raise ProtocolError(f"model.t2_init_ms = {t2_init_ms} must lie inside the T2 range "
                                f"({signal.t2_min}, {signal.t2_max}) ms of [mapping]")
        self.signal = signal
        self.net = skip_net(3, scales=scales, channels=channels, skip_channels=skip_channels,
                            input_channels=input_channels, upsample_mode=upsample_mode, norm=norm)
        self.reg_noise_std = float(reg_noise_std)
        self.seed = seed
        self._log_lo, self._log_hi = math.log(signal.t2_min), math.log(signal.t2_max)
        frac = (math.log(t2_init_ms) - self._log_lo) / (self._log_hi - self._log_lo)
        self._u0 = math.log(frac / (1.0 - frac))
        yz, xz = self.net.input_size(self.image_shape)
        self.register_buffer("z", noise_input((1, int(input_channels), yz, xz), seed, float(input_scale)))

    def maps(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(M0, T2)``: complex64 ``(Y, X)`` and float32 ``(Y, X)`` in ms."""
        z = self.z
        if self.training and self.reg_noise_std > 0:
            z = z + self.reg_noise_std * torch.randn_like(z)
        out = center_crop(self.net(z), self.image_shape)[0].float()  # (3, Y, X)
        m0 = torch.complex(out[0], out[1])
        t2 = torch.exp(self._log_lo + (self._log_hi - self._log_lo) * torch.sigmoid(out[2] + self._u0))
        return m0, t2

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Echo images of echoes ``frames`` ``(B,)``: complex64 ``(B, Y, X)``."""
        frames = check_frames(frames, self.num_frames, self.z.device)
        m0, t2 = self.maps()
        return self.signal(m0, t2, frames)

    @torch.no_grad()
    def parameter_maps(self) -> dict[str, torch.Tensor]:
        """``{"M0": |M0|, "T2": T2}``, float32 ``(Y, X)`` each (T2 in ms), in eval mode."""
        was = self.training
        self.eval()
        try:
            m0, t2 = self.maps()
        finally:
            self.train(was)
        return {"M0": m0.abs(), "T2": t2}
