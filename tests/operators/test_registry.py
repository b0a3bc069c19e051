"""Shared tests run on every operator of registry.REGISTRY (deepinv style)."""

from __future__ import annotations

import pytest
import torch

from mridip.errors import ShapeError
from mridip.operators import LinearOperator, inner

from registry import REGISTRY, random_input, rel

NAMES = sorted(REGISTRY)


@pytest.fixture(scope="module")
def ops():
    return {name: REGISTRY[name]("cpu") for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_adjoint(ops, name):
    """<A x, y> = <x, A^H y>: float32 sums of ~1e3 terms round at ~1e-6 relative."""
    A = ops[name]
    x, y = random_input(A.ishape, seed=1), random_input(A.oshape, seed=2)
    lhs, rhs = inner(A(x), y), inner(x, A.adjoint(y))
    assert abs(complex(lhs - rhs)) / abs(complex(lhs)) < 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_normal_equals_adjoint_of_forward(ops, name):
    """Toeplitz / fused normal vs the explicit round trip. The Toeplitz kernel holds the
    exact weighted PSF while the round trip carries the Kaiser-Bessel interpolation error
    (~1e-4 for 6 neighbours on a 2x grid), hence 1e-3."""
    A = ops[name]
    x = random_input(A.ishape, seed=3)
    assert rel(A.normal(x), A.adjoint(A(x))) < 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_autograd_of_data_term_is_normal(ops, name):
    """For real L(x), PyTorch's x.grad is dL/dRe(x) + i dL/dIm(x) = 2 dL/d(conj x).
    With L = 0.5 ||A x||^2, dL/d(conj x) = 0.5 A^H A x, so x.grad = A^H A x exactly
    (factor 1), the steepest-ascent direction a real optimiser of (Re x, Im x) sees."""
    A = ops[name]
    x = random_input(A.ishape, seed=4).requires_grad_(True)
    loss = 0.5 * torch.linalg.vector_norm(A(x)) ** 2
    (grad,) = torch.autograd.grad(loss, x)
    with torch.no_grad():
        ref = A.adjoint(A(x))
    assert rel(grad, ref) < 1e-4
    # the Toeplitz normal is differentiable too: d/dx 0.5 <x, A^H A x> = A^H A x
    x2 = x.detach().clone().requires_grad_(True)
    loss2 = 0.5 * inner(x2, A.normal(x2)).real
    (g2,) = torch.autograd.grad(loss2, x2)
    assert rel(g2, A.normal(x.detach())) < 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_shape_errors_name_the_operator(ops, name):
    A = ops[name]
    bad = torch.zeros((A.ishape[0] + 1,) + A.ishape[1:], dtype=torch.complex64)
    with pytest.raises(ShapeError, match=A.name):
        A(bad)
    with pytest.raises(ShapeError, match=A.name):
        A.adjoint(torch.zeros(A.ishape, dtype=torch.complex64))
    with pytest.raises(ShapeError, match="complex"):
        A.normal(torch.zeros(A.ishape))


@pytest.mark.parametrize("name", NAMES)
def test_sample_mask_restrict_and_frames(ops, name):
    A = ops[name]
    assert isinstance(A, LinearOperator)
    m = A.sample_mask
    assert m.dtype == torch.bool and tuple(m.shape) == (A.oshape[0],) + tuple(A.oshape[2:])
    # unmeasured samples are zero in the forward model
    y = A(random_input(A.ishape, seed=5))
    assert float(y.abs().amax(dim=1)[~m].sum()) == 0.0
    # restrict to half the samples: the mask shrinks and is the intersection
    half = torch.zeros_like(m)
    half.view(-1)[::2] = True
    B = A.restrict(half)
    assert type(B) is type(A) and torch.equal(B.sample_mask, m & half)
    # frames: operator of frame subset equals the rows of the full one
    idx = torch.tensor([A.ishape[0] - 1, 0])
    F = A.select_frames(idx)
    x = random_input(A.ishape, seed=6)
    assert F.ishape == (2,) + A.ishape[1:]
    assert rel(F(x[idx]), A(x)[idx]) < 1e-5
    assert rel(F.normal(x[idx]), A.normal(x)[idx]) < 1e-5
    # nothing changed in place
    assert torch.equal(A.sample_mask, m)


@pytest.mark.cuda
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(ops, name):
    """Same operator on CUDA (finufft variants: cufinufft against finufft, eps 1e-5):
    float32 FFT/NUFFT orderings differ, hence 1e-4."""
    from mridip.operators import available_backends

    if "[finufft]" in name and "finufft" not in available_backends("cuda"):
        pytest.skip("cufinufft is not installed (pip install cufinufft)")
    A, G = ops[name], REGISTRY[name]("cuda")
    x = random_input(A.ishape, seed=7)
    y = random_input(A.oshape, seed=8)
    assert rel(G(x.cuda()).cpu(), A(x)) < 1e-4
    assert rel(G.adjoint(y.cuda()).cpu(), A.adjoint(y)) < 1e-4
    assert rel(G.normal(x.cuda()).cpu(), A.normal(x)) < 1e-4
    assert G.to("cpu")(x).device.type == "cpu"
