"""The bilinear warp of mridip/operators/motion.py and its explicit adjoint."""

from __future__ import annotations

import pytest
import torch

from mridip.errors import ShapeError
from mridip.operators.base import inner
from mridip.operators.motion import MotionSense, warp, warp_adjoint

from registry import _cart, displacement, random_input, rel


def test_identity_and_integer_shift():
    x = random_input((2, 9, 7), seed=1)
    zero = torch.zeros(2, 2, 9, 7)
    assert torch.equal(warp(x, zero), x)
    # u = (+1 row, -2 columns) everywhere pulls x(p + u): a roll, zero where it leaves the image
    u = torch.zeros(2, 2, 9, 7)
    u[:, 0], u[:, 1] = 1.0, -2.0
    out = warp(x, u)
    ref = torch.zeros_like(x)
    ref[:, :-1, 2:] = x[:, 1:, :-2]
    assert rel(out, ref) < 1e-6


def test_half_pixel_is_the_mean_of_neighbours():
    x = random_input((1, 5, 6), seed=2)
    u = torch.zeros(1, 2, 5, 6)
    u[:, 1] = 0.5
    out = warp(x, u)
    ref = 0.5 * (x[..., :-1] + x[..., 1:])
    assert rel(out[..., :-1], ref) < 1e-6
    assert rel(out[..., -1], 0.5 * x[..., -1]) < 1e-6  # the right neighbour is outside (zero)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adjoint_is_exact(seed):
    """<W x, r> = <x, W^H r> for a random smooth field with pulls out of the image."""
    u = displacement(3, (11, 8), seed=seed)
    x, r = random_input((3, 11, 8), seed=10 + seed), random_input((3, 11, 8), seed=20 + seed)
    lhs, rhs = inner(warp(x, u), r), inner(x, warp_adjoint(r, u))
    assert abs(complex(lhs - rhs)) / abs(complex(lhs)) < 1e-5


def test_adjoint_matches_autograd_transpose():
    """The scatter-add equals the vector-Jacobian product of the gather (an independent route)."""
    u = displacement(2, (6, 5), seed=7)
    x = random_input((2, 6, 5), seed=3).requires_grad_(True)
    r = random_input((2, 6, 5), seed=4)
    (g,) = torch.autograd.grad(inner(r, warp(x, u)).real, x)  # = W^H r (PyTorch's conj convention)
    assert rel(g, warp_adjoint(r, u)) < 1e-5


def test_gradient_in_displacement_matches_finite_difference():
    x = random_input((1, 8, 8), seed=5)
    u = (0.3 * displacement(1, (8, 8), seed=2)).double().requires_grad_(True)
    f = lambda v: warp(x.to(torch.complex128), v).abs().pow(2).sum()
    (g,) = torch.autograd.grad(f(u), u)
    d = torch.zeros_like(u)
    d[0, 0, 3, 4] = 1e-6
    fd = (f(u.detach() + d) - f(u.detach() - d)) / 2e-6
    assert abs(float(g[0, 0, 3, 4]) - float(fd)) < 1e-5 * max(1.0, abs(float(fd)))


def test_motion_sense_is_a_over_warp_and_checks_shapes():
    A = _cart("cpu")
    u = displacement()
    M = MotionSense(A, u)
    x = random_input(A.ishape, seed=8)
    assert rel(M(x), A(warp(x, u))) < 1e-6
    assert M.select_frames(torch.tensor([1])).displacement.shape == (1, 2) + A.ishape[1:]
    with pytest.raises(ShapeError, match="displacement"):
        MotionSense(A, u[:, :1])
