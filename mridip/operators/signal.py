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

Units: echo times and T2 in ms; ``M0`` in the units of the images.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from mridip.errors import InputFileError, ProtocolError, ShapeError

#: Signal models by the protocol's ``mapping.model`` name.
SIGNAL_MODELS = ("t2",)


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


def signal_model(name: str, echo_times_ms: Sequence[float], **options: float) -> T2Decay:
    """The signal model ``name`` (one of :data:`SIGNAL_MODELS`) for these contrasts."""
    if name != "t2":
        raise ProtocolError(f"unknown mapping.model {name!r}; signal models: {', '.join(SIGNAL_MODELS)}")
    return T2Decay(echo_times_ms, **options)


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
