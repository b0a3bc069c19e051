"""CartesianSense against the DESIGN.md definition written with numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mridip.errors import ShapeError
from mridip.operators import CartesianSense

from registry import coil_maps, random_input, rel


def numpy_fft2c(u: np.ndarray) -> np.ndarray:
    ax = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(u, axes=ax), norm="ortho"), axes=ax)


@pytest.mark.parametrize("shape", [(8, 6), (7, 9)])  # even and odd sizes (shift conventions)
def test_forward_is_masked_centred_orthonormal_fft(shape):
    maps = coil_maps(3, shape)
    mask = torch.rand(2, *shape) > 0.4
    A = CartesianSense(maps, mask)
    x = random_input((2,) + shape, seed=1)
    ref = numpy_fft2c(x.numpy()[:, None] * maps.numpy()) * mask.numpy()[:, None]
    assert rel(A(x), torch.from_numpy(ref)) < 1e-5  # float32 FFT rounding
    # fused normal (pre-shifted maps and mask) equals the round trip, odd sizes included
    assert rel(A.normal(x), A.adjoint(A(x))) < 1e-5


def test_kspace_centre_is_dc():
    """A constant image puts all its energy at (Ky // 2, Kx // 2): sqrt(Y X) there."""
    ny, nx = 8, 6
    A = CartesianSense(torch.ones(1, ny, nx, dtype=torch.complex64), torch.ones(1, ny, nx, dtype=torch.bool))
    k = A(torch.ones(1, ny, nx, dtype=torch.complex64))[0, 0]
    assert abs(complex(k[ny // 2, nx // 2]) - np.sqrt(ny * nx)) < 1e-4
    k[ny // 2, nx // 2] = 0
    assert float(k.abs().max()) < 1e-5


def test_bad_mask_shape():
    with pytest.raises(ShapeError, match="CartesianSense: mask"):
        CartesianSense(coil_maps(2, (8, 8)), torch.ones(2, 8, 7, dtype=torch.bool))
