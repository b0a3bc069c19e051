"""Pieces shared by every generator network.

The generator contract (relied on by :mod:`mridip.recon.fit`)
-------------------------------------------------------------
Every generator ``G`` is a ``torch.nn.Module`` with

- ``G.num_frames`` (int ``T``) and ``G.image_shape`` (``(Y, X)``);
- ``G(frames)``: ``frames`` a LongTensor ``(B,)`` of frame indices in ``[0, T)`` ->
  complex64 ``(B, Y, X)``, the image of each frame (static DIP: ``T = 1``,
  ``frames = tensor([0])``). A coil-image ("coil-less") generator returns
  ``(B, C, Y, X)``, one image per coil;
- fixed random inputs (noise images, latent manifolds) stored as buffers, so
  ``G.to(device)`` moves them and ``state_dict`` keeps them;
- input perturbation (``reg_noise_std``) only in training mode; in eval mode the
  output is a deterministic function of the frame indices;
- seeded construction: ``seed`` drives a local ``torch.Generator`` for the random
  inputs; weight initialisation follows the global RNG (``torch.manual_seed``).

Real <-> complex
----------------
Networks see and produce real tensors; the conversion to and from complex64 happens
only in :func:`channels_to_complex` / :func:`complex_to_channels`. Channel layout:
image ``k`` occupies channels ``(2k, 2k+1)`` = (real, imaginary), i.e. interleaved.

Normalisation layers
--------------------
:func:`make_norm` builds the normalisation used by all generators:

- ``"instance"`` (default): per-sample, per-channel mean/variance over the spatial
  axes with a learned affine (``InstanceNorm2d(affine=True)``). For a batch of one
  image this is *exactly* what the reference codes compute with ``BatchNorm2d``:
  DIP, ConvDecoder and TDDIP are all fitted with batch size 1 and never switched to
  eval mode, so their BatchNorm always uses the statistics of the current single
  image. Unlike BatchNorm it keeps the image of frame ``t`` independent of which other
  frames share its mini-batch.
- ``"batch"``: ``BatchNorm2d`` that always uses the statistics of the current batch
  (``track_running_stats=False``), in training and in eval mode alike, so eval output
  equals training output without input noise. With a mini-batch of several frames the
  statistics mix those frames: the image of frame ``t`` then depends on its batch.
- ``"none"``: no normalisation.

Running averages (PyTorch's default BatchNorm eval behaviour) are deliberately not
offered: they lag the fitted weights, so an eval-mode image would differ from the
image that was fitted to the data.
"""

from __future__ import annotations

import torch
from torch import nn

from mridip.errors import ProtocolError, ShapeError

NORMS = ("instance", "batch", "none")


# --------------------------------------------------------------- real <-> complex
def channels_to_complex(t: torch.Tensor, keep_image_axis: bool = False) -> torch.Tensor:
    """Real network output -> complex64 images.

    Parameters
    ----------
    t : torch.Tensor
        Real tensor ``(B, 2K, Y, X)``; channels ``2k`` and ``2k+1`` are the real and
        imaginary parts of image ``k``.
    keep_image_axis : bool
        If False (default) and ``K == 1``, return ``(B, Y, X)``. Otherwise return
        ``(B, K, Y, X)`` (the coil-image variant: one image per coil, ``K = C``).

    Returns
    -------
    torch.Tensor
        complex64 ``(B, Y, X)`` or ``(B, K, Y, X)``.
    """
    if t.ndim != 4 or t.shape[1] % 2 != 0 or t.shape[1] == 0:
        raise ShapeError(
            f"channels_to_complex expects a real tensor (B, 2K, Y, X) with an even, "
            f"non-zero channel count; got shape {tuple(t.shape)}"
        )
    if t.is_complex():
        raise ShapeError("channels_to_complex expects a real tensor, got a complex one")
    b, c2, y, x = t.shape
    t = t.float().reshape(b, c2 // 2, 2, y, x)
    out = torch.complex(t[:, :, 0], t[:, :, 1])  # (B, K, Y, X) complex64
    if c2 == 2 and not keep_image_axis:
        out = out[:, 0]
    return out


def complex_to_channels(x: torch.Tensor) -> torch.Tensor:
    """Complex images -> real channels, the inverse of :func:`channels_to_complex`.

    Parameters
    ----------
    x : torch.Tensor
        Complex ``(B, Y, X)`` (one image each) or ``(B, K, Y, X)``.

    Returns
    -------
    torch.Tensor
        float32 ``(B, 2, Y, X)`` or ``(B, 2K, Y, X)``, channels (re, im) interleaved.
    """
    if not x.is_complex():
        raise ShapeError("complex_to_channels expects a complex tensor (B, Y, X) or (B, K, Y, X)")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ShapeError(
            f"complex_to_channels expects (B, Y, X) or (B, K, Y, X); got shape {tuple(x.shape)}"
        )
    x = x.to(torch.complex64)
    b, k, y, xx = x.shape
    return torch.stack((x.real, x.imag), dim=2).reshape(b, 2 * k, y, xx)


# --------------------------------------------------------------------- checks
def check_image_shape(image_shape) -> tuple[int, int]:
    """Validate ``(Y, X)``: two positive ints. Returns it as a tuple of int."""
    try:
        shape = tuple(int(s) for s in image_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 2 or min(shape) < 1:
        raise ShapeError(
            f"image_shape must be two positive integers (Y, X); got {image_shape!r}"
        )
    return shape  # type: ignore[return-value]


def check_num_frames(num_frames) -> int:
    """Validate the frame count ``T >= 1``."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ProtocolError(
            f"num_frames must be a positive int (1 for a static image); got {num_frames!r}"
        )
    return num_frames


def check_frames(frames: torch.Tensor, num_frames: int, device: torch.device) -> torch.Tensor:
    """Validate frame indices ``(B,)`` in ``[0, T)`` and move them to ``device``.

    The range check costs one small host sync; it turns what would be a CUDA device-side
    assert (or silent wrap-around of negative indices) into a readable error.
    """
    if not isinstance(frames, torch.Tensor):
        raise ShapeError(
            f"frames must be a LongTensor (B,) of frame indices; got {type(frames).__name__}"
        )
    if frames.ndim != 1 or frames.numel() == 0:
        raise ShapeError(
            f"frames must be a non-empty 1-D LongTensor (B,); got shape {tuple(frames.shape)}"
        )
    if frames.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ShapeError(f"frames must hold integer frame indices; got dtype {frames.dtype}")
    lo, hi = int(frames.min()), int(frames.max())
    if lo < 0 or hi >= num_frames:
        raise ShapeError(
            f"frame indices must lie in [0, {num_frames}); got min {lo}, max {hi}"
        )
    return frames.to(device=device, dtype=torch.long)


# ---------------------------------------------------------------- helpers
def make_norm(kind: str, channels: int) -> nn.Module:
    """Normalisation layer ``kind`` in ``("instance", "batch", "none")``, see module doc."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ProtocolError(f"unknown norm {kind!r}: use one of {', '.join(NORMS)}")


def center_crop(t: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Crop the last two axes of ``t`` to ``shape = (Y, X)`` about the centre.

    The centre pixel ``(Yg//2, Xg//2)`` of the input lands on ``(Y//2, X//2)``, the
    package's image-centre convention (that of the centred FFT).
    """
    yg, xg = t.shape[-2:]
    y, x = shape
    if yg < y or xg < x:
        raise ShapeError(f"cannot crop a ({yg}, {xg}) network output to image_shape ({y}, {x})")
    y0, x0 = yg // 2 - y // 2, xg // 2 - x // 2
    return t[..., y0 : y0 + y, x0 : x0 + x]


def local_generator(seed: int) -> torch.Generator:
    """CPU ``torch.Generator`` seeded with ``seed`` (inputs are drawn on the CPU so that
    they are identical on every device, then stored as buffers)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ProtocolError(f"seed must be an int; got {seed!r}")
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    """Raise :class:`ProtocolError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ProtocolError(f"unknown {name} {value!r}: use one of {', '.join(choices)}")
    return value
