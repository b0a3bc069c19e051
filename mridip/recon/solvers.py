"""Generic iterative solvers on torch tensors: CG, FISTA and PDHG (Condat-Vu).

The solvers know nothing of MRI: they take callables (a normal operator, a gradient,
proximal maps, linear maps and their adjoints) acting on tensors of any shape, on
whatever device the tensors live. :mod:`mridip.recon.baselines` wires them to a
:class:`~mridip.operators.base.LinearOperator` and a regulariser.

Every solver returns ``(x, info)`` with ``info`` a dict holding

- ``iterations``: iterations run,
- ``stop_reason``: ``"tolerance"`` or ``"max_iterations"``,
- ``objective``: list of floats, one per iteration (empty when no objective was given),
- ``seconds``: wall time.

Stopping rule (FISTA, PDHG): the relative change of the iterate
``||x_k - x_{k-1}|| / ||x_k|| < tol``. CG stops on the relative residual
``||b - M x_k|| / ||b|| < tol`` (the standard CG criterion, Hestenes & Stiefel 1952).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

__all__ = ["conjugate_gradient", "fista", "pdhg", "DualTerm", "soft_threshold", "project_l2_ball"]

Tensor = torch.Tensor


def _vdot(a: Tensor, b: Tensor) -> Tensor:
    """``sum(conj(a) * b)`` as a 0-d tensor (stays on the device)."""
    return torch.vdot(a.reshape(-1), b.reshape(-1))


def _rel_change(x: Tensor, x_old: Tensor) -> float:
    den = torch.linalg.vector_norm(x)
    num = torch.linalg.vector_norm(x - x_old)
    return float(num / den) if float(den) > 0 else float(num)


def _info(k: int, reason: str, objective: list[float], t0: float, **extra) -> dict:
    info = {"iterations": k, "stop_reason": reason, "objective": objective, "seconds": time.perf_counter() - t0}
    info.update(extra)
    return info


def soft_threshold(x: Tensor, threshold: float | Tensor) -> Tensor:
    """Complex soft thresholding ``x * max(0, 1 - t / |x|)``: prox of ``t ||x||_1``."""
    mag = x.abs()
    scale = torch.clamp(1.0 - threshold / torch.clamp(mag, min=torch.finfo(mag.dtype).tiny), min=0.0)
    return x * scale


def project_l2_ball(v: Tensor, radius: float, dim: int = 0) -> Tensor:
    """Project each vector ``v[..., :, ...]`` (along ``dim``) onto the l2 ball of ``radius``.

    This is the prox of the convex conjugate of ``radius * ||.||_{2,1}`` (group l2 norm
    over ``dim``, l1 over the rest): the dual step of isotropic TV in PDHG.
    """
    norm = torch.linalg.vector_norm(v, dim=dim, keepdim=True)
    return v / torch.clamp(norm / radius, min=1.0)


@torch.no_grad()
def conjugate_gradient(
    normal: Callable[[Tensor], Tensor],
    rhs: Tensor,
    *,
    x0: Tensor | None = None,
    iterations: int = 50,
    tol: float = 1e-6,
) -> tuple[Tensor, dict]:
    """Conjugate gradients for ``M x = b`` with ``M`` Hermitian positive (semi-)definite.

    Minimises the quadratic ``q(x) = 0.5 x^H M x - Re(b^H x)`` (Hestenes & Stiefel,
    J. Res. NBS 1952); CG-SENSE uses ``M = A^H A + lam I``, ``b = A^H y``
    (Pruessmann et al., MRM 2001).

    Parameters
    ----------
    normal : callable
        ``x -> M x``, same shape as ``rhs``.
    rhs : torch.Tensor
        ``b``, any shape, real or complex.
    x0 : torch.Tensor, optional
        Start (zeros by default).
    iterations : int
        Maximum number of iterations.
    tol : float
        Stop when ``||b - M x|| / ||b|| < tol``.

    Returns
    -------
    x, info
        ``info["objective"]`` holds ``q(x_k)`` per iteration (computed from the residual at
        no extra cost: ``q(x) = -0.5 Re(x^H (b + r))``); ``info["residual"]`` the relative
        residual per iteration.
    """
    t0 = time.perf_counter()
    x = torch.zeros_like(rhs) if x0 is None else x0.clone()
    r = rhs - normal(x) if x0 is not None else rhs.clone()
    p = r.clone()
    rr = _vdot(r, r).real
    bnorm = float(torch.linalg.vector_norm(rhs))
    objective: list[float] = []
    residual: list[float] = []
    if bnorm == 0.0:
        return torch.zeros_like(rhs), _info(0, "tolerance", objective, t0, residual=residual)
    reason, k = "max_iterations", 0
    if math.sqrt(float(rr)) / bnorm < tol:
        return x, _info(0, "tolerance", objective, t0, residual=residual)
    for k in range(1, iterations + 1):
        mp = normal(p)
        pmp = _vdot(p, mp).real
        if float(pmp) <= 0.0:  # M is only semi-definite along p: nothing left to gain
            reason = "tolerance"
            k -= 1
            break
        alpha = rr / pmp
        x = x + alpha * p
        r = r - alpha * mp
        rr_new = _vdot(r, r).real
        objective.append(float(-0.5 * _vdot(x, rhs + r).real))
        res = math.sqrt(float(rr_new)) / bnorm
        residual.append(res)
        if res < tol:
            reason = "tolerance"
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, _info(k, reason, objective, t0, residual=residual)


@torch.no_grad()
def fista(
    grad_f: Callable[[Tensor], Tensor],
    prox_g: Callable[[Tensor, float], Tensor],
    x0: Tensor,
    step: float,
    *,
    iterations: int = 100,
    tol: float = 1e-5,
    objective: Callable[[Tensor], float] | None = None,
) -> tuple[Tensor, dict]:
    """FISTA for ``min_x f(x) + g(x)``, ``f`` smooth with ``L``-Lipschitz gradient, ``g`` proximable.

    Beck & Teboulle, SIAM J. Imaging Sci. 2009::

        x_k     = prox_{step g}(z_k - step * grad f(z_k))
        t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2
        z_{k+1} = x_k + (t_k - 1) / t_{k+1} (x_k - x_{k-1})

    Converges as O(1/k^2) in the objective for ``step <= 1 / L``.

    Parameters
    ----------
    grad_f : callable
        ``x -> grad f(x)``.
    prox_g : callable
        ``(v, step) -> argmin_x g(x) + ||x - v||^2 / (2 step)``.
    x0 : torch.Tensor
        Start.
    step : float
        Step size, ``<= 1 / L``.
    iterations, tol
        Maximum iterations; stop when the relative change of ``x`` is below ``tol``.
    objective : callable, optional
        ``x -> f(x) + g(x)``, evaluated at every ``x_k`` (extra cost) into ``info["objective"]``.
    """
    t0 = time.perf_counter()
    x = x0.clone()
    z = x0.clone()
    t = 1.0
    obj: list[float] = []
    reason, k = "max_iterations", 0
    for k in range(1, iterations + 1):
        x_old = x
        x = prox_g(z - step * grad_f(z), step)
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        z = x + ((t - 1.0) / t_new) * (x - x_old)
        t = t_new
        if objective is not None:
            obj.append(float(objective(x)))
        if _rel_change(x, x_old) < tol:
            reason = "tolerance"
            break
    return x, _info(k, reason, obj, t0)


@dataclass
class DualTerm:
    """One non-smooth term ``h(K x)`` of :func:`pdhg`.

    Attributes
    ----------
    apply, adjoint : callable
        ``K`` and ``K^H``.
    prox_conj : callable
        ``(v, sigma) -> prox_{sigma h*}(v)`` (e.g. projection onto the l-infinity /
        l2 ball of radius lambda for ``h = lambda ||.||_1``).
    norm : float
        An upper bound of the operator norm ``||K||`` (e.g. ``sqrt(8)`` for 2-D
        forward differences, 2 for 1-D periodic ones).
    value : callable, optional
        ``K x -> h(K x)``, for the reported objective.
    """

    apply: Callable[[Tensor], Tensor]
    adjoint: Callable[[Tensor], Tensor]
    prox_conj: Callable[[Tensor, float], Tensor]
    norm: float
    value: Callable[[Tensor], float] | None = None


@torch.no_grad()
def pdhg(
    f_and_grad: Callable[[Tensor], tuple[float, Tensor]],
    lipschitz: float,
    terms: Sequence[DualTerm],
    x0: Tensor,
    *,
    prox_g: Callable[[Tensor, float], Tensor] | None = None,
    g_value: Callable[[Tensor], float] | None = None,
    iterations: int = 200,
    tol: float = 1e-5,
    sigma: float | None = None,
) -> tuple[Tensor, dict]:
    """Primal-dual hybrid gradient with an explicit gradient step (Condat-Vu).

    Solves ``min_x f(x) + g(x) + sum_i h_i(K_i x)`` with ``f`` smooth (``L``-Lipschitz
    gradient), ``g`` and ``h_i`` convex and proximable (the ``h_i`` through their
    conjugates), e.g. least squares + total variation. Iteration (Condat, JOTA 2013;
    Vu, Adv. Comput. Math. 2013; Chambolle & Pock, J. Math. Imaging Vis. 2011 for
    ``f = 0``)::

        x_{k+1}   = prox_{tau g}(x_k - tau (grad f(x_k) + sum_i K_i^H v_i))
        v_{i,k+1} = prox_{sigma h_i*}(v_i + sigma K_i (2 x_{k+1} - x_k))

    converging for ``1 / tau - sigma ||K||^2 >= L / 2`` with ``||K||^2 = sum_i ||K_i||^2``.
    ``f`` is only used through its gradient, so for MRI data terms ``grad f = A^H A x - A^H y``
    runs on ``A.normal`` (Toeplitz for radial); no inner linear solves, no smoothing of TV.

    Parameters
    ----------
    f_and_grad : callable
        ``x -> (f(x), grad f(x))``; the value enters the reported objective only.
    lipschitz : float
        ``L`` of ``grad f``.
    terms : sequence of DualTerm
        The ``h_i(K_i x)``.
    x0 : torch.Tensor
        Start.
    prox_g : callable, optional
        ``(v, tau) -> prox_{tau g}(v)`` (identity when absent: ``g = 0``).
    g_value : callable, optional
        ``x -> g(x)`` for the objective.
    iterations, tol
        Maximum iterations; stop when the relative change of ``x`` is below ``tol``.
    sigma : float, optional
        Dual step; default ``1 / ||K||``. ``tau`` then follows from the convergence
        condition, with a 0.99 safety factor.

    Returns
    -------
    x, info
        ``info["objective"]``: ``f(x_k) + g(x_k) + sum_i h_i(K_i x_k)`` per iteration
        (evaluated at the iterate entering each step, so it costs one extra ``K_i`` per term).
    """
    t0 = time.perf_counter()
    knorm = math.sqrt(sum(float(term.norm) ** 2 for term in terms)) or 1.0
    sigma = 1.0 / knorm if sigma is None else float(sigma)
    tau = 0.99 / (0.5 * lipschitz + sigma * knorm**2)
    x = x0.clone()
    duals = [torch.zeros_like(term.apply(x)) for term in terms]
    obj: list[float] = []
    reason, k = "max_iterations", 0
    for k in range(1, iterations + 1):
        fx, grad = f_and_grad(x)
        if all(term.value is not None for term in terms):
            val = fx + sum(float(term.value(term.apply(x))) for term in terms)
            if g_value is not None:
                val += float(g_value(x))
            obj.append(float(val))
        step = grad
        for term, v in zip(terms, duals):
            step = step + term.adjoint(v)
        x_new = x - tau * step
        if prox_g is not None:
            x_new = prox_g(x_new, tau)
        x_bar = 2.0 * x_new - x
        duals = [term.prox_conj(v + sigma * term.apply(x_bar), sigma) for term, v in zip(terms, duals)]
        change = _rel_change(x_new, x)
        x = x_new
        if change < tol:
            reason = "tolerance"
            break
    return x, _info(k, reason, obj, t0, tau=tau, sigma=sigma)
