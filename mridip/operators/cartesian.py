"""Cartesian multi-coil forward model (SENSE with a per-frame sampling mask).

Model, per frame ``t`` and coil ``c``::

    y[t, c] = M[t] * F(S[c] * x[t])

with ``F`` the centred orthonormal 2-D FFT
``fftshift(fft2(ifftshift(u), norm="ortho"))`` over the last two axes (k-space centre at
index ``(Ky // 2, Kx // 2)``) and ``M[t]`` a bool mask (zeros where not sampled).
"""

from __future__ import annotations

import torch

from mridip.errors import ShapeError
from mridip.operators.base import LinearOperator

_DIMS = (-2, -1)


def fft2c(u: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two axes (image -> k-space)."""
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(u, dim=_DIMS), norm="ortho"), dim=_DIMS)


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`fft2c` (k-space -> image), also its adjoint."""
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(k, dim=_DIMS), norm="ortho"), dim=_DIMS)


class CartesianSense(LinearOperator):
    """Multi-coil Cartesian SENSE: ``x (T, Y, X) -> y (T, C, Ky, Kx)`` with ``Ky, Kx = Y, X``.

    Parameters
    ----------
    coil_maps : torch.Tensor
        complex64 ``(C, Y, X)``; sets the device of the operator.
    mask : torch.Tensor
        bool ``(T, Ky, Kx)``, True where a sample was measured (moved to the maps' device).

    Notes
    -----
    ``normal`` never forms the coil k-space of the forward model: it shifts the image and
    the maps once (the maps are stored pre-shifted) and applies the mask in FFT order,
    ``A^H A x = fftshift(sum_c conj(S'_c) ifft2(M' fft2(S'_c ifftshift(x))))``, with
    ``S' = ifftshift(S)`` and ``M' = ifftshift(M)`` precomputed.
    """

    def __init__(self, coil_maps: torch.Tensor, mask: torch.Tensor):
        name = type(self).__name__
        if not torch.is_tensor(coil_maps) or coil_maps.ndim != 3 or not coil_maps.is_complex():
            raise ShapeError(
                f"{name}: coil_maps must be a complex tensor (C, Y, X), got "
                f"{getattr(coil_maps, 'shape', type(coil_maps).__name__)}"
            )
        c, ny, nx = (int(s) for s in coil_maps.shape)
        if not torch.is_tensor(mask) or mask.ndim != 3 or tuple(mask.shape[1:]) != (ny, nx):
            raise ShapeError(
                f"{name}: mask must be a bool tensor (T, Ky, Kx) with (Ky, Kx) = {(ny, nx)} "
                f"(the coil maps' image size), got {tuple(getattr(mask, 'shape', ()))}"
            )
        t = int(mask.shape[0])
        super().__init__((t, ny, nx), (t, c, ny, nx))
        m = mask.to(device=coil_maps.device).bool()
        maps = coil_maps.to(torch.complex64)
        self.register_buffer("coil_maps", maps)
        self.register_buffer("mask", m)
        # FFT-order copies for the fused normal operator
        self.register_buffer("_maps_shifted", torch.fft.ifftshift(maps, dim=_DIMS))
        self.register_buffer("_mask_shifted", torch.fft.ifftshift(m, dim=_DIMS).unsqueeze(1))  # (T,1,Ky,Kx)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        k = fft2c(x.unsqueeze(1) * self.coil_maps)  # (T, C, Ky, Kx)
        return k * self.mask.unsqueeze(1)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        img = ifft2c(y * self.mask.unsqueeze(1))  # (T, C, Y, X)
        return (img * self.coil_maps.conj()).sum(dim=1)

    def _normal(self, x: torch.Tensor) -> torch.Tensor:
        s = self._maps_shifted
        u = torch.fft.fft2(torch.fft.ifftshift(x, dim=_DIMS).unsqueeze(1) * s, norm="ortho")
        u = torch.fft.ifft2(u * self._mask_shifted, norm="ortho")  # (T, C, Y, X), FFT order
        return torch.fft.fftshift((u * s.conj()).sum(dim=1), dim=_DIMS)

    @property
    def sample_mask(self) -> torch.Tensor:
        """bool ``(T, Ky, Kx)``: the sampling mask."""
        return self.mask

    def restrict(self, sample_mask: torch.Tensor) -> "CartesianSense":
        """Operator with mask ``self.mask & sample_mask`` (bool ``(T, Ky, Kx)``)."""
        if not torch.is_tensor(sample_mask) or tuple(sample_mask.shape) != tuple(self.mask.shape):
            raise ShapeError(
                f"{self.name}.restrict: sample_mask must be a bool tensor (T, Ky, Kx) = "
                f"{tuple(self.mask.shape)}, got {tuple(getattr(sample_mask, 'shape', ()))}"
            )
        return CartesianSense(self.coil_maps, self.mask & sample_mask.to(self.mask.device).bool())

    def select_frames(self, idx: torch.Tensor) -> "CartesianSense":
        """Operator of frames ``idx`` (LongTensor ``(B,)``); shares the coil maps."""
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.mask.device).reshape(-1)
        t = self.ishape[0]
        if idx.numel() == 0 or bool((idx < 0).any()) or bool((idx >= t).any()):
            raise ShapeError(f"{self.name}.select_frames: frame indices must lie in [0, {t}), got {idx.tolist()}")
        return CartesianSense(self.coil_maps, self.mask[idx])
