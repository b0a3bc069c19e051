"""Signal models of quantitative MRI: parameter maps -> contrast-weighted images.

A signal model turns parameter maps into the image series that the scanner encoded, one
image per contrast (echo, inversion time, ...), so that the imaging operator of
:mod:`mridip.operators` maps parameter maps to k-space:

    k-space = A(S(maps)),    A: coils x (FFT + mask) per contrast,  S: the signal model.

Implemented: :class:`T2Decay`, the mono-exponential transverse decay of a multi-echo
spin echo (MESE),

    x_e(r) = M0(r) * exp(-TE_e / T2(r)),    e = 1 .. E,

with a complex ``M0`` (proton density times receive phase; a spin echo refocuses
off-resonance, so the phase is the same at every echo) and ``T2`` in ms. Stimulated
echoes from imperfect refocusing make real MESE decays deviate from a mono-exponential
(Lebel and Wilman, MRM 2010, fit an extended phase graph model instead); the model here
is the one most T2-mapping reconstructions use (e.g. Block et al., "Model-based iterative
reconstruction for radial fast spin-echo MRI", IEEE TMI 2014; Sumpf et al., JMRI 2011).

:meth:`T2Decay.fit_maps` is the pixel-wise estimator that turns any reconstructed echo
series into maps (used for the compressed-sensing baselines): a variable-projection fit
of the magnitudes, a grid search over T2 for the global minimum followed by Gauss-Newton
polishing in (M0, 1/T2).

T1 models (:class:`InversionRecovery` ``ir``, :class:`LookLocker` ``molli``,
:class:`SaturationRecovery` ``sr``, :class:`VariableFlipAngle` ``vfa``) share one
interface with T2Decay: ``render(amplitude, reals, contrasts)`` for a mapping generator,
``generator_parameters()`` (the bounded real maps it outputs), ``maps_of`` (the maps
written) and ``fit_maps`` (the pixel-wise variable-projection fit with Gauss-Newton
polishing, polarity restoration for magnitude IR / MOLLI data). :func:`signal_model` builds
one by name and :func:`acquisition_parameters` takes its TI / flip angles / TR from a file
header or the protocol's ``[mapping]``. See docs/methods.md, "Parameter mapping: T1".

Units: echo, inversion and repetition times, T2, T1 and T1* in ms; flip angles in
degrees at the interface (radians inside); amplitudes in the units of the images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from mridip.errors import InputFileError, ProtocolError, ShapeError

#: Signal models by the protocol's ``mapping.model`` name.
SIGNAL_MODELS = ("t2", "ir", "molli", "sr", "vfa")


def _check_echo_times(te_ms: Sequence[float] | torch.Tensor) -> torch.Tensor:
    te = torch.as_tensor(te_ms, dtype=torch.float64).reshape(-1)
    if te.numel() < 2:
        raise ProtocolError(
            f"T2 mapping needs at least 2 echo times, got {te.tolist()}; the file header's "
            "sequenceParameters/TE lists one per contrast, or give mapping.echo_times_ms"
        )
    if not bool(torch.all(torch.isfinite(te))) or bool(torch.any(te < 0)):
        raise ProtocolError(f"echo times must be finite and >= 0 ms, got {te.tolist()}")
    if torch.unique(te).numel() != te.numel():
        raise ProtocolError(f"echo times must differ from each other, got {te.tolist()}")
    return te


class T2Decay(nn.Module):
    """Mono-exponential T2 decay ``x_e = M0 exp(-TE_e / T2)`` of a multi-echo spin echo.

    Parameters
    ----------
    echo_times_ms : sequence of float
        ``(E,)`` echo times in ms, E >= 2, distinct.
    t2_min_ms, t2_max_ms : float
        Range of T2 the maps may take, ms (``0 < t2_min < t2_max``). Estimates are kept
        inside it; a tissue whose T2 is far longer than the last echo time (CSF) is not
        determined by the data and lands near ``t2_max``.

    Buffers: ``te`` float32 ``(E,)`` in ms.
    """

    names = ("M0", "T2")
    amplitude_names = ("M0",)

    def __init__(self, echo_times_ms: Sequence[float], *, t2_min_ms: float = 5.0, t2_max_ms: float = 2000.0):
        super().__init__()
        te = _check_echo_times(echo_times_ms)
        if not (0 < float(t2_min_ms) < float(t2_max_ms) < math.inf):
            raise ProtocolError(f"need 0 < t2_min_ms < t2_max_ms, got {t2_min_ms} and {t2_max_ms}")
        self.t2_min, self.t2_max = float(t2_min_ms), float(t2_max_ms)
        self.register_buffer("te", te.float())

    @property
    def num_contrasts(self) -> int:
        return int(self.te.numel())

    def forward(self, m0: torch.Tensor, t2: torch.Tensor, contrasts: torch.Tensor | None = None) -> torch.Tensor:
        """Echo images of maps.

        Parameters
        ----------
        m0 : torch.Tensor
            complex ``(Y, X)``: proton density times receive phase.
        t2 : torch.Tensor
            real ``(Y, X)``, ms, > 0.
        contrasts : torch.Tensor, optional
            int64 ``(B,)`` echo indices (default: all E).

        Returns
        -------
        torch.Tensor
            complex64 ``(B, Y, X)`` (``B = E`` by default).
        """
        if m0.shape != t2.shape or m0.ndim != 2:
            raise ShapeError(f"T2Decay: m0 and t2 must both be (Y, X); got {tuple(m0.shape)} and {tuple(t2.shape)}")
        te = self.te if contrasts is None else self.te[contrasts]
        decay = torch.exp(-te[:, None, None] / t2[None].float())  # (B, Y, X)
        return m0[None].to(torch.complex64) * decay

    def generator_parameters(self, *, t2_init_ms: float = 100.0, **_: float) -> tuple["RealParameter", ...]:
        """The real maps a mapping generator outputs besides ``M0``: ``T2`` (log scale)."""
        if not self.t2_min < float(t2_init_ms) < self.t2_max:
            raise ProtocolError(f"model.t2_init_ms = {t2_init_ms} must lie inside the T2 range "
                                f"({self.t2_min}, {self.t2_max}) ms of [mapping]")
        return (RealParameter("T2", self.t2_min, self.t2_max, float(t2_init_ms), True),)

    def render(self, m0: torch.Tensor, reals: Sequence[torch.Tensor], contrasts: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`forward` with the real maps as a list (the generators' generic call)."""
        return self.forward(m0, reals[0], contrasts)

    def maps_of(self, m0: torch.Tensor, reals: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"M0": |M0|, "T2": T2}`` float32 ``(Y, X)`` of a generator's maps."""
        return {"M0": m0.abs().float(), "T2": reals[0].float()}

    @torch.no_grad()
    def fit_maps(self, images: torch.Tensor, *, grid: int = 200, iterations: int = 5) -> dict[str, torch.Tensor]:
        """Pixel-wise least-squares fit of ``|x_e| = M0 exp(-TE_e / T2)`` to magnitudes.

        Variable projection: for a given ``T2`` the best ``M0 >= 0`` is linear,
        ``M0 = sum_e s_e d_e / sum_e d_e^2`` with ``d_e = exp(-TE_e / T2)``, so the fit is a
        one-dimensional search over ``T2``: every pixel's residual is evaluated on ``grid``
        log-spaced values in ``[t2_min, t2_max]`` (the global minimum on that grid), then
        ``iterations`` Gauss-Newton steps in ``(M0, R2 = 1/T2)`` from there, clamped to the
        range. Noiseless model data are recovered to float64 round-off.

        Parameters
        ----------
        images : torch.Tensor
            ``(E, Y, X)`` complex or magnitude echo images.
        grid : int
            Grid points of the T2 search.
        iterations : int
            Gauss-Newton steps after the grid search.

        Returns
        -------
        dict
            ``"M0"`` float32 ``(Y, X)`` (units of the images) and ``"T2"`` float32
            ``(Y, X)`` in ms; pixels without signal get ``M0 = 0`` and ``T2 = 0``.
        """
        if images.ndim != 3 or images.shape[0] != self.num_contrasts:
            raise ShapeError(
                f"fit_maps: images must be (E={self.num_contrasts}, Y, X), one per echo time; "
                f"got {tuple(images.shape)}"
            )
        s = images.abs().to(torch.float64).reshape(self.num_contrasts, -1)  # (E, N)
        te = self.te.to(device=s.device, dtype=torch.float64)
        r_grid = 1.0 / torch.logspace(math.log10(self.t2_min), math.log10(self.t2_max), grid,
                                      dtype=torch.float64, device=s.device)  # (G,) R2 in 1/ms
        d = torch.exp(-te[None, :] * r_grid[:, None])  # (G, E)
        # residual at the projected M0: ||s||^2 - (d . s)^2 / ||d||^2; minimise over the grid
        proj = (d @ s) ** 2 / (d * d).sum(1, keepdim=True)  # (G, N)
        r = r_grid[proj.argmax(0)]  # (N,)
        m = (torch.exp(-te[:, None] * r[None]) * s).sum(0) / torch.exp(-2 * te[:, None] * r[None]).sum(0)
        r_lo, r_hi = 1.0 / self.t2_max, 1.0 / self.t2_min
        for _ in range(iterations):
            e = torch.exp(-te[:, None] * r[None])  # (E, N)
            res = s - m[None] * e
            j_m, j_r = e, -te[:, None] * m[None] * e  # Jacobian columns
            a11, a12, a22 = (j_m * j_m).sum(0), (j_m * j_r).sum(0), (j_r * j_r).sum(0)
            b1, b2 = (j_m * res).sum(0), (j_r * res).sum(0)
            det = a11 * a22 - a12 * a12
            ok = det > 1e-12 * a11 * a22  # a pixel with no decay information keeps its grid value
            det = torch.where(ok, det, torch.ones_like(det))
            dm = torch.where(ok, (a22 * b1 - a12 * b2) / det, torch.zeros_like(det))
            dr = torch.where(ok, (a11 * b2 - a12 * b1) / det, torch.zeros_like(det))
            m, r = (m + dm).clamp_min(0.0), (r + dr).clamp(r_lo, r_hi)
        signal = s.amax(0) > 0
        m = torch.where(signal, m, torch.zeros_like(m))
        t2 = torch.where(signal & (m > 0), 1.0 / r, torch.zeros_like(r))
        shape = images.shape[-2:]
        return {"M0": m.float().reshape(shape), "T2": t2.float().reshape(shape)}


def echo_times_of(header_te_ms: Sequence[float], num_contrasts: int, override: Sequence[float] = ()) -> list[float]:
    """Echo times (ms) of a file's ``num_contrasts`` frames: ``override`` if given, else the header's.

    Raises
    ------
    InputFileError
        When neither gives one echo time per frame (the message names the way out).
    """
    te = [float(v) for v in (override or header_te_ms)]
    if len(te) != num_contrasts:
        src = "mapping.echo_times_ms" if override else "the file header (sequenceParameters/TE)"
        raise InputFileError(
            f"parameter mapping needs one echo time per frame: the data have {num_contrasts} frames "
            f"(contrasts) but {src} gives {len(te)} echo time(s) {te}; set them with "
            "--set mapping.echo_times_ms=[TE1, TE2, ...] (ms)"
        )
    return te


@dataclass(frozen=True)
class RealParameter:
    """A real map that a mapping generator outputs, kept inside ``[lo, hi]`` by a sigmoid.

    ``log``: the sigmoid acts on ``log`` of the value (time constants), else on the value.
    ``init``: the value where the network's output is 0.
    """

    name: str
    lo: float
    hi: float
    init: float
    log: bool = True


def _check_times(values: Sequence[float] | torch.Tensor, what: str, key: str, minimum: int = 2) -> torch.Tensor:
    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if v.numel() < minimum:
        raise ProtocolError(f"{what}: need at least {minimum} values, got {v.tolist()}; the file header "
                            f"lists them, or give {key}")
    if not bool(torch.all(torch.isfinite(v))) or bool(torch.any(v < 0)):
        raise ProtocolError(f"{what} must be finite and >= 0, got {v.tolist()}")
    if torch.unique(v).numel() != v.numel():
        raise ProtocolError(f"{what} must differ from each other, got {v.tolist()}")
    return v


def _check_range(lo: float, hi: float, what: str) -> tuple[float, float]:
    if not (0 < float(lo) < float(hi) < math.inf):
        raise ProtocolError(f"need 0 < {what}_min_ms < {what}_max_ms, got {lo} and {hi}")
    return float(lo), float(hi)


def _solve_small(gram: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Solve ``gram c = h`` for L = 1 or 2: ``gram`` ``(M, L, L)``, ``h`` ``(N, L)`` -> ``(N, L)``."""
    L = gram.shape[-1]
    if L == 1:
        return h / gram[..., 0, :].real.clamp_min(1e-300)
    a, b, c, d = gram[..., 0, 0], gram[..., 0, 1], gram[..., 1, 0], gram[..., 1, 1]
    det = a * d - b * c
    tiny = 1e-14 * (a.abs() * d.abs())
    det = torch.where(det.abs() > tiny, det, tiny + 1e-300)
    return torch.stack([(d * h[:, 0] - b * h[:, 1]) / det, (a * h[:, 1] - c * h[:, 0]) / det], dim=-1)


def _project(phi: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear least squares of ``s ~ phi c`` per pixel.

    ``phi`` ``(M, E, L)`` (M = 1 or N), ``s`` ``(N, E)`` -> coefficients ``(N, L)`` and the
    residual energy ``(N,)``.
    """
    h = (phi.conj() * s[:, :, None]).sum(1)  # (N, L)
    gram = phi.conj().transpose(-1, -2) @ phi  # (M, L, L)
    c = _solve_small(gram, h)
    energy = (s.abs() ** 2).sum(1) - (h.conj() * c).sum(1).real
    return c, energy


class _T1Model(nn.Module):
    """Shared machinery of the longitudinal-relaxation models (see the subclasses).

    Every model is ``x_e = C * f_e(p)`` with a complex amplitude map ``C`` (proton density
    times receive phase) and real maps ``p`` (:meth:`generator_parameters`), and its
    pixel-wise fit is a variable projection (Golub and Pereyra, SIAM J Numer Anal 1973):
    the signal is linear in its amplitudes for a given rate ``r = 1 / T`` of its one
    nonlinear time constant, so the amplitudes are projected out, the residual is searched
    on ``grid`` log-spaced rates for the global minimum, and ``iterations`` Gauss-Newton
    steps on the projected residual (Kaufman's Jacobian, step halving when the residual
    grows) polish it, clamped to the range.
    """

    names: tuple[str, ...] = ("M0", "T1")
    amplitude_names: tuple[str, ...] = ("M0",)

    def __init__(self, times: torch.Tensor, t1_min_ms: float, t1_max_ms: float):
        super().__init__()
        self.t1_min, self.t1_max = _check_range(t1_min_ms, t1_max_ms, "t1")
        self.register_buffer("t", times.float())  # (E,) ms (flip angles in rad for VFA)

    @property
    def num_contrasts(self) -> int:
        return int(self.t.numel())

    # ---------------------------------------------------------------- pixel-wise fit
    def _rate_range(self) -> tuple[float, float]:
        return 1.0 / self.t1_max, 1.0 / self.t1_min

    def _basis(self, r: torch.Tensor, extra: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Basis ``(M, E, L)`` and its derivative in ``r`` for rates ``r`` ``(M,)`` 1/ms."""
        raise NotImplementedError

    def _varpro(self, s: torch.Tensor, extra: torch.Tensor | None, grid: int, iterations: int):
        """Fit ``s`` ``(N, E)`` (complex or real float64): rate ``(N,)``, amplitudes ``(N, L)``, residual ``(N,)``."""
        r_lo, r_hi = self._rate_range()
        rates = 1.0 / torch.logspace(math.log10(1.0 / r_hi), math.log10(1.0 / r_lo), grid,
                                     dtype=torch.float64, device=s.device)
        best_e = torch.full((s.shape[0],), math.inf, dtype=torch.float64, device=s.device)
        best_r = torch.full_like(best_e, float(rates[0]))
        for rg in rates:
            r = rg.reshape(1) if extra is None else rg.expand(s.shape[0])
            phi, _ = self._basis(r, extra)
            _, energy = _project(phi.to(s.dtype), s)
            better = energy < best_e
            best_e, best_r = torch.where(better, energy, best_e), torch.where(better, rg, best_r)
        r = best_r
        phi, dphi = self._basis(r, extra)
        c, energy = _project(phi.to(s.dtype), s)
        for _ in range(iterations):
            phi, dphi = phi.to(s.dtype), dphi.to(s.dtype)
            res = s - (phi @ c[:, :, None])[..., 0]  # (N, E)
            j = (dphi @ c[:, :, None])[..., 0]  # d(phi c)/dr
            jc, _ = _project(phi, j)
            j_perp = j - (phi @ jc[:, :, None])[..., 0]
            den = (j_perp.abs() ** 2).sum(1)
            num = (j.conj() * res).sum(1).real
            step = torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(den))
            accepted = torch.zeros_like(step, dtype=torch.bool)
            new_r, new_c, new_e = r.clone(), c.clone(), energy.clone()
            for _ in range(5):  # step halving: keep a step only where the residual falls
                trial = (r + step).clamp(r_lo, r_hi)
                p_t, _ = self._basis(trial, extra)
                c_t, e_t = _project(p_t.to(s.dtype), s)
                ok = (e_t <= energy) & ~accepted
                new_r, new_e = torch.where(ok, trial, new_r), torch.where(ok, e_t, new_e)
                new_c = torch.where(ok[:, None], c_t, new_c)
                accepted |= ok
                step = step / 2
            r, c, energy = new_r, new_c, new_e
            phi, dphi = self._basis(r, extra)
        return r, c, energy

    def _prepare(self, images: torch.Tensor) -> tuple[torch.Tensor, bool]:
        if images.ndim != 3 or images.shape[0] != self.num_contrasts:
            raise ShapeError(f"fit_maps: images must be (E={self.num_contrasts}, Y, X), one per contrast; "
                             f"got {tuple(images.shape)}")
        complex_data = torch.is_complex(images)
        s = images.to(torch.complex128 if complex_data else torch.float64).reshape(self.num_contrasts, -1).T
        return s.contiguous(), complex_data  # (N, E)

    # ---------------------------------------------------------------- generator side
    def render(self, m0: torch.Tensor, reals: Sequence[torch.Tensor], contrasts: torch.Tensor | None = None) -> torch.Tensor:
        """Contrast images ``C f_e(p)`` of maps: complex64 ``(B, Y, X)``.

        ``m0`` complex ``(Y, X)``, ``reals`` the real ``(Y, X)`` maps of
        :meth:`generator_parameters` in their order, ``contrasts`` int64 ``(B,)`` (default all).
        """
        if m0.ndim != 2 or any(p.shape != m0.shape for p in reals):
            raise ShapeError(f"{type(self).__name__}: maps must all be (Y, X); got "
                             f"{[tuple(m0.shape)] + [tuple(p.shape) for p in reals]}")
        t = self.t if contrasts is None else self.t[contrasts]
        return m0[None].to(torch.complex64) * self._curve(t, [p.float() for p in reals]).to(torch.complex64)

    def _curve(self, t: torch.Tensor, reals: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


def _tensor(values) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float64).reshape(-1)


class InversionRecovery(_T1Model):
    """Inversion recovery with a long TR: ``x(TI) = M0 (1 - 2 k exp(-TI / T1))``.

    ``M0`` complex (the signal is phase-sensitive: negative before the null), ``k`` the
    inversion efficiency (1: a perfect 180 degree inversion). The pixel-wise fit is the
    three-parameter model ``x = a + b exp(-TI / T1)`` with complex ``a, b`` (Barral et al.,
    "A robust methodology for in vivo T1 mapping", MRM 2010: RD-NLS), so ``k = -Re(b / a) / 2``;
    on magnitude data (``|x|``, no phase) the fit restores the polarity: it tries every
    sign-flip point (the first ``n`` TIs negative, ``n = 0 .. E``) and keeps the best fit
    (RD-NLS-PR). The generator outputs ``M0``, ``T1`` and ``k``.

    Parameters
    ----------
    ti_ms : sequence of float
        ``(E,)`` inversion times in ms, E >= 3 for the fit, distinct.
    t1_min_ms, t1_max_ms : float
        Range of T1, ms (default 50 and 5000).

    Units and conventions: ms; mrpro's ``InversionRecovery`` uses seconds and
    ``M0 (1 - 2 exp(-TI / T1))`` (perfect inversion); here the efficiency ``k`` is a map.
    """

    def __init__(self, ti_ms: Sequence[float], *, t1_min_ms: float = 50.0, t1_max_ms: float = 5000.0):
        super().__init__(_check_times(ti_ms, "inversion times (ms)", "mapping.ti_ms", 3), t1_min_ms, t1_max_ms)

    def forward(self, m0: torch.Tensor, t1: torch.Tensor, efficiency: torch.Tensor | float = 1.0,
                contrasts: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(B, Y, X)`` of ``m0`` complex ``(Y, X)``, ``t1`` ms ``(Y, X)``, efficiency ``k``."""
        k = torch.as_tensor(efficiency, dtype=torch.float32, device=t1.device).expand_as(t1)
        return self.render(m0, [t1, k], contrasts)

    def _curve(self, t, reals):
        t1, k = reals
        return 1.0 - 2.0 * k[None] * torch.exp(-t[:, None, None] / t1[None])

    def generator_parameters(self, *, t1_init_ms: float = 1000.0, **_: float) -> tuple[RealParameter, ...]:
        """``T1`` (log scale, the [mapping] range) and the inversion efficiency ``k`` in [0.5, 1.05]."""
        if not self.t1_min < float(t1_init_ms) < self.t1_max:
            raise ProtocolError(f"model.t1_init_ms = {t1_init_ms} must lie inside the T1 range "
                                f"({self.t1_min}, {self.t1_max}) ms of [mapping]")
        return (RealParameter("T1", self.t1_min, self.t1_max, float(t1_init_ms), True),
                RealParameter("efficiency", 0.5, 1.05, 0.95, False))

    def maps_of(self, m0, reals):
        return {"M0": m0.abs().float(), "T1": reals[0].float()}

    def _basis(self, r, extra):
        e = torch.exp(-self.t.to(r)[None, :] * r[:, None])  # (M, E)
        phi = torch.stack([torch.ones_like(e), e], -1)
        dphi = torch.stack([torch.zeros_like(e), -self.t.to(r)[None, :] * e], -1)
        return phi, dphi

    def _fit_three_parameter(self, images, grid, iterations, magnitude):
        """Rate ``(N,)``, ``a, b`` ``(N,)`` of ``a + b exp(-r t)`` (polarity restored on magnitudes)."""
        s, complex_data = self._prepare(images)
        if magnitude or not complex_data:
            s = s.abs().real if complex_data else s.abs()
            order = torch.argsort(self.t)
            best = None
            for n in range(self.num_contrasts + 1):  # the first n contrasts in time are negative
                sign = torch.ones(self.num_contrasts, dtype=s.dtype, device=s.device)
                sign[order[:n]] = -1.0
                r, c, e = self._varpro(s * sign, None, grid, iterations)
                if best is None:
                    best = [r, c, e]
                else:
                    better = e < best[2]
                    best = [torch.where(better, r, best[0]), torch.where(better[:, None], c, best[1]),
                            torch.where(better, e, best[2])]
            r, c, _ = best
            c = c.to(torch.complex128)
        else:
            r, c, _ = self._varpro(s, None, grid, iterations)
        return r, c[:, 0], c[:, 1], s.abs().amax(1) > 0

    @torch.no_grad()
    def fit_maps(self, images: torch.Tensor, *, grid: int = 200, iterations: int = 10,
                 magnitude: bool = False) -> dict[str, torch.Tensor]:
        """Pixel-wise fit (module docstring): ``images`` ``(E, Y, X)`` complex or magnitude.

        ``magnitude``: fit ``|images|`` with polarity restoration even when complex.

        Returns ``"M0"`` (``|a|``, units of the images), ``"T1"`` (ms) and
        ``"efficiency"`` (``-Re(b / a) / 2``), float32 ``(Y, X)``; 0 without signal.
        """
        r, a, b, signal = self._fit_three_parameter(images, grid, iterations, magnitude)
        ok = signal & (a.abs() > 0)
        eff = torch.where(ok, -(b / torch.where(ok, a, torch.ones_like(a))).real / 2, torch.zeros_like(r))
        shape = images.shape[-2:]
        z = torch.zeros_like(r)
        return {"M0": torch.where(ok, a.abs(), z).float().reshape(shape),
                "T1": torch.where(ok, 1.0 / r, z).float().reshape(shape),
                "efficiency": eff.float().reshape(shape)}


class LookLocker(InversionRecovery):
    """Look-Locker / MOLLI: ``x(TI) = A - B exp(-TI / T1*)``, ``T1 = T1* (B / A - 1)``.

    The readouts during the recovery drive the magnetisation to a steady state below M0
    with an apparent time constant ``T1* < T1``; the three-parameter fit and the correction
    ``T1 = T1* (B / A - 1)`` are Deichmann and Haase (J Magn Reson 1992) and MOLLI's
    (Messroghli et al., MRM 2004). ``TI`` are the effective inversion times of the images
    (all inversions of a 5(3)3 scheme merged). ``A`` complex; the generator outputs ``A``,
    ``T1*`` and ``beta = B / A`` (in [1.2, 4]). Magnitude data: polarity restoration as
    :class:`InversionRecovery`.

    Parameters
    ----------
    ti_ms : sequence of float
        ``(E,)`` effective inversion times in ms, E >= 3.
    t1_min_ms, t1_max_ms : float
        Range of T1 (ms); T1* is searched in ``[t1_min / 2, t1_max]``.

    Units and conventions: ms; mrpro's ``MOLLI`` model (recent versions) is
    ``a (1 - (1 + c) exp(-t / T1*))``, ``T1* = T1 / c``, parameterised by ``(a, c, T1)`` with
    times in seconds: its ``c`` is ``beta - 1 = B / A - 1`` here, the same curve.
    """

    names = ("M0", "T1", "T1star", "A", "B")
    amplitude_names = ("M0", "A", "B")

    def _rate_range(self):
        return 1.0 / self.t1_max, 2.0 / self.t1_min

    def forward(self, a: torch.Tensor, t1star: torch.Tensor, beta: torch.Tensor | float = 2.0,
                contrasts: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``A (1 - beta exp(-TI / T1*))`` ``(B, Y, X)``; ``a`` complex, ``t1star`` ms, ``beta = B / A``."""
        k = torch.as_tensor(beta, dtype=torch.float32, device=t1star.device).expand_as(t1star)
        return self.render(a, [t1star, k], contrasts)

    def _curve(self, t, reals):
        t1s, beta = reals
        return 1.0 - beta[None] * torch.exp(-t[:, None, None] / t1s[None])

    def generator_parameters(self, *, t1_init_ms: float = 1000.0, **_: float) -> tuple[RealParameter, ...]:
        """``T1*`` (log, ``[t1_min / 2, t1_max]``, initial 0.6 ``t1_init_ms``) and ``beta = B / A`` in [1.2, 4]."""
        lo = self.t1_min / 2.0
        init = min(max(0.6 * float(t1_init_ms), 1.01 * lo), 0.99 * self.t1_max)
        return (RealParameter("T1star", lo, self.t1_max, init, True),
                RealParameter("beta", 1.2, 4.0, 2.6, False))

    def _corrected(self, a_abs: torch.Tensor, b_signed: torch.Tensor, t1star: torch.Tensor) -> dict[str, torch.Tensor]:
        ok = (a_abs > 0) & (t1star > 0)
        ratio = torch.where(ok, b_signed / torch.where(ok, a_abs, torch.ones_like(a_abs)), torch.zeros_like(a_abs))
        t1 = torch.where(ok & (ratio > 1), (t1star * (ratio - 1)).clamp(self.t1_min, self.t1_max),
                         torch.zeros_like(t1star))
        z = torch.zeros_like(a_abs)
        return {"M0": torch.where(ok, a_abs * (ratio - 1), z).clamp_min(0).float(), "T1": t1.float(),
                "T1star": torch.where(ok, t1star, z).float(), "A": torch.where(ok, a_abs, z).float(),
                "B": torch.where(ok, b_signed, z).float()}

    def maps_of(self, m0, reals):
        a = m0.abs().float()
        return self._corrected(a, a * reals[1].float(), reals[0].float())

    @torch.no_grad()
    def fit_maps(self, images: torch.Tensor, *, grid: int = 200, iterations: int = 10,
                 magnitude: bool = False) -> dict[str, torch.Tensor]:
        """Three-parameter fit and MOLLI correction; ``images`` ``(E, Y, X)`` complex or magnitude.

        Returns float32 ``(Y, X)``: ``"T1"`` (ms, ``T1* (B / A - 1)`` clamped to the range,
        0 where ``B / A <= 1``), ``"T1star"`` (ms), ``"A"``, ``"B"`` (``B`` signed along
        ``A``'s phase) and ``"M0" = B - A`` (units of the images); 0 without signal.
        """
        r, a, b, signal = self._fit_three_parameter(images, grid, iterations, magnitude)
        a_abs = a.abs()
        unit = torch.where(a_abs > 0, a / torch.where(a_abs > 0, a_abs, torch.ones_like(a_abs)), torch.ones_like(a))
        b_signed = -(b * unit.conj()).real
        maps = self._corrected(torch.where(signal, a_abs, torch.zeros_like(a_abs)), b_signed, 1.0 / r)
        return {k: v.reshape(images.shape[-2:]) for k, v in maps.items()}


class _SingleBasis(_T1Model):
    """``x_e = M0 f_e(T1)`` with a real ``f > 0``: one complex amplitude, projected out."""

    def maps_of(self, m0, reals):
        return {"M0": m0.abs().float(), "T1": reals[0].float()}

    def generator_parameters(self, *, t1_init_ms: float = 1000.0, **_: float) -> tuple[RealParameter, ...]:
        """``T1`` on a log scale inside the [mapping] range."""
        if not self.t1_min < float(t1_init_ms) < self.t1_max:
            raise ProtocolError(f"model.t1_init_ms = {t1_init_ms} must lie inside the T1 range "
                                f"({self.t1_min}, {self.t1_max}) ms of [mapping]")
        return (RealParameter("T1", self.t1_min, self.t1_max, float(t1_init_ms), True),)

    def forward(self, m0: torch.Tensor, t1: torch.Tensor, contrasts: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(B, Y, X)`` of ``m0`` complex ``(Y, X)`` and ``t1`` ms ``(Y, X)``."""
        return self.render(m0, [t1], contrasts)

    def _extra(self, shape) -> torch.Tensor | None:
        return None

    @torch.no_grad()
    def fit_maps(self, images: torch.Tensor, *, grid: int = 200, iterations: int = 10) -> dict[str, torch.Tensor]:
        """Variable-projection fit (see :class:`_T1Model`): ``images`` ``(E, Y, X)`` complex or magnitude.

        Returns ``"M0"`` (units of the images) and ``"T1"`` (ms), float32 ``(Y, X)``; 0 without signal.
        """
        s, _ = self._prepare(images)
        r, c, _ = self._varpro(s, self._extra(images.shape[-2:]), grid, iterations)
        signal = s.abs().amax(1) > 0
        z = torch.zeros_like(r)
        shape = images.shape[-2:]
        return {"M0": torch.where(signal, c[:, 0].abs(), z).float().reshape(shape),
                "T1": torch.where(signal, 1.0 / r, z).float().reshape(shape)}


class SaturationRecovery(_SingleBasis):
    """Saturation recovery ``x(TS) = M0 (1 - exp(-TS / T1))`` (TS: time after the saturation).

    Parameters
    ----------
    ts_ms : sequence of float
        ``(E,)`` saturation-recovery times in ms (ISMRMRD files hold them in the TI list), E >= 2.
    t1_min_ms, t1_max_ms : float
        Range of T1, ms.

    Units: ms; mrpro's ``SaturationRecovery`` uses seconds and the same curve.
    """

    def __init__(self, ts_ms: Sequence[float], *, t1_min_ms: float = 50.0, t1_max_ms: float = 5000.0):
        super().__init__(_check_times(ts_ms, "saturation times (ms)", "mapping.ti_ms", 2), t1_min_ms, t1_max_ms)

    def _curve(self, t, reals):
        return 1.0 - torch.exp(-t[:, None, None] / reals[0][None])

    def _basis(self, r, extra):
        t = self.t.to(r)
        e = torch.exp(-t[None, :] * r[:, None])
        return (1.0 - e)[..., None], (t[None, :] * e)[..., None]


class VariableFlipAngle(_SingleBasis):
    """Spoiled gradient echo at several flip angles (DESPOT1; Deoni et al., MRM 2003).

    ``x(alpha) = M0 sin(a) (1 - E1) / (1 - cos(a) E1)``, ``E1 = exp(-TR / T1)``,
    ``a = B1 alpha`` with the relative transmit field ``B1`` (a map, default 1).

    Parameters
    ----------
    flip_angles_deg : sequence of float
        ``(E,)`` nominal flip angles in degrees, E >= 2, distinct, in (0, 180).
    tr_ms : float
        Repetition time, ms (> 0).
    b1 : array or tensor, optional
        ``(Y, X)`` relative B1 (actual / nominal flip angle); it must match the images.
    t1_min_ms, t1_max_ms : float
        Range of T1, ms.

    :meth:`fit_maps` fits the nonlinear equation by variable projection (default) or the
    linearised one (``method="linear"``): ``x / sin a = E1 x / tan a + M0 (1 - E1)``, a
    straight line through the points ``(x / tan a, x / sin a)`` of the magnitudes.
    Units: degrees and ms; mrpro's ``VariableFlipAngle`` takes radians and seconds, with
    the same equation.
    """

    def __init__(self, flip_angles_deg: Sequence[float], tr_ms: float, *, b1=None,
                 t1_min_ms: float = 50.0, t1_max_ms: float = 5000.0):
        fa = _check_times(flip_angles_deg, "flip angles (deg)", "mapping.flip_angles_deg", 2)
        if bool(torch.any(fa <= 0)) or bool(torch.any(fa >= 180)):
            raise ProtocolError(f"flip angles must lie in (0, 180) degrees, got {fa.tolist()}")
        if not (math.isfinite(float(tr_ms)) and float(tr_ms) > 0):
            raise ProtocolError(f"VFA needs TR > 0 ms, got {tr_ms}; set mapping.tr_ms")
        super().__init__(torch.deg2rad(fa), t1_min_ms, t1_max_ms)
        self.tr = float(tr_ms)
        if b1 is not None:
            b1 = torch.as_tensor(b1, dtype=torch.float32)
            if b1.ndim != 2 or not bool(torch.all(torch.isfinite(b1))) or bool(torch.any(b1 <= 0)):
                raise ProtocolError(f"the B1 map must be a finite positive (Y, X) array, got shape {tuple(b1.shape)}")
            self.register_buffer("b1", b1)
        else:
            self.b1 = None

    def _b1_for(self, shape) -> torch.Tensor | None:
        if self.b1 is None:
            return None
        if tuple(self.b1.shape) != tuple(shape):
            raise ShapeError(f"the B1 map is {tuple(self.b1.shape)} but the images are {tuple(shape)}")
        return self.b1

    def _curve(self, t, reals):
        t1 = reals[0]
        b1 = self._b1_for(t1.shape)
        a = t[:, None, None] * (1.0 if b1 is None else b1[None].to(t1))
        e1 = torch.exp(-self.tr / t1)[None]
        return torch.sin(a) * (1 - e1) / (1 - torch.cos(a) * e1)

    def _extra(self, shape):
        b1 = self._b1_for(shape)
        return None if b1 is None else b1.reshape(-1).to(torch.float64)

    def _basis(self, r, extra):
        a = self.t.to(r)[None, :] * (1.0 if extra is None else extra.to(r)[:, None])  # (M, E)
        e1 = torch.exp(-self.tr * r)[:, None]
        den = 1 - torch.cos(a) * e1
        f = torch.sin(a) * (1 - e1) / den
        # d f / d E1 = sin a (cos a - 1) / den^2, d E1 / d r = -TR E1
        df = torch.sin(a) * (torch.cos(a) - 1) / den ** 2 * (-self.tr * e1)
        return f[..., None], df[..., None]

    @torch.no_grad()
    def fit_maps(self, images: torch.Tensor, *, grid: int = 200, iterations: int = 10,
                 method: str = "nonlinear") -> dict[str, torch.Tensor]:
        """Pixel-wise DESPOT1 fit; ``method`` ``"nonlinear"`` (variable projection) or ``"linear"``.

        Returns ``"M0"`` (units of the images) and ``"T1"`` (ms), float32 ``(Y, X)``; 0 without signal.
        """
        if method == "nonlinear":
            return super().fit_maps(images, grid=grid, iterations=iterations)
        if method != "linear":
            raise ProtocolError(f"VFA fit method must be 'nonlinear' or 'linear', got {method!r}")
        s, _ = self._prepare(images)
        s = s.abs().real if torch.is_complex(s) else s.abs()
        extra = self._extra(images.shape[-2:])
        a = self.t.to(s)[None, :] * (1.0 if extra is None else extra[:, None])
        yv, xv = s / torch.sin(a), s / torch.tan(a)
        xm, ym = xv.mean(1, keepdim=True), yv.mean(1, keepdim=True)
        sxx = ((xv - xm) ** 2).sum(1)
        slope = torch.where(sxx > 0, ((xv - xm) * (yv - ym)).sum(1) / sxx.clamp_min(1e-300), torch.zeros_like(sxx))
        e1 = slope.clamp(math.exp(-self.tr / self.t1_min), math.exp(-self.tr / self.t1_max))
        m0 = (ym[:, 0] - slope * xm[:, 0]) / (1 - e1)
        signal = s.amax(1) > 0
        z = torch.zeros_like(e1)
        shape = images.shape[-2:]
        return {"M0": torch.where(signal, m0.clamp_min(0), z).float().reshape(shape),
                "T1": torch.where(signal, -self.tr / torch.log(e1), z).float().reshape(shape)}


def signal_model(name: str, echo_times_ms: Sequence[float] = (), **options) -> nn.Module:
    """The signal model ``name`` (one of :data:`SIGNAL_MODELS`) for these contrasts.

    ``t2``: ``echo_times_ms`` (or ``te_ms``) and ``t2_min_ms`` / ``t2_max_ms``;
    ``ir``, ``molli``, ``sr``: ``ti_ms`` and ``t1_min_ms`` / ``t1_max_ms``;
    ``vfa``: ``flip_angles_deg``, ``tr_ms``, optional ``b1`` and the T1 range.
    Options that do not apply to the model are ignored.
    """
    if name not in SIGNAL_MODELS:
        raise ProtocolError(f"unknown mapping.model {name!r}; signal models: {', '.join(SIGNAL_MODELS)}")
    t1 = {k: options[k] for k in ("t1_min_ms", "t1_max_ms") if k in options}
    if name == "t2":
        te = options.get("te_ms", echo_times_ms)
        return T2Decay(te, **{k: options[k] for k in ("t2_min_ms", "t2_max_ms") if k in options})
    if name in ("ir", "molli", "sr"):
        ti = options.get("ti_ms", echo_times_ms)
        cls = {"ir": InversionRecovery, "molli": LookLocker, "sr": SaturationRecovery}[name]
        return cls(ti, **t1)
    return VariableFlipAngle(options.get("flip_angles_deg", echo_times_ms), options.get("tr_ms", 0.0),
                             b1=options.get("b1"), **t1)


def contrast_values_of(header_values: Sequence[float], num_contrasts: int, override: Sequence[float],
                       what: str, key: str, header_field: str) -> list[float]:
    """One value per frame (ms or deg): ``override`` if given, else the header's list.

    Raises
    ------
    InputFileError
        When neither gives ``num_contrasts`` values; the message names ``key``.
    """
    v = [float(x) for x in (override or header_values)]
    if len(v) != num_contrasts:
        src = key if override else f"the file header ({header_field})"
        raise InputFileError(
            f"parameter mapping needs one {what} per frame: the data have {num_contrasts} frames "
            f"(contrasts) but {src} gives {len(v)} value(s) {v}; set them with --set {key}=[v1, v2, ...]"
        )
    return v


def acquisition_parameters(model: str, header, num_contrasts: int, mapping: dict) -> dict:
    """The signal model's acquisition options from a file header and the protocol's [mapping].

    Parameters
    ----------
    model : str
        ``mapping.model``.
    header : mridip.data.Header
        ``te_ms``, ``ti_ms``, ``tr_ms``, ``flip_angle_deg`` lists (ms, deg) from the file.
    num_contrasts : int
        Frames of the data.
    mapping : dict
        The protocol's [mapping] values (``echo_times_ms``, ``ti_ms``, ``flip_angles_deg``,
        ``tr_ms``; empty / 0 = from the file).

    Returns
    -------
    dict
        Keyword options of :func:`signal_model` (``te_ms``; ``ti_ms``; ``flip_angles_deg``, ``tr_ms``).
    """
    if model == "t2":
        return {"te_ms": echo_times_of(header.te_ms, num_contrasts, mapping.get("echo_times_ms", []))}
    if model in ("ir", "molli", "sr"):
        what = "saturation time (TS, stored as TI)" if model == "sr" else "inversion time (TI)"
        return {"ti_ms": contrast_values_of(header.ti_ms, num_contrasts, mapping.get("ti_ms", []), what,
                                            "mapping.ti_ms", "sequenceParameters/TI")}
    fa = contrast_values_of(header.flip_angle_deg, num_contrasts, mapping.get("flip_angles_deg", []),
                            "flip angle (deg)", "mapping.flip_angles_deg", "sequenceParameters/flipAngle_deg")
    tr = float(mapping.get("tr_ms", 0.0) or 0.0)
    if tr <= 0:
        if not header.tr_ms:
            raise InputFileError("VFA T1 mapping needs the repetition time: the file header has no "
                                 "sequenceParameters/TR; set it with --set mapping.tr_ms=TR (ms)")
        tr = float(header.tr_ms[0])
    return {"flip_angles_deg": fa, "tr_ms": tr}
