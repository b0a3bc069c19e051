"""Tests of the orthogonal 2-D wavelet transform (mridip/wavelets.py)."""

import math

import pytest
import torch

from mridip.errors import ShapeError
from mridip.wavelets import default_levels, max_levels, wavedec2, wavelet_filter, waverec2


@pytest.mark.parametrize("name", ["haar", "db2", "db4", "db8"])
def test_filters_are_orthonormal_with_vanishing_moments(name):
    h, g = wavelet_filter(name)
    L = h.numel()
    assert abs(h.sum().item() - math.sqrt(2)) < 1e-12
    for shift in range(0, L, 2):  # double-shift orthonormality of h and of g, and h _|_ g
        hs = h[shift:] @ h[: L - shift]
        assert abs(hs.item() - (1.0 if shift == 0 else 0.0)) < 1e-10
        assert abs((g[shift:] @ h[: L - shift]).item()) < 1e-10
    n = torch.arange(L, dtype=torch.float64)
    for p in range(L // 2):  # dbN: N vanishing moments of the high-pass filter
        assert abs((g * n**p).sum().item()) < 1e-6 * (L**p)


def test_db2_known_values():
    s3 = math.sqrt(3)
    expected = torch.tensor([1 + s3, 3 + s3, 3 - s3, 1 - s3], dtype=torch.float64) / (4 * math.sqrt(2))
    assert torch.allclose(wavelet_filter("db2")[0], expected, atol=1e-12)


@pytest.mark.parametrize("shape", [(32, 32), (33, 31), (16, 9), (5, 7), (2, 2)])
@pytest.mark.parametrize("name", ["haar", "db4"])
def test_perfect_reconstruction_and_norm(shape, name):
    x = torch.randn(3, *shape, dtype=torch.complex128)
    for levels in sorted({1, max_levels(shape)}):
        c = wavedec2(x, name, levels)
        assert c.shape == x.shape
        # float64: both identities hold to rounding (1e-12)
        assert torch.allclose(waverec2(c, name, levels), x, atol=1e-12)
        assert abs(torch.linalg.vector_norm(c) / torch.linalg.vector_norm(x) - 1) < 1e-12


def test_adjoint_equals_inverse():
    a = torch.randn(2, 12, 10, dtype=torch.complex128)
    b = torch.randn(2, 12, 10, dtype=torch.complex128)
    lhs = torch.vdot(wavedec2(a, "db4", 2).reshape(-1), b.reshape(-1))
    rhs = torch.vdot(a.reshape(-1), waverec2(b, "db4", 2).reshape(-1))
    assert abs(lhs - rhs) < 1e-10


def test_smooth_image_is_sparse():
    """A smooth ramp has (nearly) zero db4 detail coefficients at level 1 (4 vanishing moments)."""
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    img = (0.5 * y + 0.25 * x).to(torch.float64)
    c = wavedec2(img, "db4", 1)
    # periodic extension breaks the ramp only at the wrap-around: the interior HH band vanishes
    assert c[16:28, 16:28].abs().max() < 1e-9


def test_complex64_stays_complex64():
    x = torch.randn(2, 16, 16, dtype=torch.complex64)
    c = wavedec2(x)
    assert c.dtype == torch.complex64
    assert torch.allclose(waverec2(c), x, atol=1e-5)  # float32 rounding over 2 levels


def test_errors_name_the_way_out():
    with pytest.raises(ShapeError, match="use one of"):
        wavedec2(torch.zeros(8, 8), "sym4")
    with pytest.raises(ShapeError, match="levels"):
        wavedec2(torch.zeros(8, 8), "haar", levels=9)
    assert default_levels((32, 32), "db4") == 2
