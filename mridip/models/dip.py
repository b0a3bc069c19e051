"""Deep Image Prior generators: the skip encoder-decoder and ConvDecoder.

Two convolutional networks map a fixed random input ``z`` to an image; a
:class:`DIPGenerator` holds ``z`` (one per frame) and implements the generator contract
of :mod:`mridip.models.common`. The fitting loop fits the weights ``theta`` to k-space
``y`` through the forward model ``A`` (see :mod:`mridip.recon.fit`)::

    min_theta  || A G_theta(z) - y ||_2^2        (stopped early)

- :class:`SkipNet`: Ulyanov, Vedaldi, Lempitsky, "Deep Image Prior", CVPR 2018 /
  IJCV 128:1867-1888 (2020), the encoder-decoder with skip connections in the
  default configuration of its inverse-problem experiments.
- :class:`ConvDecoder`: Darestani and Heckel, "Accelerated MRI with un-trained neural
  networks", IEEE Trans. Comput. Imaging 7:724-733 (2021).

Output sizes
------------
Any ``(Y, X)`` is supported. The SkipNet halves its input ``scales`` times, so it runs on
an input of size ``(Yg, Xg)``, the smallest multiples of ``2**scales`` that cover
``(Y, X)`` (and leave at least a 2 x 2 map at the coarsest scale, where reflection
padding and per-image normalisation need more than one pixel), and its output is
centre-cropped to ``(Y, X)`` (:func:`~mridip.models.common.center_crop`). The
ConvDecoder interpolates to exact sizes, so its output is ``(Y, X)`` without cropping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mridip.errors import ProtocolError, ShapeError
from mridip.models.common import (
    center_crop,
    channels_to_complex,
    check_choice,
    check_frames,
    check_image_shape,
    check_num_frames,
    local_generator,
    make_norm,
)

INPUT_KINDS = ("noise", "meshgrid")
UPSAMPLE_MODES = ("bilinear", "nearest")


# ====================================================================== SkipNet
class _SkipLevel(nn.Module):
    """One scale of the skip network: input at size n, output at size n.

    ``deeper`` path: strided conv (n -> n/2), conv, [next scale], upsample to n;
    ``skip`` path: 1x1 conv at size n; then concatenate, normalise, conv, 1x1 conv.
    """

    def __init__(
        self,
        in_ch: int,
        down: int,
        up: int,
        skip: int,
        deeper: "_SkipLevel | None",
        deeper_out: int,
        kernel_down: int,
        kernel_up: int,
        kernel_skip: int,
        norm: str,
        slope: float,
        bias: bool,
        upsample_mode: str,
    ):
        super().__init__()

        def conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
            # reflection padding as in the DIP reference configuration (pad="reflection")
            return nn.Conv2d(
                cin, cout, k, stride=stride, padding=(k - 1) // 2, bias=bias,
                padding_mode="reflect" if k > 1 else "zeros",
            )

        def act() -> nn.Module:
            return nn.LeakyReLU(slope)

        self.skip = (
            nn.Sequential(conv(in_ch, skip, kernel_skip), make_norm(norm, skip), act())
            if skip > 0
            else None
        )
        self.down = nn.Sequential(
            conv(in_ch, down, kernel_down, stride=2), make_norm(norm, down), act(),
            conv(down, down, kernel_down), make_norm(norm, down), act(),
        )
        self.deeper = deeper
        self.upsample_mode = upsample_mode
        cat = skip + (deeper_out if deeper is not None else down)
        self.merge = nn.Sequential(
            make_norm(norm, cat),
            conv(cat, up, kernel_up), make_norm(norm, up), act(),
            conv(up, up, 1), make_norm(norm, up), act(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.down(x)
        if self.deeper is not None:
            d = self.deeper(d)
        # upsample by 2 to exactly the size of this level's input
        if self.upsample_mode == "bilinear":
            d = F.interpolate(d, size=x.shape[-2:], mode="bilinear", align_corners=False)
        else:
            d = F.interpolate(d, size=x.shape[-2:], mode="nearest")
        if self.skip is not None:
            d = torch.cat([self.skip(x), d], dim=1)
        return self.merge(d)


class SkipNet(nn.Module):
    """DIP encoder-decoder with skip connections (Ulyanov et al., CVPR 2018).

    Scale ``i`` (input at size n): the *deeper* branch is a stride-2 conv
    (``channels_down[i]``, n -> n/2) -> norm -> LeakyReLU -> conv -> norm -> LeakyReLU ->
    [scale ``i+1``] -> upsampling x2; the *skip* branch is a 1x1 conv to
    ``channels_skip[i]`` -> norm -> LeakyReLU; both are concatenated -> norm ->
    ``kernel_up`` conv to ``channels_up[i]`` -> norm -> LeakyReLU -> 1x1 conv -> norm ->
    LeakyReLU. A final 1x1 conv maps ``channels_up[0]`` to ``out_channels``.

    Defaults are the paper's inverse-problem configuration: 5 scales, 128 channels
    down and up, 4 skip channels, 3x3 convs, 1x1 skip convs, LeakyReLU(0.2), reflection
    padding, strided-conv downsampling, bilinear upsampling, biases on, 32 input
    channels. No output sigmoid: MRI images are complex and signed.

    Parameters
    ----------
    in_channels, out_channels : int
        Input channels (of ``z``) and output channels (2 per complex image).
    channels_down, channels_up, channels_skip : sequence of int
        Per-scale widths, all of the same length (the number of scales). A skip width 0
        removes that skip connection.
    kernel_down, kernel_up, kernel_skip : int
        Odd kernel sizes.
    upsample_mode : {"bilinear", "nearest"}
    negative_slope : float
        LeakyReLU slope.
    norm : {"instance", "batch", "none"}
        See :func:`mridip.models.common.make_norm` ("instance" equals the reference's
        BatchNorm at batch size 1).
    bias : bool
        Conv biases.

    Shapes: ``(B, in_channels, Yg, Xg) -> (B, out_channels, Yg, Xg)`` with ``Yg, Xg``
    multiples of ``2**scales``; :meth:`input_size` gives them for an image shape.
    """

    def __init__(
        self,
        in_channels: int = 32,
        out_channels: int = 2,
        channels_down: Sequence[int] = (128,) * 5,
        channels_up: Sequence[int] = (128,) * 5,
        channels_skip: Sequence[int] = (4,) * 5,
        kernel_down: int = 3,
        kernel_up: int = 3,
        kernel_skip: int = 1,
        upsample_mode: str = "bilinear",
        negative_slope: float = 0.2,
        norm: str = "instance",
        bias: bool = True,
    ):
        super().__init__()
        down, up, skip = (list(map(int, c)) for c in (channels_down, channels_up, channels_skip))
        if not (len(down) == len(up) == len(skip)) or len(down) == 0:
            raise ProtocolError(
                "channels_down, channels_up and channels_skip must be non-empty and of equal "
                f"length (one entry per scale); got {len(down)}, {len(up)}, {len(skip)}"
            )
        if min(down + up) < 1 or min(skip) < 0:
            raise ProtocolError("channel widths must be positive (skip widths may be 0)")
        for name, k in (("kernel_down", kernel_down), ("kernel_up", kernel_up),
                        ("kernel_skip", kernel_skip)):
            if k < 1 or k % 2 == 0:
                raise ProtocolError(f"{name} must be a positive odd int; got {k}")
        check_choice("upsample_mode", upsample_mode, UPSAMPLE_MODES)
        make_norm(norm, 1)  # validates the name before any layer is built
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.scales = len(down)

        # Build from the coarsest scale outwards so each level can wrap the deeper one.
        # Parameters are created in that order; weight init stays deterministic under
        # torch.manual_seed either way.
        level = None
        for i in reversed(range(self.scales)):
            in_ch = self.in_channels if i == 0 else down[i - 1]
            level = _SkipLevel(
                in_ch, down[i], up[i], skip[i], level,
                up[i + 1] if i + 1 < self.scales else 0,
                kernel_down, kernel_up, kernel_skip, norm, negative_slope, bias, upsample_mode,
            )
        self.body = level
        self.head = nn.Conv2d(up[0], self.out_channels, 1, bias=bias)

    def input_size(self, image_shape: tuple[int, int]) -> tuple[int, int]:
        """Spatial size ``(Yg, Xg)`` of the input that covers ``image_shape``.

        Smallest multiples of ``2**scales`` >= ``image_shape``, with at least 2 pixels
        per axis at the coarsest scale.
        """
        f = 2 ** self.scales
        return tuple(max(math.ceil(n / f), 2) * f for n in check_image_shape(image_shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, Yg, Xg) -> (B, out_channels, Yg, Xg)``, real."""
        f = 2 ** self.scales
        if z.ndim != 4 or z.shape[1] != self.in_channels or z.shape[-2] % f or z.shape[-1] % f:
            raise ShapeError(
                f"SkipNet expects input (B, {self.in_channels}, Yg, Xg) with Yg, Xg multiples "
                f"of 2**scales = {f}; got {tuple(z.shape)} (use SkipNet.input_size)"
            )
        return self.head(self.body(z))


# ================================================================== ConvDecoder
def _default_decoder_input(image_shape: tuple[int, int], short_side: int = 4) -> tuple[int, int]:
    """Small input grid with the output's aspect ratio: short side 4 (8 x 4 for a 2:1
    image, as the reference uses for fastMRI), never larger than the image."""
    y, x = image_shape
    m = min(y, x)
    return (min(y, max(1, round(short_side * y / m))), min(x, max(1, round(short_side * x / m))))


class ConvDecoder(nn.Module):
    """ConvDecoder (Darestani & Heckel, IEEE TCI 2021): an upsampling CNN, no skips.

    ``num_layers - 1`` blocks of [nearest upsampling to the next size -> 3x3 conv ->
    ReLU -> norm], the sizes growing geometrically from ``input_size`` to
    ``image_shape`` (size ``n``: ``ceil(input_size * r**n)``, ``r = (image/input)**(1/(L-1))``,
    the last one exactly ``image_shape``), then one more [3x3 conv -> ReLU -> norm] at
    the output size and a 1x1 conv to ``out_channels``: ``num_layers`` 3x3 convs in all.

    Defaults follow the authors' multi-coil MRI code (MLI-lab/ConvDecoder,
    ``ConvDecoder_vs_DIP_vs_DD_multicoil.ipynb``): 8 layers, 160 channels (256 appears
    there as an alternative), input 8 x 4 for fastMRI's 2:1 images (here: short side 4,
    the output's aspect ratio), input channels = ``channels``, convs without bias, zero
    ("same") padding. deepinv's port uses 7 layers, 256 channels, 4 x 4 input.

    Parameters
    ----------
    image_shape : (int, int)
        Output size ``(Y, X)``.
    in_channels : int or None
        Channels of ``z``; None: ``channels``.
    out_channels : int
        2 per complex image.
    channels : int
        Width of every layer.
    num_layers : int
        Number of 3x3 conv layers (>= 2).
    input_size : (int, int) or None
        Spatial size of ``z``; None: short side 4 with the output's aspect ratio.
    kernel_size : int
        Odd conv kernel size.
    upsample_mode : {"nearest", "bilinear"}
    norm : {"instance", "batch", "none"}
    bias : bool
    """

    def __init__(
        self,
        image_shape: tuple[int, int],
        in_channels: int | None = None,
        out_channels: int = 2,
        channels: int = 160,
        num_layers: int = 8,
        input_size: tuple[int, int] | None = None,
        kernel_size: int = 3,
        upsample_mode: str = "nearest",
        norm: str = "instance",
        bias: bool = False,
    ):
        super().__init__()
        self.image_shape = check_image_shape(image_shape)
        if num_layers < 2:
            raise ProtocolError(f"ConvDecoder needs num_layers >= 2; got {num_layers}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ProtocolError(f"kernel_size must be a positive odd int; got {kernel_size}")
        check_choice("upsample_mode", upsample_mode, UPSAMPLE_MODES)
        make_norm(norm, 1)
        if input_size is None:
            input_size = _default_decoder_input(self.image_shape)
        self.input_shape = check_image_shape(input_size)
        if any(i > o for i, o in zip(self.input_shape, self.image_shape)):
            raise ProtocolError(
                f"ConvDecoder input_size {self.input_shape} exceeds image_shape "
                f"{self.image_shape}: choose a smaller input_size (or leave it unset)"
            )
        self.in_channels = int(channels if in_channels is None else in_channels)
        self.out_channels = int(out_channels)
        self.upsample_mode = upsample_mode

        steps = num_layers - 1
        ratio = [(o / i) ** (1.0 / steps) for i, o in zip(self.input_shape, self.image_shape)]
        sizes = [
            tuple(min(o, math.ceil(i * r**n - 1e-9))
                  for i, o, r in zip(self.input_shape, self.image_shape, ratio))
            for n in range(1, steps)
        ] + [self.image_shape]
        self.sizes: list[tuple[int, int]] = [tuple(s) for s in sizes]

        pad = (kernel_size - 1) // 2
        blocks = []
        cin = self.in_channels
        for _ in range(num_layers):
            blocks.append(nn.Sequential(
                nn.Conv2d(cin, channels, kernel_size, padding=pad, bias=bias),
                nn.ReLU(),
                make_norm(norm, channels),
            ))
            cin = channels
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(channels, self.out_channels, 1, bias=bias)

    def input_size(self, image_shape: tuple[int, int] | None = None) -> tuple[int, int]:
        """Spatial size of ``z``; ``image_shape`` must be the one built for (or None)."""
        if image_shape is not None and check_image_shape(image_shape) != self.image_shape:
            raise ShapeError(
                f"this ConvDecoder was built for image_shape {self.image_shape}, "
                f"not {tuple(image_shape)}: build one for the new size"
            )
        return self.input_shape

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, *input_size) -> (B, out_channels, Y, X)``, real."""
        if z.ndim != 4 or z.shape[1] != self.in_channels:
            raise ShapeError(
                f"ConvDecoder expects input (B, {self.in_channels}, h, w); got {tuple(z.shape)}"
            )
        h = z
        for n, block in enumerate(self.blocks):
            if n < len(self.sizes):
                h = F.interpolate(h, size=self.sizes[n], mode=self.upsample_mode)
            h = block(h)
        return self.head(h)


# ================================================================= DIPGenerator
class DIPGenerator(nn.Module):
    """Generator contract around a DIP-type network with fixed random inputs.

    ``G(frames)``: ``z[frames]`` ``(B, C_in, Yz, Xz)`` (+ ``reg_noise_std * N(0, 1)`` in
    training mode) -> ``net`` -> centre crop to ``image_shape`` -> complex64
    ``(B, Y, X)`` (or ``(B, C, Y, X)`` with ``coil_images=C``).

    With ``num_frames = T > 1`` every frame gets its own independent input ``z_t`` and
    all frames share the weights (a frame-independent dynamic DIP).

    Parameters
    ----------
    net : nn.Module
        :class:`SkipNet`, :class:`ConvDecoder` or any module with ``in_channels``,
        ``out_channels`` and ``input_size(image_shape) -> (Yz, Xz)``, mapping
        ``(B, in_channels, Yz, Xz)`` to ``(B, out_channels, >= Y, >= X)``.
    num_frames : int
        ``T`` (1: static image).
    image_shape : (int, int)
        ``(Y, X)`` of the images.
    input_channels : int or None
        Must equal ``net.in_channels`` when given (a consistency check).
    input_scale : float
        ``"noise"`` inputs are ``U[0, 1) * input_scale`` (both references: uniform noise
        times 1/10).
    reg_noise_std : float
        Std of the Gaussian perturbation added to ``z`` at every training-mode call
        (DIP's ``reg_noise_std``; 0 disables it). Drawn from the global RNG of ``z``'s
        device, so it is reproducible under ``torch.manual_seed``.
    seed : int
        Seed of the local generator that draws ``z``.
    input_kind : {"noise", "meshgrid"}
        ``"meshgrid"``: DIP's 2-channel coordinate input (column and row coordinates in
        [0, 1], not scaled); needs ``net.in_channels == 2`` and ``num_frames == 1``.
    coil_images : int or None
        None: one image per frame, ``net.out_channels == 2``. ``C``: the coil-image
        variant, ``net.out_channels == 2C``, output ``(B, C, Y, X)``.

    Buffers: ``z`` ``(T, C_in, Yz, Xz)`` float32.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        image_shape: tuple[int, int],
        num_frames: int = 1,
        input_channels: int | None = None,
        input_scale: float = 0.1,
        reg_noise_std: float = 0.0,
        seed: int = 0,
        input_kind: str = "noise",
        coil_images: int | None = None,
    ):
        super().__init__()
        self.num_frames = check_num_frames(num_frames)
        self.image_shape = check_image_shape(image_shape)
        check_choice("input_kind", input_kind, INPUT_KINDS)
        cin = int(net.in_channels)
        if input_channels is not None and int(input_channels) != cin:
            raise ProtocolError(
                f"input_channels={input_channels} does not match the network's "
                f"in_channels={cin}: build the network with in_channels={input_channels}"
            )
        want_out = 2 if coil_images is None else 2 * int(coil_images)
        if coil_images is not None and int(coil_images) < 1:
            raise ProtocolError(f"coil_images must be a positive int or None; got {coil_images}")
        if int(net.out_channels) != want_out:
            raise ProtocolError(
                f"the network has {net.out_channels} output channels but "
                f"coil_images={coil_images} needs {want_out} (2 per complex image)"
            )
        if reg_noise_std < 0:
            raise ProtocolError(f"reg_noise_std must be >= 0; got {reg_noise_std}")
        self.net = net
        self.coil_images = None if coil_images is None else int(coil_images)
        self.input_kind = input_kind
        self.input_scale = float(input_scale)
        self.reg_noise_std = float(reg_noise_std)
        self.seed = seed

        yz, xz = net.input_size(self.image_shape)
        if input_kind == "noise":
            z = noise_input((self.num_frames, cin, yz, xz), seed, self.input_scale)
        else:
            if cin != 2 or self.num_frames != 1:
                raise ProtocolError(
                    "input_kind='meshgrid' is a 2-channel input shared by all frames: it "
                    f"needs input_channels=2 and num_frames=1 (got {cin} and "
                    f"{self.num_frames}); use input_kind='noise' otherwise"
                )
            yy = torch.linspace(0.0, 1.0, yz) if yz > 1 else torch.zeros(1)
            xx = torch.linspace(0.0, 1.0, xz) if xz > 1 else torch.zeros(1)
            gy, gx = torch.meshgrid(yy, xx, indexing="ij")
            z = torch.stack([gx, gy])[None]  # (1, 2, Yz, Xz): channel 0 = column (X)
        self.register_buffer("z", z.float())

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Images of ``frames`` ``(B,)``: complex64 ``(B, Y, X)`` (or ``(B, C, Y, X)``)."""
        frames = check_frames(frames, self.num_frames, self.z.device)
        z = self.z[frames]  # (B, C_in, Yz, Xz)
        if self.training and self.reg_noise_std > 0:
            z = z + self.reg_noise_std * torch.randn_like(z)
        out = center_crop(self.net(z), self.image_shape)  # (B, 2K, Y, X)
        return channels_to_complex(out, keep_image_axis=self.coil_images is not None)


# ==================================================================== factories
def _frames_and_shape(num_frames, image_shape, factory: str) -> tuple[int, tuple[int, int]]:
    if image_shape is None:
        raise ProtocolError(
            f"{factory} needs image_shape=(Y, X); call it as {factory}(num_frames, image_shape, ...)"
        )
    return check_num_frames(num_frames), check_image_shape(image_shape)


def noise_input(shape: tuple[int, ...], seed: int, scale: float) -> torch.Tensor:
    """The fixed random input of a DIP: ``U[0, 1) * scale`` of ``shape``, from a local seeded RNG."""
    return torch.rand(shape, generator=local_generator(seed)) * scale


def skip_net(out_channels: int, *, scales: int, channels: int, skip_channels: int, input_channels: int,
             upsample_mode: str, norm: str) -> SkipNet:
    """:class:`SkipNet` with ``scales`` equal scales of ``channels`` down/up and ``skip_channels``
    skip channels (the shape every DIP protocol gives), ``out_channels`` outputs."""
    if scales < 1:
        raise ProtocolError(f"scales must be >= 1; got {scales}")
    return SkipNet(
        in_channels=input_channels,
        out_channels=out_channels,
        channels_down=(channels,) * scales,
        channels_up=(channels,) * scales,
        channels_skip=(skip_channels,) * scales,
        upsample_mode=upsample_mode,
        norm=norm,
    )


def make_dip(
    num_frames: int = 1,
    image_shape: tuple[int, int] | None = None,
    *,
    scales: int = 5,
    channels: int = 128,
    skip_channels: int = 4,
    input_channels: int = 32,
    upsample_mode: str = "bilinear",
    norm: str = "instance",
    input_scale: float = 0.1,
    reg_noise_std: float = 0.0,
    seed: int = 0,
    input_kind: str = "noise",
    coil_images: int | None = None,
) -> DIPGenerator:
    """DIP skip network (defaults: Ulyanov et al.'s inverse-problem configuration).

    ``scales`` scales of ``channels`` down/up channels and ``skip_channels`` skip
    channels; see :class:`SkipNet` and :class:`DIPGenerator` for the rest.
    Returns a generator ``(B,) -> (B, Y, X)`` complex64.
    """
    num_frames, image_shape = _frames_and_shape(num_frames, image_shape, "make_dip")
    net = skip_net(2 if coil_images is None else 2 * int(coil_images), scales=scales, channels=channels,
                   skip_channels=skip_channels, input_channels=input_channels, upsample_mode=upsample_mode,
                   norm=norm)
    return DIPGenerator(
        net, image_shape=image_shape, num_frames=num_frames, input_scale=input_scale,
        reg_noise_std=reg_noise_std, seed=seed, input_kind=input_kind, coil_images=coil_images,
    )


def make_convdecoder(
    num_frames: int = 1,
    image_shape: tuple[int, int] | None = None,
    *,
    channels: int = 160,
    num_layers: int = 8,
    input_size: tuple[int, int] | None = None,
    input_channels: int | None = None,
    upsample_mode: str = "nearest",
    norm: str = "instance",
    input_scale: float = 0.1,
    reg_noise_std: float = 0.0,
    seed: int = 0,
    coil_images: int | None = None,
) -> DIPGenerator:
    """ConvDecoder generator (defaults: Darestani & Heckel's multi-coil MRI code).

    See :class:`ConvDecoder` and :class:`DIPGenerator`. ``input_channels`` defaults to
    ``channels``. Returns a generator ``(B,) -> (B, Y, X)`` complex64.
    """
    num_frames, image_shape = _frames_and_shape(num_frames, image_shape, "make_convdecoder")
    net = ConvDecoder(
        image_shape,
        in_channels=input_channels,
        out_channels=2 if coil_images is None else 2 * int(coil_images),
        channels=channels,
        num_layers=num_layers,
        input_size=input_size,
        upsample_mode=upsample_mode,
        norm=norm,
    )
    return DIPGenerator(
        net, image_shape=image_shape, num_frames=num_frames, input_scale=input_scale,
        reg_noise_std=reg_noise_std, seed=seed, input_kind="noise", coil_images=coil_images,
    )
