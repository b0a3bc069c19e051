"""Compressed-sensing baselines on the package's operators (torch, CPU and CUDA).

Every method takes a :class:`~mridip.operators.base.LinearOperator` ``A`` (``x (T, Y, X)
-> y`` in ``A.oshape``) and the measured k-space ``y`` such that the data term is
``||A x - y||^2`` (for a :class:`~mridip.operators.radial.RadialSense` with sample weights
``w`` that means ``y = sqrt(w) * y_measured``; with binary weights / masks the measured data
can be passed as they are, because the forward model is zero where ``w = 0``). Images are
complex64 ``(T, Y, X)`` on ``A``'s device.

Regularisation weights are *relative*: each method multiplies the protocol's ``lam`` by a
data-derived scale (stated per method; by default ``scale = max |A^H y|``) so one value
works across files, scanners and intensity scalings. ``info["lam_effective"]`` reports the
absolute weight used.

Every solver returns ``(x, info)`` with ``info`` holding ``iterations``, ``stop_reason``
(``"tolerance"`` | ``"max_iterations"``), ``objective`` (list of floats, the method's
objective with the effective weights), ``seconds``. Stopping rules, never a comparison
with a reference: ADMM (the TV family) primal and dual residuals below ``tol``; FISTA
(l1-wavelet, L+S) relative change of the image ``||x_k - x_{k-1}|| / ||x_k|| < tol``;
CG-SENSE relative residual.

Methods (see docs/baselines.md): :func:`gridding`, :func:`cg_sense`, :func:`l1_wavelet`,
:func:`tv`, :func:`temporal_tv`, :func:`spatiotemporal_tv`, :func:`lplus_s`; lambda by
self-validation on held-out k-space: :func:`tune_lambda`; :data:`METHODS` maps protocol
names to callables.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import torch

from mridip.errors import ShapeError
from mridip.operators.base import LinearOperator, max_eigenvalue
from mridip.recon.solvers import (
    DualTerm, SplitTerm, admm, conjugate_gradient, fista, group_soft_threshold, pdhg, project_l2_ball,
    soft_threshold,
)
from mridip.wavelets import default_levels, wavedec2, waverec2

__all__ = [
    "gridding", "cg_sense", "l1_wavelet", "tv", "temporal_tv", "spatiotemporal_tv", "lplus_s",
    "tune_lambda", "data_scale", "METHODS",
]

Tensor = torch.Tensor

#: Safety factor on the power-iteration estimate of ||A||^2 (it approaches from below).
_LIPSCHITZ_MARGIN = 1.05

# Defaults of the iterative baselines, chosen from the convergence study in docs/baselines.md
# (64 x 64 x 8 radial and Cartesian cines: the default stop lies within 0.1 dB PSNR of a 5x
# longer run).
TV_ITERATIONS = 500
TV_TOL = 1e-3
TV_RHO = 0.5
CG_INNER = 5
WARM_START = 5
WAVELET_ITERATIONS = 150
WAVELET_TOL = 1e-4
LPLUSS_ITERATIONS = 200
LPLUSS_TOL = 1e-4


# ---------------------------------------------------------------------------- helpers
def _check(A: LinearOperator, y: Tensor, method: str) -> None:
    if not isinstance(A, LinearOperator):
        raise ShapeError(f"{method}: A must be a mridip LinearOperator, got {type(A).__name__}")
    if not torch.is_tensor(y) or tuple(y.shape) != tuple(A.oshape):
        raise ShapeError(
            f"{method}: k-space y has shape {tuple(getattr(y, 'shape', ()))}, but the operator "
            f"{A.name} expects {tuple(A.oshape)}: pass the k-space the operator was built for"
        )
    if not y.is_complex():
        raise ShapeError(f"{method}: k-space y must be complex (complex64), got {y.dtype}")
    if len(A.ishape) != 3:
        raise ShapeError(f"{method}: the operator's image shape must be (T, Y, X), got {A.ishape}")


def _check_lam(name: str, value: float, method: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ShapeError(f"{method}: {name} must be a finite number >= 0, got {value}")
    return value


def data_scale(A: LinearOperator, y: Tensor) -> float:
    """The intensity scale of the data, ``max |A^H y|``, that relative lambdas multiply.

    Returns 1.0 for all-zero data (so lambdas stay finite).
    """
    s = float(A.adjoint(y).abs().max())
    return s if s > 0 else 1.0


class _LeastSquares:
    """``f(x) = 0.5 ||A x - y||^2`` with its gradient ``A^H A x - A^H y`` on ``A.normal``.

    The value comes from the same normal product as the gradient:
    ``f = 0.5 Re<x, A^H A x> - Re<x, A^H y> + 0.5 ||y||^2`` (no extra forward).
    """

    def __init__(self, A: LinearOperator, y: Tensor):
        self.A = A
        self.b = A.adjoint(y)
        self.c = 0.5 * float(torch.linalg.vector_norm(y) ** 2)

    def value_grad(self, x: Tensor) -> tuple[float, Tensor]:
        nx = self.A.normal(x)
        val = 0.5 * torch.vdot(x.reshape(-1), nx.reshape(-1)).real - torch.vdot(x.reshape(-1), self.b.reshape(-1)).real
        return float(val) + self.c, nx - self.b

    def grad(self, x: Tensor) -> Tensor:
        return self.A.normal(x) - self.b

    def value(self, x: Tensor) -> float:
        return self.value_grad(x)[0]


def _lipschitz(A: LinearOperator) -> float:
    return _LIPSCHITZ_MARGIN * max(max_eigenvalue(A), 1e-12)


def _grad_s(x: Tensor) -> Tensor:
    """Periodic forward differences along Y and X: (T, Y, X) -> (2, T, Y, X); ||D||^2 <= 8."""
    return torch.stack([torch.roll(x, -1, dims=-2) - x, torch.roll(x, -1, dims=-1) - x])


def _grad_s_adj(v: Tensor) -> Tensor:
    return (torch.roll(v[0], 1, dims=-2) - v[0]) + (torch.roll(v[1], 1, dims=-1) - v[1])


def _grad_t(x: Tensor) -> Tensor:
    """Periodic forward difference along T (cine is periodic; BART's TV is circular too); ||D_t||^2 <= 4."""
    return torch.roll(x, -1, dims=0) - x


def _grad_t_adj(v: Tensor) -> Tensor:
    return torch.roll(v, 1, dims=0) - v


def _tv_s_term(lam: float) -> DualTerm:
    """Isotropic spatial TV ``lam sum_{t,y,x} sqrt(|D_y x|^2 + |D_x x|^2)``."""
    return DualTerm(
        apply=_grad_s, adjoint=_grad_s_adj, norm=math.sqrt(8.0),
        prox_conj=lambda v, s: project_l2_ball(v, lam, dim=0),
        value=lambda g: float(lam * torch.linalg.vector_norm(g, dim=0).sum()),
    )


def _tv_t_term(lam: float) -> DualTerm:
    """Temporal TV ``lam ||D_t x||_1`` (complex modulus per voxel and frame)."""
    return DualTerm(
        apply=_grad_t, adjoint=_grad_t_adj, norm=2.0,
        prox_conj=lambda v, s: v / torch.clamp(v.abs() / lam, min=1.0),
        value=lambda g: float(lam * g.abs().sum()),
    )


def _x0(A: LinearOperator, x0: Tensor | None, method: str) -> Tensor:
    if x0 is None:
        return torch.zeros(A.ishape, dtype=torch.complex64, device=A.device)
    if tuple(x0.shape) != tuple(A.ishape):
        raise ShapeError(f"{method}: x0 has shape {tuple(x0.shape)}, expected the image shape {A.ishape}")
    return x0.to(device=A.device, dtype=torch.complex64)


# ---------------------------------------------------------------------------- gridding
@torch.no_grad()
def gridding(A: LinearOperator, y: Tensor, *, dcf: Tensor | None = None) -> Tensor:
    """Density-compensated adjoint, scaled to unit gain for smooth objects.

    ``x_t = [A^H (d * y)]_t / p_t`` with ``d`` the density compensation (broadcast over
    coils) and the per-frame gain ``p_t = Re<u, A^H(d * A u)>_t / ||u||^2`` measured
    *through the operator* on a smooth probe ``u`` (a Gaussian of standard deviation
    ``min(Y, X) / 8`` at the image centre, the same in every frame). Dividing by ``p_t``
    makes the estimate unbiased (least-squares gain 1) for the low-frequency content of
    the image whatever the dcf's own scale or normalisation convention, the number of
    samples, and the coils' gain; for fully sampled Cartesian data with
    ``sum_c |S_c|^2 = 1`` it is the exact inverse. Aliasing of undersampled data remains
    (it is the baseline every iterative method must beat). Cost: one extra forward and
    adjoint.

    Parameters
    ----------
    A : LinearOperator
        ``(T, Y, X) -> A.oshape``.
    y : torch.Tensor
        complex64 k-space ``A.oshape``.
    dcf : torch.Tensor, optional
        real, ``>= 0``, the k-space shape without the coil axis: ``(T, Ky, Kx)`` Cartesian or
        ``(T, K)`` radial. Default: ones for Cartesian (zero-filled), the ramp
        :func:`mridip.trajectories.ramp_dcf` for an operator with a ``trajectory``.

    Returns
    -------
    torch.Tensor
        complex64 ``(T, Y, X)``.
    """
    _check(A, y, "gridding")
    kshape = (A.oshape[0],) + tuple(A.oshape[2:])
    if dcf is None:
        if hasattr(A, "trajectory"):
            from mridip.trajectories import ramp_dcf

            dcf = ramp_dcf(A.trajectory, tuple(A.ishape[1:]))
        else:
            dcf = torch.ones(kshape, device=y.device)
    if not torch.is_tensor(dcf) or tuple(dcf.shape) != kshape:
        raise ShapeError(
            f"gridding: dcf must be a real tensor of the k-space shape without coils {kshape}, "
            f"got {tuple(getattr(dcf, 'shape', ()))}"
        )
    d = dcf.to(device=y.device, dtype=torch.float32).unsqueeze(1)  # (T, 1, ...) over coils
    x = A.adjoint(y * d)
    t, ny, nx = A.ishape
    yy = torch.arange(ny, device=A.device, dtype=torch.float32) - ny // 2
    xx = torch.arange(nx, device=A.device, dtype=torch.float32) - nx // 2
    sd = min(ny, nx) / 8.0
    u = torch.exp(-(yy[:, None] ** 2 + xx[None, :] ** 2) / (2 * sd * sd)).to(torch.complex64)
    u = u.expand(A.ishape).contiguous()  # (T, Y, X)
    gain = (u.conj() * A.adjoint(A(u) * d)).real.sum(dim=(-2, -1)) / (u.abs() ** 2).sum(dim=(-2, -1))
    peak = torch.where(gain > 0, gain, torch.ones_like(gain))  # (T,)
    return x / peak[:, None, None]


# ---------------------------------------------------------------------------- CG-SENSE
@torch.no_grad()
def cg_sense(
    A: LinearOperator,
    y: Tensor,
    *,
    lam: float = 0.0,
    iterations: int = 50,
    tol: float = 1e-6,
    x0: Tensor | None = None,
) -> tuple[Tensor, dict]:
    """CG-SENSE (Pruessmann et al., MRM 46:638, 2001), optionally Tikhonov-regularised.

    Objective: ``min_x ||A x - y||^2 + lam_eff ||x||^2`` solved by conjugate gradients on
    ``(A^H A + lam_eff I) x = A^H y`` with ``A.normal`` (Toeplitz for radial).
    ``lam_eff = lam * L`` with ``L`` the largest eigenvalue of ``A^H A`` (power iteration),
    so ``lam`` is relative to the operator's gain (the Tikhonov term is quadratic in
    ``x``, so the data's intensity scale cancels; ``lam = 0`` is plain CG-SENSE, whose
    regularisation is the iteration count).

    Stopping rule: relative residual ``||A^H y - (A^H A + lam_eff) x|| / ||A^H y|| < tol``
    or ``iterations``.

    Returns
    -------
    x, info
        ``x`` complex64 ``(T, Y, X)``; ``info["objective"]`` holds
        ``||A x_k - y||^2 + lam_eff ||x_k||^2`` per iteration.
    """
    _check(A, y, "cg_sense")
    lam = _check_lam("lam", lam, "cg_sense")
    lam_eff = lam * _lipschitz(A) if lam > 0 else 0.0
    b = A.adjoint(y)
    normal = (lambda v: A.normal(v) + lam_eff * v) if lam_eff > 0 else A.normal
    x, info = conjugate_gradient(normal, b, x0=None if x0 is None else _x0(A, x0, "cg_sense"),
                                 iterations=iterations, tol=tol)
    ynorm2 = float(torch.linalg.vector_norm(y) ** 2)
    # the CG quadratic q = 0.5 x^H M x - Re b^H x relates to the objective by 2 q + ||y||^2
    info["objective"] = [2.0 * q + ynorm2 for q in info["objective"]]
    info["lam_effective"] = lam_eff
    return x, info


# ---------------------------------------------------------------------------- l1-wavelet
@torch.no_grad()
def l1_wavelet(
    A: LinearOperator,
    y: Tensor,
    *,
    lam: float,
    iterations: int = WAVELET_ITERATIONS,
    tol: float = WAVELET_TOL,
    wavelet: str = "db4",
    levels: int | None = None,
    warm_start: int = WARM_START,
    x0: Tensor | None = None,
) -> tuple[Tensor, dict]:
    """l1-wavelet compressed sensing (Lustig, Donoho, Pauly, MRM 58:1182, 2007) by FISTA.

    Objective: ``min_x 0.5 ||A x - y||^2 + lam_eff sum_t ||Psi x_t||_1`` with ``Psi`` the
    orthogonal 2-D wavelet transform of each frame (:mod:`mridip.wavelets`, periodic
    extension) and ``lam_eff = lam * max |A^H y|``. Solver: FISTA (Beck & Teboulle, SIAM
    J. Imaging Sci. 2009), step ``1 / L``, ``L`` = largest eigenvalue of ``A^H A`` (power
    iteration, +5 %); the prox is exact because ``Psi`` is orthogonal:
    ``prox(v) = Psi^H soft(Psi v, step * lam_eff)``. All coefficients, the coarse
    approximation band included, are thresholded (as BART's ``pics -l1`` does).

    Start: ``x0`` or ``warm_start`` CG-SENSE steps. Stopping rule: relative change of ``x``
    below ``tol`` or ``iterations``.

    Returns
    -------
    x, info
        ``x`` complex64 ``(T, Y, X)``; ``info["objective"]`` per iteration (one extra
        ``A.normal`` per iteration to evaluate it), ``info["lam_effective"]``, ``info["levels"]``.
    """
    _check(A, y, "l1_wavelet")
    lam = _check_lam("lam", lam, "l1_wavelet")
    levels = default_levels(A.ishape[1:], wavelet) if levels is None else int(levels)
    lam_eff = lam * data_scale(A, y)
    ls = _LeastSquares(A, y)
    L = _lipschitz(A)

    def prox(v: Tensor, step: float) -> Tensor:
        return waverec2(soft_threshold(wavedec2(v, wavelet, levels), step * lam_eff), wavelet, levels)

    def objective(x: Tensor) -> float:
        return ls.value(x) + lam_eff * float(wavedec2(x, wavelet, levels).abs().sum())

    start = _warm_start(A, y, x0, int(warm_start), "l1_wavelet")
    x, info = fista(ls.grad, prox, start, 1.0 / L, iterations=iterations, tol=tol, objective=objective)
    info.update(lam_effective=lam_eff, levels=levels, lipschitz=L)
    return x, info


# ---------------------------------------------------------------------------- TV family
def _tv_s_split(lam: float) -> SplitTerm:
    """Isotropic spatial TV as an ADMM split: ``z = D_s x``, prox = group soft thresholding."""
    return SplitTerm(
        apply=_grad_s, adjoint=_grad_s_adj,
        prox=lambda v, t: group_soft_threshold(v, t * lam, dim=0),
        value=lambda g: float(lam * torch.linalg.vector_norm(g, dim=0).sum()),
    )


def _tv_t_split(lam: float) -> SplitTerm:
    """Temporal TV as an ADMM split: ``z = D_t x``, prox = complex soft thresholding."""
    return SplitTerm(
        apply=_grad_t, adjoint=_grad_t_adj,
        prox=lambda v, t: soft_threshold(v, t * lam),
        value=lambda g: float(lam * g.abs().sum()),
    )


def _warm_start(A: LinearOperator, y: Tensor, x0: Tensor | None, iterations: int, method: str) -> Tensor:
    """``x0`` if given, else ``iterations`` CG-SENSE steps (zeros when ``iterations = 0``)."""
    if x0 is not None:
        return _x0(A, x0, method)
    if iterations <= 0:
        return _x0(A, None, method)
    return conjugate_gradient(A.normal, A.adjoint(y), iterations=iterations, tol=1e-6)[0]


def _tv_solve(A, y, terms_admm, terms_pdhg, *, solver, iterations, tol, rho, cg_iterations,
              warm_start, x0, method, **extra) -> tuple[Tensor, dict]:
    if solver not in ("admm", "pdhg"):
        raise ShapeError(f"{method}: solver must be 'admm' or 'pdhg', got {solver!r}")
    rho = _check_lam("rho", rho, method)
    ls = _LeastSquares(A, y)
    L = _lipschitz(A)
    start = _warm_start(A, y, x0, int(warm_start), method)
    if solver == "pdhg":
        x, info = pdhg(ls.value_grad, L, terms_pdhg, start, iterations=iterations, tol=tol)
        info.update(lipschitz=L, **extra)
        return x, info
    if rho <= 0:
        raise ShapeError(f"{method}: rho must be > 0, got {rho}")

    def data_value(x: Tensor, mx: Tensor) -> float:
        return float(0.5 * torch.vdot(x.reshape(-1), mx.reshape(-1)).real
                     - torch.vdot(x.reshape(-1), ls.b.reshape(-1)).real) + ls.c

    x, info = admm(A.normal, ls.b, terms_admm, start, rho=rho * L, data_value=data_value,
                   iterations=iterations, cg_iterations=int(cg_iterations), tol=tol)
    info.update(lipschitz=L, **extra)
    return x, info


_TV_SOLVER_DOC = """
    Solver (``solver="admm"``, default): ADMM (Boyd et al., Found. Trends Mach. Learn. 2011)
    with the split ``z = D x`` as in BART's ``pics``: x-update by ``cg_iterations``
    warm-started CG steps on ``(A^H A + rho D^H D) x = A^H y + rho D^H (z - u)`` with
    ``A.normal`` (Toeplitz for radial), z-update by (group) soft thresholding at
    ``lam_eff / rho``, scaled dual update; ``rho = rho_rel * lambda_max(A^H A)`` at the start,
    then residual balancing (Boyd 3.4.1). Start: ``x0`` or ``warm_start`` CG-SENSE steps.
    ``solver="pdhg"`` runs the explicit primal-dual iteration (Condat 2013 / Vu 2013) on the
    same objective instead (slow on radial data: kept for cross-checks).

    Stopping rule: ADMM primal and dual residuals ``||D x - z|| <= tol max(||D x||, ||z||)``
    and ``||rho D^H (z - z_old)|| <= tol ||rho D^H u||`` (Boyd 3.3.1), or ``iterations``
    (PDHG: relative change of ``x`` below ``tol``). ``info["objective"]`` per outer iteration.
"""


@torch.no_grad()
def tv(
    A: LinearOperator,
    y: Tensor,
    *,
    lam: float,
    iterations: int = TV_ITERATIONS,
    tol: float = TV_TOL,
    rho: float = TV_RHO,
    cg_iterations: int = CG_INNER,
    warm_start: int = WARM_START,
    solver: str = "admm",
    x0: Tensor | None = None,
) -> tuple[Tensor, dict]:
    """Spatial isotropic total variation, frame by frame (Rudin, Osher, Fatemi 1992; Block et al., MRM 2007).

    Objective: ``min_x 0.5 ||A x - y||^2 + lam_eff sum_{t,y,x} sqrt(|D_y x|^2 + |D_x x|^2)``
    with periodic forward differences and ``lam_eff = lam * max |A^H y|``.
    """
    _check(A, y, "tv")
    lam_eff = _check_lam("lam", lam, "tv") * data_scale(A, y)
    return _tv_solve(A, y, [_tv_s_split(lam_eff)], [_tv_s_term(lam_eff)], solver=solver,
                     iterations=iterations, tol=tol, rho=rho, cg_iterations=cg_iterations,
                     warm_start=warm_start, x0=x0, method="tv", lam_effective=lam_eff)


@torch.no_grad()
def temporal_tv(
    A: LinearOperator,
    y: Tensor,
    *,
    lam: float,
    iterations: int = TV_ITERATIONS,
    tol: float = TV_TOL,
    rho: float = TV_RHO,
    cg_iterations: int = CG_INNER,
    warm_start: int = WARM_START,
    solver: str = "admm",
    x0: Tensor | None = None,
) -> tuple[Tensor, dict]:
    """Temporal total variation (GRASP: Feng et al., MRM 72:707, 2014).

    Objective: ``min_x 0.5 ||A x - y||^2 + lam_eff ||D_t x||_1``, ``D_t x = x_{t+1} - x_t``
    (periodic in ``t``: a cine covers one cardiac cycle; BART's TV is circular too),
    ``lam_eff = lam * max |A^H y|``. GRASP itself used nonlinear CG on a smoothed l1; the
    minimiser here is that of the exact (non-smooth) objective, the one of
    ``bart pics -R T:1024:0:lam -w max|A^H y|``.
    """
    _check(A, y, "temporal_tv")
    lam_eff = _check_lam("lam", lam, "temporal_tv") * data_scale(A, y)
    return _tv_solve(A, y, [_tv_t_split(lam_eff)], [_tv_t_term(lam_eff)], solver=solver,
                     iterations=iterations, tol=tol, rho=rho, cg_iterations=cg_iterations,
                     warm_start=warm_start, x0=x0, method="temporal_tv", lam_effective=lam_eff)


@torch.no_grad()
def spatiotemporal_tv(
    A: LinearOperator,
    y: Tensor,
    *,
    lam_s: float,
    lam_t: float,
    lam: float = 1.0,
    iterations: int = TV_ITERATIONS,
    tol: float = TV_TOL,
    rho: float = TV_RHO,
    cg_iterations: int = CG_INNER,
    warm_start: int = WARM_START,
    solver: str = "admm",
    x0: Tensor | None = None,
) -> tuple[Tensor, dict]:
    """Spatial (isotropic) plus temporal total variation.

    Objective: ``min_x 0.5 ||A x - y||^2 + lam_s_eff TV_s(x) + lam_t_eff ||D_t x||_1`` with
    the terms of :func:`tv` and :func:`temporal_tv`; ``lam_s_eff = lam * lam_s * max |A^H y|``,
    ``lam_t_eff = lam * lam_t * max |A^H y|``: ``lam_s : lam_t`` fixes the balance and ``lam``
    (default 1) scales both, the one knob :func:`tune_lambda` and protocols tune.
    """
    _check(A, y, "spatiotemporal_tv")
    scale = data_scale(A, y) * _check_lam("lam", lam, "spatiotemporal_tv")
    ls_eff = _check_lam("lam_s", lam_s, "spatiotemporal_tv") * scale
    lt_eff = _check_lam("lam_t", lam_t, "spatiotemporal_tv") * scale
    return _tv_solve(A, y, [_tv_s_split(ls_eff), _tv_t_split(lt_eff)],
                     [_tv_s_term(ls_eff), _tv_t_term(lt_eff)], solver=solver,
                     iterations=iterations, tol=tol, rho=rho, cg_iterations=cg_iterations,
                     warm_start=warm_start, x0=x0, method="spatiotemporal_tv",
                     lam_effective=(ls_eff, lt_eff))


for _f in (tv, temporal_tv, spatiotemporal_tv):
    _f.__doc__ += _TV_SOLVER_DOC


# ---------------------------------------------------------------------------- L + S
def _svt(x: Tensor, threshold: float) -> tuple[Tensor, int]:
    """Singular value thresholding of the Casorati matrix ``(Y*X, T)`` of ``x (T, Y, X)``."""
    t = x.shape[0]
    cas = x.reshape(t, -1).transpose(0, 1)  # (Y*X, T)
    u, s, vh = torch.linalg.svd(cas, full_matrices=False)
    s = torch.clamp(s - threshold, min=0.0)
    rank = int((s > 0).sum())
    out = (u * s.to(u.dtype)) @ vh
    return out.transpose(0, 1).reshape(x.shape), rank


def _nuclear(x: Tensor) -> float:
    return float(torch.linalg.svdvals(x.reshape(x.shape[0], -1)).sum())


def _fft_t(x: Tensor) -> Tensor:
    return torch.fft.fft(x, dim=0, norm="ortho")


def _ifft_t(x: Tensor) -> Tensor:
    return torch.fft.ifft(x, dim=0, norm="ortho")


@torch.no_grad()
def lplus_s(
    A: LinearOperator,
    y: Tensor,
    *,
    lam_l: float,
    lam_s: float,
    lam: float = 1.0,
    iterations: int = LPLUSS_ITERATIONS,
    tol: float = LPLUSS_TOL,
    sparsity: str = "temporal-fft",
    warm_start: int = WARM_START,
    x0: Tensor | None = None,
) -> tuple[Tensor, dict]:
    """Low-rank plus sparse decomposition (Otazo, Candes, Sodickson, MRM 73:1125, 2015).

    Objective::

        min_{L,S} 0.5 ||A (L + S) - y||^2 + lam_l_eff ||C(L)||_* + lam_s_eff ||T S||_1

    with ``C(L)`` the Casorati matrix ``(Y*X, T)`` and ``T`` the orthonormal temporal FFT
    (``sparsity="temporal-fft"``) or the periodic temporal difference ``D_t``
    (``"temporal-tv"``). Weights: ``lam_l_eff = lam_l * sigma_max(C(A^H y))`` (singular
    values are thresholded relative to the largest one of the data's adjoint image) and
    ``lam_s_eff = lam_s * max |F_t A^H y|`` (temporal-fft) or ``lam_s * max |A^H y|``
    (temporal-tv).

    Solver: Otazo's algorithm is proximal gradient (ISTA) on the pair ``(L, S)`` with a
    unit step (singular value thresholding of ``L - grad``, soft thresholding of
    ``T(S - grad)``). Here: "temporal-fft" runs the same proximal-gradient iteration
    accelerated by FISTA (Beck & Teboulle 2009) with step ``1 / (2 ||A||^2)``, the
    Lipschitz constant of the joint gradient (both blocks share ``A^H(A(L+S) - y)``), so
    convergence is guaranteed; "temporal-tv" (no closed-form prox) runs PDHG (Condat-Vu)
    with the SVT as the prox of ``g`` and ``D_t`` as the dual term.

    Start: ``L = x0`` or ``warm_start`` CG-SENSE steps, ``S = 0`` (Otazo et al. start from
    ``L = A^H y``). Stopping rule: relative change of ``(L, S)`` below ``tol`` or ``iterations``.

    Returns
    -------
    x, info
        ``x = L + S`` complex64 ``(T, Y, X)``; ``info["low_rank"]`` and ``info["sparse"]``
        ``(T, Y, X)``, ``info["rank"]`` (rank of L after the last SVT),
        ``info["lam_effective"] = (lam_l_eff, lam_s_eff)``.
    """
    _check(A, y, "lplus_s")
    lam = _check_lam("lam", lam, "lplus_s")
    lam_l = _check_lam("lam_l", lam_l, "lplus_s") * lam
    lam_s = _check_lam("lam_s", lam_s, "lplus_s") * lam
    if sparsity not in ("temporal-fft", "temporal-tv"):
        raise ShapeError(f"lplus_s: sparsity must be 'temporal-fft' or 'temporal-tv', got {sparsity!r}")
    ls = _LeastSquares(A, y)
    b = ls.b
    t = A.ishape[0]
    sigma_max = float(torch.linalg.svdvals(b.reshape(t, -1))[0]) or 1.0
    lam_l_eff = lam_l * sigma_max
    L_A = _lipschitz(A)
    rank = [0]
    # Otazo et al. start from L = the adjoint image, S = 0; a few CG-SENSE steps are a
    # better-conditioned version of the same start
    start = _warm_start(A, y, x0, int(warm_start), "lplus_s")
    z0 = torch.stack([start, torch.zeros_like(start)])

    def grad_pair(z: Tensor) -> Tensor:
        g = A.normal(z[0] + z[1]) - b
        return torch.stack([g, g])

    if sparsity == "temporal-fft":
        lam_s_eff = lam_s * (float(_fft_t(b).abs().max()) or 1.0)

        def prox(v: Tensor, step: float) -> Tensor:
            low, rank[0] = _svt(v[0], step * lam_l_eff)
            sparse = _ifft_t(soft_threshold(_fft_t(v[1]), step * lam_s_eff))
            return torch.stack([low, sparse])

        def objective(z: Tensor) -> float:
            return (ls.value(z[0] + z[1]) + lam_l_eff * _nuclear(z[0])
                    + lam_s_eff * float(_fft_t(z[1]).abs().sum()))

        z, info = fista(grad_pair, prox, z0, 1.0 / (2.0 * L_A), iterations=iterations, tol=tol,
                        objective=objective)
    else:
        lam_s_eff = lam_s * data_scale(A, y)

        def f_and_grad(z: Tensor) -> tuple[float, Tensor]:
            val, g = ls.value_grad(z[0] + z[1])
            return val, torch.stack([g, g])

        def prox_g(v: Tensor, step: float) -> Tensor:
            low, rank[0] = _svt(v[0], step * lam_l_eff)
            return torch.stack([low, v[1]])

        # D_t acts on the S block only; the 2 x 2 block structure keeps ||K|| = ||D_t|| <= 2
        term = DualTerm(
            apply=lambda z: _grad_t(z[1]),
            adjoint=lambda v: torch.stack([torch.zeros_like(v), _grad_t_adj(v)]),
            prox_conj=lambda v, s: v / torch.clamp(v.abs() / lam_s_eff, min=1.0), norm=2.0,
            value=lambda g: float(lam_s_eff * g.abs().sum()),
        )
        z, info = pdhg(f_and_grad, 2.0 * L_A, [term], z0, prox_g=prox_g,
                       g_value=lambda z: lam_l_eff * _nuclear(z[0]), iterations=iterations, tol=tol)
    info.update(low_rank=z[0], sparse=z[1], rank=rank[0], lam_effective=(lam_l_eff, lam_s_eff), lipschitz=L_A)
    return z[0] + z[1], info


# ---------------------------------------------------------------------------- tuning
@torch.no_grad()
def tune_lambda(
    solve: Callable[[LinearOperator, Tensor, float], Tensor],
    A: LinearOperator,
    y: Tensor,
    lams: Sequence[float],
    *,
    holdout: float = 0.1,
    seed: int = 0,
) -> tuple[float, list[tuple[float, float]]]:
    """Pick lambda by self-validation on held-out k-space (no ground truth).

    A random fraction ``holdout`` of the measured samples (``A.sample_mask``), drawn
    separately in every frame (stratified: each frame loses the same fraction), is set
    aside; for each ``lam`` the image is reconstructed from the rest with
    ``A.restrict(train)`` and scored on the held-out samples::

        val_error(lam) = ||A_val x_lam - y_val||^2 / ||y_val||^2

    with ``A_val = A.restrict(val)``, ``y_val = y`` on the held-out samples and zero
    elsewhere (the k-space analogue of the SSDU / hold-out validation of Yaman et al.,
    MRM 2020, and of the "discrepancy on unseen data" rule). The smallest error wins.

    Parameters
    ----------
    solve : callable
        ``solve(A, y, lam) -> x (T, Y, X)``, e.g.
        ``lambda A, y, lam: temporal_tv(A, y, lam=lam)[0]``.
    A, y
        The operator and its measured k-space.
    lams : sequence of float
        Candidate relative lambdas.
    holdout : float
        Fraction in (0, 0.5] of each frame's measured samples to hold out.
    seed : int
        Seed of the hold-out draw.

    Returns
    -------
    best_lam, table
        ``table``: list of ``(lam, val_error)`` in the order of ``lams``.
    """
    _check(A, y, "tune_lambda")
    lams = [float(v) for v in lams]
    if not lams:
        raise ShapeError("tune_lambda: lams is empty: give at least one candidate lambda")
    if not 0.0 < holdout <= 0.5:
        raise ShapeError(f"tune_lambda: holdout must lie in (0, 0.5], got {holdout}")
    # the same stratified split as the fitting loop's stopping rule, and the same score
    from mridip.recon.fit import KSpaceLoss, split_holdout

    train, val = split_holdout(A.sample_mask.bool(), holdout, seed)
    if not bool(val.any()):
        raise ShapeError("tune_lambda: too few measured samples to hold any out: raise holdout or skip tuning")
    A_train = A.restrict(train)
    y_train = y * train.unsqueeze(1).to(y.dtype)  # (T, 1, ...) broadcast over coils
    score = KSpaceLoss(A.restrict(val), y, path="forward")  # ||A_val x - y_val||^2 / ||y_val||^2
    frames = torch.arange(A.ishape[0], device=y.device)
    table: list[tuple[float, float]] = []
    for lam in lams:
        x = solve(A_train, y_train, lam)
        table.append((lam, float(score(x.to(torch.complex64), frames))))
    best = min(table, key=lambda row: row[1])[0]
    return best, table


def _gridding_method(A: LinearOperator, y: Tensor, **kw) -> tuple[Tensor, dict]:
    t0 = time.perf_counter()
    x = gridding(A, y, **kw)
    return x, {"iterations": 0, "stop_reason": "closed form", "objective": [], "seconds": time.perf_counter() - t0}


from mridip.recon.bart import bart_pics_method  # noqa: E402  (BART itself is only needed when run)
from mridip.recon.grappa import grappa  # noqa: E402  (k-space interpolation; mridip/recon/grappa.py)

#: Protocol names -> callables ``f(A, y, **params) -> (x, info)``.
METHODS: dict[str, Callable[..., tuple[Tensor, dict]]] = {
    "gridding": _gridding_method,
    "cg-sense": cg_sense,
    "l1-wavelet": l1_wavelet,
    "tv": tv,
    "temporal-tv": temporal_tv,
    "spatiotemporal-tv": spatiotemporal_tv,
    "lplus-s": lplus_s,
    "bart-pics": bart_pics_method,
    "grappa": grappa,
}
