"""from_arrays: numpy / torch arrays in, RawData out; the sigpy-brain sample."""

import math

import numpy as np
import pytest
import torch

from mridip.errors import ShapeError
from mridip.io import from_arrays


def test_sigpy_brain(sigpy_brain_path):
    k = np.load(sigpy_brain_path)  # (C, Ky, Kx) = (8, 230, 180), zero-filled
    raw = from_arrays(k)
    assert tuple(raw.kspace.shape) == (1, 1, 8, 230, 180)
    # default mask = any coil nonzero: the README's 12.4 % of the plane
    assert abs(float(raw.mask.float().mean()) - 0.1243) < 1e-3
    # centred data: the k-space energy peaks at the grid centre (Ky // 2, Kx // 2) +- 1
    e = (raw.kspace[0, 0].abs() ** 2).sum(0)
    iy, ix = np.unravel_index(int(e.argmax()), e.shape)
    assert abs(iy - 115) <= 1 and abs(ix - 90) <= 1
    # the centred inverse FFT gives an object in the middle, not at the corners
    img = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(raw.kspace[0, 0], dim=(-2, -1)),
                                             norm="ortho"), dim=(-2, -1))
    rss = (img.abs() ** 2).sum(0).sqrt()
    centre = rss[60:170, 45:135].mean()
    corner = rss[:20, :20].mean()
    assert centre > 5 * corner


def test_cartesian_shapes_mask_and_torch_input():
    k = torch.randn(2, 3, 8, 6, dtype=torch.complex64)  # (T, C, Ky, Kx)
    mask = torch.zeros(8, 6, dtype=torch.bool)
    mask[::2] = True
    raw = from_arrays(k, mask=mask)
    assert tuple(raw.kspace.shape) == (1, 2, 3, 8, 6) and tuple(raw.mask.shape) == (1, 2, 8, 6)
    assert raw.kspace[0, :, :, 1::2].abs().max() == 0  # zeroed outside the mask
    assert torch.equal(raw.kspace[0, :, :, ::2], k[:, :, ::2])
    with pytest.raises(ShapeError, match="does not fit"):
        from_arrays(k, mask=torch.ones(5, 6, dtype=torch.bool))
    with pytest.raises(ShapeError, match="complex"):
        from_arrays(k.real)


def test_radial_cycles_and_radians():
    k = np.ones((2, 3, 10), np.complex64)  # (T, C, K)
    tr = np.linspace(-0.5, 0.45, 10, dtype=np.float32)
    traj = np.stack([tr, -tr])[None].repeat(2, 0)  # (T, 2, K) cycles/pixel
    a = from_arrays(k, trajectory=traj, trajectory_units="cycles", image_shape=(8, 8))
    b = from_arrays(k, trajectory=traj * 2 * math.pi, image_shape=(8, 8))
    assert a.kind == "radial" and a.image_shape == (8, 8)
    torch.testing.assert_close(a.trajectory, b.trajectory)
    assert float(a.trajectory.max()) < math.pi  # +0.5 cycles wraps to -pi
    with pytest.raises(ShapeError, match="image_shape"):
        from_arrays(k, trajectory=traj)
