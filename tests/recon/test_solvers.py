"""Tests of the generic solvers on small explicit problems (mridip/recon/solvers.py)."""

import torch

from mridip.operators.base import LinearOperator
from mridip.recon.solvers import DualTerm, conjugate_gradient, fista, pdhg, project_l2_ball, soft_threshold


class MatrixOperator(LinearOperator):
    """Test double: an explicit complex matrix acting on a flat vector of length n (ishape (n,))."""

    def __init__(self, matrix: torch.Tensor):
        super().__init__((matrix.shape[1],), (matrix.shape[0],))
        self.register_buffer("matrix", matrix)

    def _forward(self, x):
        return self.matrix @ x

    def _adjoint(self, y):
        return self.matrix.conj().T @ y


def _random_complex(*shape, generator):
    re = torch.randn(*shape, generator=generator, dtype=torch.float64)
    im = torch.randn(*shape, generator=generator, dtype=torch.float64)
    return torch.complex(re, im)


def test_cg_solves_random_spd_system():
    g = torch.Generator().manual_seed(1)
    A = MatrixOperator(_random_complex(40, 20, generator=g))
    b = _random_complex(20, generator=g)
    lam = 0.5
    x, info = conjugate_gradient(lambda v: A.normal(v) + lam * v, b, iterations=100, tol=1e-10)
    M = A.matrix.conj().T @ A.matrix + lam * torch.eye(20, dtype=torch.complex128)
    # float64 system with condition number ~ 10: CG reaches 1e-10 relative residual in <= n = 20
    # steps in exact arithmetic; allow a few extra for rounding.
    assert info["stop_reason"] == "tolerance"
    assert info["iterations"] <= 25
    assert torch.linalg.vector_norm(M @ x - b) / torch.linalg.vector_norm(b) < 1e-9
    # the quadratic objective never increases along CG iterates
    obj = torch.tensor(info["objective"])
    assert torch.all(obj[1:] <= obj[:-1] + 1e-9)
    x_ref = torch.linalg.solve(M, b)
    assert torch.allclose(x, x_ref, atol=1e-8)


def test_cg_zero_rhs_gives_zero():
    x, info = conjugate_gradient(lambda v: 2 * v, torch.zeros(5, dtype=torch.complex64))
    assert torch.count_nonzero(x) == 0 and info["iterations"] == 0


def test_fista_l1_denoising_reaches_soft_threshold():
    """min 0.5||x - b||^2 + lam ||x||_1 has the closed-form minimiser soft(b, lam)."""
    g = torch.Generator().manual_seed(2)
    b = _random_complex(200, generator=g).to(torch.complex64)
    lam = 0.8
    objective = lambda x: float(0.5 * (x - b).abs().pow(2).sum() + lam * x.abs().sum())
    # step 0.5 < 1/L = 1 so that the test exercises more than one iteration
    x, info = fista(lambda x: x - b, lambda v, s: soft_threshold(v, s * lam), torch.zeros_like(b), 0.5,
                    iterations=500, tol=1e-7, objective=objective)
    expected = soft_threshold(b, lam)
    assert info["stop_reason"] == "tolerance"
    assert (x - expected).abs().max() < 1e-5  # float32 iterates, tol 1e-7 on the relative change
    assert info["objective"][-1] < info["objective"][0]
    assert abs(info["objective"][-1] - objective(expected)) < 1e-4 * objective(expected)


def test_fista_lasso_matches_optimality_conditions():
    """Small lasso with a matrix operator: the solution satisfies the subgradient conditions."""
    g = torch.Generator().manual_seed(3)
    A = MatrixOperator(_random_complex(30, 15, generator=g).to(torch.complex64))
    y = _random_complex(30, generator=g).to(torch.complex64)
    lam = 15.0  # about the size of |A^H y| so that some entries vanish and some do not
    L = float(torch.linalg.matrix_norm(A.matrix, ord=2) ** 2)
    x, info = fista(lambda x: A.normal(x) - A.adjoint(y), lambda v, s: soft_threshold(v, s * lam),
                    torch.zeros(15, dtype=torch.complex64), 1.0 / L, iterations=3000, tol=1e-8)
    grad = A.normal(x) - A.adjoint(y)
    on = x.abs() > 1e-4
    # KKT: grad = -lam x/|x| on the support, |grad| <= lam off it (float32: 1e-3 relative slack)
    assert on.any() and (~on).any()
    assert torch.allclose(grad[on], -lam * x[on] / x[on].abs(), atol=1e-3 * lam)
    assert torch.all(grad[~on].abs() <= lam * (1 + 1e-3))


def test_pdhg_l1_denoising_reaches_soft_threshold():
    """Same closed-form problem, l1 term handled through its conjugate (projection on l-inf ball)."""
    g = torch.Generator().manual_seed(4)
    b = _random_complex(100, generator=g).to(torch.complex64)
    lam = 0.8
    term = DualTerm(
        apply=lambda x: x, adjoint=lambda v: v,
        prox_conj=lambda v, s: v / torch.clamp(v.abs() / lam, min=1.0), norm=1.0,
        value=lambda kx: float(lam * kx.abs().sum()),
    )
    f_and_grad = lambda x: (float(0.5 * (x - b).abs().pow(2).sum()), x - b)
    x, info = pdhg(f_and_grad, 1.0, [term], torch.zeros_like(b), iterations=2000, tol=1e-7)
    assert (x - soft_threshold(b, lam)).abs().max() < 1e-4
    obj = info["objective"]
    assert obj[-1] < obj[0]


def test_pdhg_tv_denoising_matches_fista_on_dual():
    """1-D TV denoising: PDHG's primal solution equals the one from FISTA on the dual problem.

    min_x 0.5||x - b||^2 + lam ||D x||_1 (D periodic forward difference) has the dual
    min_{|v| <= lam} 0.5||b - D^H v||^2 with x = b - D^H v: an independent solver (projected
    FISTA) on a different formulation.
    """
    g = torch.Generator().manual_seed(5)
    n, lam = 64, 0.5
    steps = torch.repeat_interleave(torch.tensor([0.0, 2.0, -1.0, 1.0]), n // 4)
    b = steps + 0.3 * torch.randn(n, generator=g)
    D = lambda x: torch.roll(x, -1) - x
    DH = lambda v: torch.roll(v, 1) - v
    term = DualTerm(D, DH, lambda v, s: torch.clamp(v, -lam, lam), 2.0, lambda kx: float(lam * kx.abs().sum()))
    x, info = pdhg(lambda x: (float(0.5 * (x - b).pow(2).sum()), x - b), 1.0, [term], torch.zeros(n),
                   iterations=5000, tol=1e-8)
    v, _ = fista(lambda v: -D(b - DH(v)), lambda w, s: torch.clamp(w, -lam, lam), torch.zeros(n), 0.25,
                 iterations=5000, tol=1e-9)
    x_dual = b - DH(v)
    # both are float32 iterates stopped at ~1e-8 relative change
    assert (x - x_dual).abs().max() < 1e-3
    obj = info["objective"]
    assert obj[-1] < obj[0] and min(obj) >= obj[-1] - 1e-4 * abs(obj[-1])


def test_project_l2_ball_groups():
    v = torch.tensor([[3.0, 0.1], [4.0, 0.0]])  # columns are the 2-vectors (dim 0)
    p = project_l2_ball(v, 1.0, dim=0)
    assert torch.allclose(p[:, 0], torch.tensor([0.6, 0.8]))
    assert torch.allclose(p[:, 1], v[:, 1])
