"""Time-dependent deep image prior (TD-DIP) generator for dynamic MRI.

Yoo, Jin, Gupta, Yerly, Stuber, Unser, "Time-Dependent Deep Image Prior for Dynamic
MRI", IEEE Trans. Med. Imaging 40(12):3337-3348 (2021). Each frame ``t`` has a fixed
point ``m_t`` on a low-dimensional manifold (a helix: cardiac phase as an angle plus a
linear time axis); a small MLP (MapNet) maps it to a latent map, and one convolutional
generator turns the latent map into the frame's image. All frames share the weights
``theta`` of both networks, fitted to the k-space ``y_t`` of every frame::

    min_theta  sum_t || A_t G_theta(MapNet_theta(m_t)) - y_t ||_2^2     (stopped early)

Defaults follow the authors' released code (github.com/jaejun-yoo/TDDIP, ``option.py``
and ``models/basicnet.py``): helix manifold of radius 1 with time axis in [0, 1],
MapNet 3 -> 512 -> ReLU -> 64 reshaped to 1 x 8 x 8, generator with 128 channels,
two [3x3 conv -> BatchNorm -> ReLU] blocks at 8 x 8 and after each of four x2
nearest-neighbour upsamplings (to 128 x 128), a final 3x3 conv to 2 channels, no
biases, zero padding. Here the number of upsamplings follows ``image_shape``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mridip.errors import ProtocolError
from mridip.models.common import (
    center_crop,
    channels_to_complex,
    check_choice,
    check_frames,
    check_image_shape,
    check_num_frames,
    make_norm,
)

MANIFOLDS = ("helix", "circle", "line")
UPSAMPLE_MODES = ("nearest", "bilinear")


# ==================================================================== manifolds
def _phase(num_frames: int, cycles: float) -> torch.Tensor:
    # phi_t = 2 pi cycles t / T: with integer `cycles` the sequence is periodic, frame
    # t + T/cycles has the phase of frame t (the reference's linspace(0, 2 pi cycles, T)
    # instead puts the last frame on top of the first).
    t = torch.arange(num_frames, dtype=torch.float64)
    return 2.0 * math.pi * float(cycles) * t / num_frames


def _time_axis(num_frames: int, length: float) -> torch.Tensor:
    # linear time in [0, length], first frame 0, last frame `length` (0 for T = 1)
    t = torch.arange(num_frames, dtype=torch.float64)
    return t * (float(length) / (num_frames - 1)) if num_frames > 1 else t


def helix_manifold(
    num_frames: int, cycles: float = 1.0, radius: float = 1.0, length: float = 1.0
) -> torch.Tensor:
    """Helix points, one per frame: ``(T, 3)`` float32.

    Row ``t`` is ``(r cos phi_t, r sin phi_t, s_t)`` with cardiac phase
    ``phi_t = 2 pi cycles t / T`` (``cycles`` turns over the scan, e.g. the number of
    heartbeats) and time ``s_t = length * t / (T - 1)`` in ``[0, length]``.
    Every point lies at distance ``radius`` from the time axis. Defaults (radius 1,
    time in [0, 1]) are the reference code's scaling.
    """
    check_num_frames(num_frames)
    phi = _phase(num_frames, cycles)
    pts = torch.stack([radius * torch.cos(phi), radius * torch.sin(phi),
                       _time_axis(num_frames, length)], dim=1)
    return pts.float()


def circle_manifold(num_frames: int, cycles: float = 1.0, radius: float = 1.0) -> torch.Tensor:
    """Circle points ``(r cos phi_t, r sin phi_t)``, ``(T, 2)`` float32 (phase as in
    :func:`helix_manifold`, no time axis: frames of equal phase share one input)."""
    check_num_frames(num_frames)
    phi = _phase(num_frames, cycles)
    return torch.stack([radius * torch.cos(phi), radius * torch.sin(phi)], dim=1).float()


def line_manifold(num_frames: int, length: float = 1.0) -> torch.Tensor:
    """Line points ``s_t = length * t / (T - 1)`` in ``[0, length]``, ``(T, 1)`` float32."""
    check_num_frames(num_frames)
    return _time_axis(num_frames, length)[:, None].float()


# ====================================================================== networks
class MapNet(nn.Module):
    """MLP from manifold points to latent vectors: ``(B, in_features) -> (B, widths[-1])``.

    Linear -> ReLU for every width but the last, then a final Linear (no activation), as
    the reference MappingNet (``3 -> 512 -> ReLU -> 64``).

    Parameters
    ----------
    in_features : int
        Manifold dimension (3 helix, 2 circle, 1 line).
    widths : sequence of int
        Hidden widths followed by the output width.
    """

    def __init__(self, in_features: int = 3, widths: Sequence[int] = (512, 64)):
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ProtocolError(f"mapnet widths must be positive ints; got {widths}")
        layers: list[nn.Module] = []
        cin = int(in_features)
        for n, w in enumerate(widths):
            layers.append(nn.Linear(cin, w))
            if n < len(widths) - 1:
                layers.append(nn.ReLU())
            cin = w
        self.net = nn.Sequential(*layers)
        self.in_features = int(in_features)
        self.out_features = widths[-1]

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return self.net(m)


class TDDIPNet(nn.Module):
    """Convolutional generator of TD-DIP: ``(B, C_lat, h, w) -> (B, out, h 2^n, w 2^n)``.

    ``convs_per_scale`` x [3x3 conv -> norm -> ReLU] at the latent size, then ``n`` times
    [x2 upsampling -> ``convs_per_scale`` x (3x3 conv -> norm -> ReLU)], then a 3x3
    conv to ``out_channels``. Zero padding, no biases (reference).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        channels: int = 128,
        num_upsamplings: int = 4,
        convs_per_scale: int = 2,
        norm: str = "instance",
        upsample_mode: str = "nearest",
        bias: bool = False,
    ):
        super().__init__()
        if convs_per_scale < 1 or num_upsamplings < 0 or channels < 1:
            raise ProtocolError(
                "TDDIP generator needs convs_per_scale >= 1, num_upsamplings >= 0, channels >= 1"
            )
        check_choice("upsample_mode", upsample_mode, UPSAMPLE_MODES)

        def block(cin: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, channels, 3, padding=1, bias=bias),
                    make_norm(norm, channels), nn.ReLU()]

        layers: list[nn.Module] = []
        cin = int(in_channels)
        for _ in range(num_upsamplings + 1):
            if layers:
                layers.append(nn.Upsample(scale_factor=2, mode=upsample_mode))
            for _ in range(convs_per_scale):
                layers += block(cin)
                cin = channels
        layers.append(nn.Conv2d(channels, out_channels, 3, padding=1, bias=bias))
        self.net = nn.Sequential(*layers)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.num_upsamplings = int(num_upsamplings)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


# ======================================================================== TDDIP
class TDDIP(nn.Module):
    """TD-DIP generator: frames -> manifold points -> MapNet -> latent map -> CNN -> images.

    ``G(frames)``: ``m = manifold[frames]`` ``(B, D)`` (+ ``reg_noise_std * N(0, 1)`` in
    training mode) -> MapNet ``(B, C_lat h w)`` -> reshape ``(B, C_lat, h, w)`` ->
    :class:`TDDIPNet` ``(B, 2, h 2^n, w 2^n)`` -> centre crop to ``image_shape`` ->
    complex64 ``(B, Y, X)`` (``(B, C, Y, X)`` with ``coil_images=C``).

    Sizes: ``n`` is the smallest number of x2 upsamplings with
    ``latent_size * 2**n >= max(Y, X)``, and the latent map is
    ``(h, w) = (ceil(Y / 2**n), ceil(X / 2**n))`` (8 x 8 with 4 upsamplings for
    128 x 128 images, as in the reference; at most ``2**n - 1`` rows/columns are
    cropped). :attr:`latent_shape` is ``(C_lat, h, w)``.

    Normalisation: the reference fits one frame per step with BatchNorm, i.e. per-image
    statistics; ``norm="instance"`` (default) computes exactly that for any mini-batch,
    so a frame's image does not depend on the other frames in its batch.
    ``norm="batch"`` shares the statistics across the frames of a mini-batch (identical
    at batch size 1); ``"none"`` drops normalisation.

    Parameters
    ----------
    num_frames : int
        ``T``.
    image_shape : (int, int)
        ``(Y, X)``.
    manifold : {"helix", "circle", "line"}
        See :func:`helix_manifold`, :func:`circle_manifold`, :func:`line_manifold`.
    cycles : float
        Turns of the helix/circle over the ``T`` frames (number of cardiac cycles; the
        reference uses 13 for its retrospective data set).
    radius, length : float
        Helix/circle radius and time-axis length (reference: 1 and 1).
    mapnet_widths : sequence of int or None
        Hidden widths of MapNet followed by its output width, which must equal
        ``C_lat * h * w``; None: ``(512, C_lat * h * w)`` (``(512, 64)`` at 128 x 128).
    latent_size : int
        Longest side of the latent map (reference: 8).
    latent_channels : int
        ``C_lat`` (reference: 1).
    channels : int
        Generator width (reference: 128).
    convs_per_scale : int
        3x3 conv blocks per scale (reference: 2, i.e. ``Nr = 1`` extra block).
    norm : {"instance", "batch", "none"}
    upsample_mode : {"nearest", "bilinear"}
    reg_noise_std : float
        Gaussian perturbation of the manifold points in training mode (0: off, as the
        reference).
    seed : int
        Accepted for the common generator signature; TD-DIP's inputs are deterministic
        (the manifold), and the weights follow the global RNG (``torch.manual_seed``).
    coil_images : int or None
        None: one image per frame; ``C``: one image per coil.

    Buffers: ``manifold`` ``(T, D)`` float32.
    """

    def __init__(
        self,
        num_frames: int,
        image_shape: tuple[int, int],
        *,
        manifold: str = "helix",
        cycles: float = 1.0,
        radius: float = 1.0,
        length: float = 1.0,
        mapnet_widths: Sequence[int] | None = None,
        latent_size: int = 8,
        latent_channels: int = 1,
        channels: int = 128,
        convs_per_scale: int = 2,
        norm: str = "instance",
        upsample_mode: str = "nearest",
        reg_noise_std: float = 0.0,
        seed: int = 0,
        coil_images: int | None = None,
    ):
        super().__init__()
        self.num_frames = check_num_frames(num_frames)
        self.image_shape = check_image_shape(image_shape)
        check_choice("manifold", manifold, MANIFOLDS)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ProtocolError(f"seed must be an int; got {seed!r}")
        if latent_size < 1 or latent_channels < 1:
            raise ProtocolError("latent_size and latent_channels must be positive ints")
        if reg_noise_std < 0:
            raise ProtocolError(f"reg_noise_std must be >= 0; got {reg_noise_std}")
        if coil_images is not None and int(coil_images) < 1:
            raise ProtocolError(f"coil_images must be a positive int or None; got {coil_images}")
        self.manifold_kind = manifold
        self.coil_images = None if coil_images is None else int(coil_images)
        self.reg_noise_std = float(reg_noise_std)
        self.seed = seed

        if manifold == "helix":
            m = helix_manifold(self.num_frames, cycles, radius, length)
        elif manifold == "circle":
            m = circle_manifold(self.num_frames, cycles, radius)
        else:
            m = line_manifold(self.num_frames, length)
        self.register_buffer("manifold", m)  # (T, D)

        y, x = self.image_shape
        n = 0
        while latent_size * 2**n < max(y, x):
            n += 1
        self.latent_shape = (int(latent_channels), math.ceil(y / 2**n), math.ceil(x / 2**n))
        latent_numel = math.prod(self.latent_shape)
        widths = [512, latent_numel] if mapnet_widths is None else [int(w) for w in mapnet_widths]
        if not widths or widths[-1] != latent_numel:
            raise ProtocolError(
                f"mapnet_widths must end with the latent size C_lat*h*w = {latent_numel} "
                f"(latent_shape {self.latent_shape} for image_shape {self.image_shape}); "
                f"got {mapnet_widths}"
            )
        self.mapnet = MapNet(m.shape[1], widths)
        self.net = TDDIPNet(
            in_channels=latent_channels,
            out_channels=2 if coil_images is None else 2 * int(coil_images),
            channels=channels,
            num_upsamplings=n,
            convs_per_scale=convs_per_scale,
            norm=norm,
            upsample_mode=upsample_mode,
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Images of ``frames`` ``(B,)``: complex64 ``(B, Y, X)`` (or ``(B, C, Y, X)``)."""
        frames = check_frames(frames, self.num_frames, self.manifold.device)
        m = self.manifold[frames]  # (B, D)
        if self.training and self.reg_noise_std > 0:
            m = m + self.reg_noise_std * torch.randn_like(m)
        w = self.mapnet(m).reshape(m.shape[0], *self.latent_shape)  # (B, C_lat, h, w)
        out = center_crop(self.net(w), self.image_shape)  # (B, 2K, Y, X)
        return channels_to_complex(out, keep_image_axis=self.coil_images is not None)
