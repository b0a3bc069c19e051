"""Generic iterative solvers on torch tensors: CG, FISTA, ADMM and PDHG (Condat-Vu).

The solvers know nothing of MRI: they take callables (a normal operator, a gradient,
proximal maps, linear maps and their adjoints) acting on tensors of any shape, on
whatever device the tensors live. :mod:`mridip.recon.baselines` wires them to a
:class:`~mridip.operators.base.LinearOperator` and a regulariser.

Every solver returns ``(x, info)`` with ``info`` a dict holding

- ``iterations``: iterations run,
- ``stop_reason``: ``"tolerance"`` or ``"max_iterations"``,
- ``objective``: list of floats, one per iteration (empty when no objective was given),
- ``seconds``: wall time.

Stopping rules: FISTA and PDHG stop on the relative change of the iterate
``||x_k - x_{k-1}|| / ||x_k|| < tol``; CG on the relative residual
``||b - M x_k|| / ||b|| < tol`` (the standard CG criterion, Hestenes & Stiefel 1952);
ADMM on its primal and dual residuals (Boyd et al. 2011, section 3.3.1).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from mridip.threads import adapt_threads

__all__ = ["conjugate_gradient", "fista", "admm", "SplitTerm", "pdhg", "DualTerm", "soft_threshold",
           "project_l2_ball", "group_soft_threshold"]

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


def group_soft_threshold(v: Tensor, threshold: float | Tensor, dim: int = 0) -> Tensor:
    """Group soft thresholding ``v * max(0, 1 - t / ||v||_dim)``: prox of ``t ||v||_{2,1}``.

    The l2 norm runs over ``dim`` (e.g. the two spatial differences of isotropic TV), the
    l1 sum over the rest.
    """
    norm = torch.linalg.vector_norm(v, dim=dim, keepdim=True)
    return v * torch.clamp(1.0 - threshold / torch.clamp(norm, min=torch.finfo(norm.dtype).tiny), min=0.0)


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
        residual per iteration; ``info["r"]`` the final residual vector ``b - M x`` (by the
        CG recursion; callers use it to evaluate objectives without another ``M x``).
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
        return torch.zeros_like(rhs), _info(0, "tolerance", objective, t0, residual=residual,
                                            r=torch.zeros_like(rhs))
    reason, k = "max_iterations", 0
    if math.sqrt(float(rr)) / bnorm < tol:
        return x, _info(0, "tolerance", objective, t0, residual=residual, r=r)
    for k in range(1, iterations + 1):
        adapt_threads()  # follow the cores other processes leave free (mridip.threads)
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
    return x, _info(k, reason, objective, t0, residual=residual, r=r)


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
    callback: Callable[[int, Tensor], None] | None = None,
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
    callback : callable, optional
        ``(k, x_k)`` after every iteration (monitoring; must not modify ``x_k``).
    """
    t0 = time.perf_counter()
    x = x0.clone()
    z = x0.clone()
    t = 1.0
    obj: list[float] = []
    reason, k = "max_iterations", 0
    for k in range(1, iterations + 1):
        adapt_threads()  # follow the cores other processes leave free (mridip.threads)
        x_old = x
        x = prox_g(z - step * grad_f(z), step)
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        z = x + ((t - 1.0) / t_new) * (x - x_old)
        t = t_new
        if objective is not None:
            obj.append(float(objective(x)))
        if callback is not None:
            callback(k, x)
        if _rel_change(x, x_old) < tol:
            reason = "tolerance"
            break
    return x, _info(k, reason, obj, t0)


@dataclass
class SplitTerm:
    """One non-smooth term ``h(K x)`` of :func:`admm`, split as ``z = K x``.

    Attributes
    ----------
    apply, adjoint : callable
        ``K`` and ``K^H``.
    prox : callable
        ``(v, t) -> prox_{t h}(v) = argmin_z t h(z) + 0.5 ||z - v||^2`` (e.g. soft
        thresholding at ``t lam`` for ``h = lam ||.||_1``).
    value : callable
        ``K x -> h(K x)``, for the reported objective.
    gram : callable, optional
        ``x -> K^H K x`` when cheaper than ``adjoint(apply(x))``.
    """

    apply: Callable[[Tensor], Tensor]
    adjoint: Callable[[Tensor], Tensor]
    prox: Callable[[Tensor, float], Tensor]
    value: Callable[[Tensor], float]
    gram: Callable[[Tensor], Tensor] | None = None


def _norm(t: Tensor) -> float:
    return float(torch.linalg.vector_norm(t))


@torch.no_grad()
def admm(
    normal: Callable[[Tensor], Tensor],
    rhs: Tensor,
    terms: Sequence[SplitTerm],
    x0: Tensor,
    *,
    rho: float,
    data_value: Callable[[Tensor, Tensor], float] | None = None,
    iterations: int = 100,
    cg_iterations: int = 5,
    tol: float = 1e-3,
    adaptive: bool = True,
    mu: float = 10.0,
    tau: float = 2.0,
    callback: Callable[[int, Tensor], None] | None = None,
) -> tuple[Tensor, dict]:
    """ADMM for ``min_x 0.5 x^H M x - Re(b^H x) + sum_i h_i(K_i x)`` (least squares + sparsity).

    Boyd, Parikh, Chu, Peleato, Eckstein, Found. Trends Mach. Learn. 3(1), 2011 (scaled
    form, section 3.1.1), with the split ``z_i = K_i x``::

        x_{k+1}   = argmin_x 0.5 x^H M x - Re b^H x + rho/2 sum_i ||K_i x - z_i + u_i||^2
                  = solve (M + rho sum_i K_i^H K_i) x = b + rho sum_i K_i^H (z_i - u_i)
        z_{i,k+1} = prox_{h_i / rho}(K_i x_{k+1} + u_i)
        u_{i,k+1} = u_i + K_i x_{k+1} - z_{i,k+1}

    For MRI ``M = A^H A`` (``A.normal``, Toeplitz for radial) and ``b = A^H y``, i.e. the data
    term ``0.5 ||A x - y||^2``. The x-update runs ``cg_iterations`` conjugate-gradient steps
    warm-started at the previous ``x`` (inexact ADMM, as BART's ``pics`` does; the
    warm start makes the error of the inner solve shrink with the outer steps).

    ``rho`` is adapted by residual balancing (Boyd et al. 2011, section 3.4.1; He, Yang &
    Wang 2000) when ``adaptive``: if ``||r|| > mu ||s||`` then ``rho *= tau``, if
    ``||s|| > mu ||r||`` then ``rho /= tau`` (the scaled duals ``u`` are rescaled by the
    inverse factor). Adaptation stops after half of ``iterations`` so that the fixed-``rho``
    convergence theory applies to the tail.

    Stopping rule (Boyd et al. 2011, section 3.3.1, relative form): primal residual
    ``r = K x - z`` and dual residual ``s = rho K^H (z - z_old)`` (stacked over terms) with
    ``||r|| <= tol max(||K x||, ||z||)`` and ``||s|| <= tol ||rho K^H u||``, or ``iterations``.

    Parameters
    ----------
    normal : callable
        ``x -> M x`` (Hermitian positive semi-definite).
    rhs : torch.Tensor
        ``b``, the shape of ``x``.
    terms : sequence of SplitTerm
        The ``h_i(K_i x)``.
    x0 : torch.Tensor
        Start (a few CG iterations on ``M x = b`` make a good one); ``z_i = K_i x0``, ``u_i = 0``.
    rho : float
        Initial penalty parameter (> 0).
    data_value : callable, optional
        ``(x, M x) -> 0.5 x^H M x - Re b^H x + const`` for the reported objective; ``M x`` is
        recovered from the inner CG's residual at no extra operator cost.
    iterations, cg_iterations, tol, adaptive, mu, tau
        See above.
    callback : callable, optional
        ``(k, x_k)`` after every outer iteration (monitoring; must not modify ``x_k``).

    Returns
    -------
    x, info
        ``info["objective"]`` per outer iteration (data value + ``sum_i h_i(K_i x)``),
        ``info["primal_residual"]``, ``info["dual_residual"]`` (relative, as tested),
        ``info["rho"]`` (final), ``info["normal_calls"]`` (``M`` applications).
    """
    t0 = time.perf_counter()
    if not rho > 0:
        raise ValueError(f"admm: rho must be > 0, got {rho}")
    x = x0.clone()
    zs = [term.apply(x) for term in terms]
    us = [torch.zeros_like(z) for z in zs]

    def gram(term: SplitTerm, v: Tensor) -> Tensor:
        return term.gram(v) if term.gram is not None else term.adjoint(term.apply(v))

    obj: list[float] = []
    pres: list[float] = []
    dres: list[float] = []
    calls = 0
    reason, k = "max_iterations", 0
    for k in range(1, iterations + 1):
        adapt_threads()  # follow the cores other processes leave free (mridip.threads)
        r_rho = rho  # the rho of this x-update (closure below)
        rhs_k = rhs
        for term, z, u in zip(terms, zs, us):
            rhs_k = rhs_k + r_rho * term.adjoint(z - u)

        def system(v: Tensor) -> Tensor:
            out = normal(v)
            for term in terms:
                out = out + r_rho * gram(term, v)
            return out

        x, cg = conjugate_gradient(system, rhs_k, x0=x, iterations=cg_iterations, tol=1e-12)
        calls += cg["iterations"] + 1
        kx = [term.apply(x) for term in terms]
        if data_value is not None:
            # M x = rhs_k - r - rho sum K^H K x: the data value without another M application
            mx = rhs_k - cg["r"]
            for term, v in zip(terms, kx):
                mx = mx - r_rho * term.adjoint(v)
            obj.append(float(data_value(x, mx)) + sum(float(t.value(v)) for t, v in zip(terms, kx)))
        z_old = zs
        zs = [term.prox(v + u, 1.0 / rho) for term, v, u in zip(terms, kx, us)]
        us = [u + v - z for u, v, z in zip(us, kx, zs)]
        r_norm = math.sqrt(sum(_norm(v - z) ** 2 for v, z in zip(kx, zs)))
        s_vec = sum(term.adjoint(z - zo) for term, z, zo in zip(terms, zs, z_old))
        s_norm = rho * _norm(s_vec)
        kx_norm = math.sqrt(sum(_norm(v) ** 2 for v in kx))
        z_norm = math.sqrt(sum(_norm(z) ** 2 for z in zs))
        u_norm = rho * _norm(sum(term.adjoint(u) for term, u in zip(terms, us)))
        p_rel = r_norm / max(kx_norm, z_norm, 1e-30)
        d_rel = s_norm / max(u_norm, 1e-30)
        pres.append(p_rel)
        dres.append(d_rel)
        if callback is not None:
            callback(k, x)
        if p_rel <= tol and d_rel <= tol:
            reason = "tolerance"
            break
        if adaptive and k <= iterations // 2:
            if r_norm > mu * s_norm:
                rho *= tau
                us = [u / tau for u in us]
            elif s_norm > mu * r_norm:
                rho /= tau
                us = [u * tau for u in us]
    return x, _info(k, reason, obj, t0, primal_residual=pres, dual_residual=dres, rho=rho,
                    normal_calls=calls)


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
        adapt_threads()  # follow the cores other processes leave free (mridip.threads)
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
