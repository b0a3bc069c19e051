"""Motion-corrected generator: a generated template warped by generated displacement fields.

Frame ``t`` is a deformed template (M-DIP: Vornehm et al., "Multi-dynamic deep image
prior for cardiac MRI", Magn. Reson. Med. 2025)::

    x_t = W(u_t) s_t,        s_t = sum_l c_{t,l} B_l,        u_t = D(z_t)

- spatial dictionary ``B`` ``(L, Y, X)`` complex: one convolutional generator
  (:class:`~mridip.models.tddip.TDDIPNet`) on a learnable static latent map, ``2 L``
  output channels (M-DIP: L = 16 bases from a U-Net on a static code);
- coefficients ``c_t`` ``(L,)`` complex from an MLP on the frame's code ``z_t`` (slowly
  varying contrast, e.g. the beat's blood-pool signal the warp cannot express);
- displacement ``u_t`` ``(2, Y, X)`` pixels from an MLP on ``z_t`` (and on the frame's
  navigator surrogates, when given) onto a coarse control grid, bilinearly upsampled
  (a free-form deformation: the grid spacing is a built-in spatial smoothness). The MLP's
  last layer starts at zero, so every fit starts from the identity warp (as M-DIP's last
  convolution, which starts near zero);
- ``W`` the bilinear pull warp of :func:`mridip.operators.motion.warp`.

Frame codes ``z_t`` ``(T, D)`` are learnable and start as the first ``D`` cosines of a
DCT over the frames (smooth in time: neighbouring frames start alike).

Regularisers (:class:`MotionRegulariser`, added to the data term through
:func:`mridip.recon.fit.fit_kspace`'s ``extra_loss``): squared spatial gradients of ``u``
(M-DIP weight 0.1), squared temporal differences ``u_{t+1} - u_t`` (M-DIP 0.05) and an
optional folding penalty ``mean(relu(-det J)^2)``, ``J = I + grad u``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mridip.errors import ProtocolError, ShapeError
from mridip.models.common import channels_to_complex, check_frames, check_image_shape, check_num_frames
from mridip.models.tddip import TDDIPNet
from mridip.operators.motion import warp

MOTION_INPUTS = ("code", "surrogate", "both")


def _mlp(cin: int, widths: Sequence[int], cout: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Linear(cin, int(w)), nn.ReLU()]
        cin = int(w)
    layers.append(nn.Linear(cin, cout))
    return nn.Sequential(*layers)


def dct_codes(num_frames: int, dim: int) -> torch.Tensor:
    """``(T, D)`` float32: ``cos(pi k (t + 1/2) / T)`` for ``k = 0..D-1`` (k = 0 is constant)."""
    t = torch.arange(num_frames, dtype=torch.float64) + 0.5
    k = torch.arange(dim, dtype=torch.float64)
    return torch.cos(math.pi * t[:, None] * k[None] / num_frames).float()


class MoCoDIP(nn.Module):
    """Template dictionary x coefficients, warped per frame: ``G(frames) -> (B, Y, X)``.

    Parameters
    ----------
    num_frames : int
        ``T``.
    image_shape : (int, int)
        ``(Y, X)``.
    bases : int
        ``L``, complex spatial bases of the template (1: one static template up to a
        complex scale per frame).
    channels : int
        Width of the template generator.
    latent_size : int
        Longest side of the static latent map (the generator upsamples x2 until it
        covers the image, as :class:`~mridip.models.tddip.TDDIP`).
    latent_channels : int
        Channels of the static latent map.
    convs_per_scale : int
        3x3 conv blocks per scale of the template generator.
    norm : {"instance", "batch", "none"}
    code_dim : int
        ``D``, size of the learnable per-frame code.
    coefficient_widths : sequence of int
        Hidden widths of the coefficient MLP ``D -> 2 L``.
    motion_grid : int
        Control points along the longer image side (the other side in proportion).
    motion_widths : sequence of int
        Hidden widths of the displacement MLP.
    motion_input : {"code", "surrogate", "both"}
        What the displacement MLP sees: the frame code, the navigator surrogates
        (:meth:`set_surrogates`), or both.
    surrogate_dim : int
        Number of surrogate curves (0: none; ``motion_input`` must then be ``"code"``).
    seed : int
        Seed of the static latent map.
    """

    def __init__(
        self,
        num_frames: int,
        image_shape: tuple[int, int],
        *,
        bases: int = 4,
        channels: int = 64,
        latent_size: int = 8,
        latent_channels: int = 8,
        convs_per_scale: int = 2,
        norm: str = "instance",
        code_dim: int = 8,
        coefficient_widths: Sequence[int] = (64,),
        motion_grid: int = 8,
        motion_widths: Sequence[int] = (64, 64),
        motion_input: str = "code",
        surrogate_dim: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        self.num_frames = check_num_frames(num_frames)
        self.image_shape = check_image_shape(image_shape)
        if bases < 1 or code_dim < 1 or motion_grid < 2 or latent_size < 1 or latent_channels < 1:
            raise ProtocolError("moco-dip: bases, code_dim, latent_size, latent_channels >= 1 and motion_grid >= 2")
        if motion_input not in MOTION_INPUTS:
            raise ProtocolError(f"model.motion_input must be one of {MOTION_INPUTS}, got {motion_input!r}")
        if surrogate_dim < 0 or (surrogate_dim == 0 and motion_input != "code"):
            raise ProtocolError(f"model.motion_input = {motion_input!r} needs surrogate curves: set "
                                'stages.surrogate = "navigator" or "physiology" (or model.motion_input = "code")')
        self.bases = int(bases)
        self.motion_input = motion_input
        self.surrogate_dim = int(surrogate_dim)
        self.deform = True  # False: identity warp (the warm-up stage)
        Y, X = self.image_shape
        n = 0
        while latent_size * 2**n < max(Y, X):
            n += 1
        g = torch.Generator().manual_seed(int(seed))
        lat = (1, int(latent_channels), math.ceil(Y / 2**n), math.ceil(X / 2**n))
        self.latent = nn.Parameter(0.1 * torch.randn(lat, generator=g))  # static code (M-DIP)
        self.template_net = TDDIPNet(in_channels=latent_channels, out_channels=2 * self.bases, channels=channels,
                                     num_upsamplings=n, convs_per_scale=convs_per_scale, norm=norm)
        self.code = nn.Parameter(dct_codes(self.num_frames, int(code_dim)))  # (T, D)
        self.coefficients = _mlp(int(code_dim), coefficient_widths, 2 * self.bases)
        gy = max(2, round(motion_grid * Y / max(Y, X)))
        gx = max(2, round(motion_grid * X / max(Y, X)))
        self.grid_shape = (gy, gx)
        din = {"code": code_dim, "surrogate": surrogate_dim, "both": code_dim + surrogate_dim}[motion_input]
        self.motion = _mlp(int(din), motion_widths, 2 * gy * gx)
        nn.init.zeros_(self.motion[-1].weight)  # identity warp at the start
        nn.init.zeros_(self.motion[-1].bias)
        self.register_buffer("surrogates", torch.zeros(self.num_frames, max(self.surrogate_dim, 1)))

    def set_surrogates(self, curves: torch.Tensor) -> None:
        """Navigator curves ``(T, surrogate_dim)`` (float, unit std) fed to the motion MLP."""
        curves = torch.as_tensor(curves, dtype=torch.float32)
        if tuple(curves.shape) != (self.num_frames, self.surrogate_dim):
            raise ShapeError(f"surrogates must be (T, surrogate_dim) = {(self.num_frames, self.surrogate_dim)}, "
                             f"got {tuple(curves.shape)}")
        self.surrogates.copy_(curves.to(self.surrogates.device))

    # ------------------------------------------------------------------ parts
    def dictionary(self) -> torch.Tensor:
        """Spatial bases complex64 ``(L, Y, X)``."""
        out = self.template_net(self.latent)[..., : self.image_shape[0], : self.image_shape[1]]  # (1, 2L, Y, X)
        return channels_to_complex(out, keep_image_axis=True)[0]

    def template(self, frames: torch.Tensor) -> torch.Tensor:
        """Unwarped templates ``s_t`` complex64 ``(B, Y, X)`` of ``frames`` ``(B,)``."""
        frames = check_frames(frames, self.num_frames, self.code.device)
        c = self.coefficients(self.code[frames]).reshape(-1, self.bases, 2)
        c = torch.complex(c[..., 0], c[..., 1])  # (B, L)
        return torch.einsum("bl,lyx->byx", c, self.dictionary())

    def displacement(self, frames: torch.Tensor) -> torch.Tensor:
        """Displacement ``u_t`` float32 ``(B, 2, Y, X)`` in pixels (0 = y, 1 = x)."""
        frames = check_frames(frames, self.num_frames, self.code.device)
        parts = []
        if self.motion_input in ("code", "both"):
            parts.append(self.code[frames])
        if self.motion_input in ("surrogate", "both"):
            parts.append(self.surrogates[frames])
        coarse = self.motion(torch.cat(parts, 1)).reshape(-1, 2, *self.grid_shape)
        return nn.functional.interpolate(coarse, size=self.image_shape, mode="bilinear", align_corners=True)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames ``W(u_t) s_t``: complex64 ``(B, Y, X)``."""
        s = self.template(frames)
        if not self.deform:
            return s
        return warp(s, self.displacement(frames))

    def deformation_parameters(self) -> list[nn.Parameter]:
        return list(self.motion.parameters())

    def template_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.deformation_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]


# ----------------------------------------------------------------- regularisers
def spatial_smoothness(u: torch.Tensor) -> torch.Tensor:
    """``mean |grad u|^2`` (forward differences, pixels^2 / pixel^2) of ``(B, 2, Y, X)``."""
    dy = u[..., 1:, :] - u[..., :-1, :]
    dx = u[..., :, 1:] - u[..., :, :-1]
    return (dy**2).mean() + (dx**2).mean()


def folding_penalty(u: torch.Tensor) -> torch.Tensor:
    """``mean relu(-det J)^2`` with ``J = I + grad u`` (forward differences): 0 without folding."""
    dyy = u[:, 0, 1:, :-1] - u[:, 0, :-1, :-1]
    dyx = u[:, 0, :-1, 1:] - u[:, 0, :-1, :-1]
    dxy = u[:, 1, 1:, :-1] - u[:, 1, :-1, :-1]
    dxx = u[:, 1, :-1, 1:] - u[:, 1, :-1, :-1]
    det = (1 + dyy) * (1 + dxx) - dyx * dxy
    return torch.relu(-det).pow(2).mean()


def jacobian_determinant(u: torch.Tensor) -> torch.Tensor:
    """``det(I + grad u)`` ``(B, Y-1, X-1)`` of ``(B, 2, Y, X)`` (forward differences)."""
    dyy = u[:, 0, 1:, :-1] - u[:, 0, :-1, :-1]
    dyx = u[:, 0, :-1, 1:] - u[:, 0, :-1, :-1]
    dxy = u[:, 1, 1:, :-1] - u[:, 1, :-1, :-1]
    dxx = u[:, 1, :-1, 1:] - u[:, 1, :-1, :-1]
    return (1 + dyy) * (1 + dxx) - dyx * dxy


class MotionRegulariser:
    """``extra_loss(model, x_b, frames)`` of the fitting loop for a :class:`MoCoDIP`.

    ``spatial * mean|grad u_b|^2 + temporal * mean|u_{b+1} - u_b|^2 + folding * mean relu(-det J)^2``
    over the frames ``b`` of the step (the next frame's field is evaluated too: the motion
    MLP is cheap, so random mini-batches need not be contiguous). Zero while
    ``model.deform`` is False.
    """

    def __init__(self, spatial: float = 0.1, temporal: float = 0.05, folding: float = 0.0):
        if min(spatial, temporal, folding) < 0:
            raise ProtocolError("motion regulariser weights must be >= 0")
        self.spatial, self.temporal, self.folding = float(spatial), float(temporal), float(folding)

    def __call__(self, model: MoCoDIP, x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        if not model.deform:
            return x.real.new_zeros(())
        u = model.displacement(frames)
        loss = self.spatial * spatial_smoothness(u)
        if self.temporal > 0 and model.num_frames > 1:
            a = torch.clamp(frames, max=model.num_frames - 2)  # pairs (a, a + 1)
            loss = loss + self.temporal * ((model.displacement(a + 1) - model.displacement(a)) ** 2).mean()
        if self.folding > 0:
            loss = loss + self.folding * folding_penalty(u)
        return loss
