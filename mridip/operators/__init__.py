"""Forward models: one interface (:class:`LinearOperator`), Cartesian and radial SENSE."""

from __future__ import annotations

import torch

from mridip.errors import ShapeError
from mridip.operators.base import LinearOperator, inner, max_eigenvalue
from mridip.operators.cartesian import CartesianSense, fft2c, ifft2c
from mridip.operators.nufft import available_backends, default_backend
from mridip.operators.radial import RadialSense


def make_operator(
    raw,
    coil_maps: torch.Tensor,
    *,
    sample_weights: torch.Tensor | None = None,
    backend: str | None = "auto",
    **kw,
) -> LinearOperator:
    """The forward model of one slice of raw data.

    Parameters
    ----------
    raw : mridip.data.RawData
        One slice (``S = 1``; use ``raw.slice(s)``). Cartesian data give a
        :class:`CartesianSense` with ``raw.mask[0]`` ``(T, Ky, Kx)``; radial data a
        :class:`RadialSense` with ``raw.trajectory[0]`` ``(T, 2, K)`` in radians/voxel.
    coil_maps : torch.Tensor
        complex64 ``(C, Y, X)``; the operator lives on their device.
    sample_weights : torch.Tensor, optional
        Radial only: real ``(T, K)`` weights (see :class:`RadialSense`).
    backend : str
        Radial only: the NUFFT backend, ``"auto"``, ``"finufft"`` or ``"torchkbnufft"``
        (protocol key ``data.nufft_backend``); Cartesian operators ignore it.
    **kw
        Passed to :class:`RadialSense` (``toeplitz``, ``coil_batch``, ``grid_oversampling``,
        ``numpoints``).

    Returns
    -------
    LinearOperator
        ``ishape (T, Y, X)``, ``oshape`` = ``raw.kspace[0].shape``.
    """
    if raw.num_slices != 1:
        raise ShapeError(
            f"make_operator: raw data has {raw.num_slices} slices; pass one slice (raw.slice(s))"
        )
    if not torch.is_tensor(coil_maps) or coil_maps.ndim != 3:
        raise ShapeError(
            f"make_operator: coil_maps must be a complex tensor (C, Y, X), got "
            f"{tuple(getattr(coil_maps, 'shape', ()))}"
        )
    if int(coil_maps.shape[0]) != raw.num_coils:
        raise ShapeError(
            f"make_operator: coil_maps have {int(coil_maps.shape[0])} coils but the k-space has "
            f"{raw.num_coils}; estimate the maps from the same (coil-compressed) data"
        )
    if raw.kind == "cartesian":
        if sample_weights is not None or kw:
            raise ShapeError(
                "make_operator: sample_weights and NUFFT options apply to radial data only; "
                "restrict a Cartesian operator with A.restrict(mask) instead"
            )
        return CartesianSense(coil_maps, raw.mask[0])
    return RadialSense(coil_maps, raw.trajectory[0], sample_weights=sample_weights, backend=backend, **kw)


__all__ = [
    "LinearOperator",
    "inner",
    "max_eigenvalue",
    "CartesianSense",
    "RadialSense",
    "make_operator",
    "available_backends",
    "default_backend",
    "fft2c",
    "ifft2c",
]
