"""Centred orthonormal FFTs over the last two axes (the package's one k-space convention).

``fft2c(x) = fftshift(fft2(ifftshift(x), norm="ortho"))`` over the last two axes, so the
k-space centre (ky = 0, kx = 0) sits at index ``(Ky // 2, Kx // 2)`` and the transform is
unitary (Parseval: ``||fft2c(x)|| = ||x||``).
"""

from __future__ import annotations

import torch

_DIMS = (-2, -1)


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two axes: image ``(..., Y, X)`` -> k-space ``(..., Ky, Kx)``."""
    x = torch.fft.ifftshift(x, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.fft2(x, dim=_DIMS, norm="ortho"), dim=_DIMS)


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D inverse FFT over the last two axes: k-space ``(..., Ky, Kx)`` -> image ``(..., Y, X)``."""
    k = torch.fft.ifftshift(k, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.ifft2(k, dim=_DIMS, norm="ortho"), dim=_DIMS)
