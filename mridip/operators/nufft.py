"""NUFFT backends of :class:`~mridip.operators.radial.RadialSense`: finufft / cufinufft and torchkbnufft.

Every backend evaluates the same two unnormalised sums, per frame ``t`` (one trajectory
per frame) and for every coil image ``c`` at once::

    type 2 (forward):  y[t, c, k] = sum_n u[t, c, n] exp(-i omega[t, :, k] . (n - n0))
    type 1 (adjoint):  u[t, c, n] = sum_k y[t, c, k] exp(+i omega[t, :, k] . (n - n0))

with ``n0 = (Y // 2, X // 2)`` and ``omega`` in radians/voxel, component 0 along the image
rows (Y). The operator applies ``sqrt(w) / sqrt(Y X)`` around them (see
:mod:`mridip.operators.radial`), so all backends share one model and one scaling and
agree to their NUFFT accuracy.

Backends
--------
``"finufft"``
    The Flatiron Institute NUFFT (Barnett, Magland & af Klinteberg, SIAM J. Sci. Comput.
    41:C479, 2019; exponential-of-semicircle kernel) on CPU tensors, and its CUDA version
    cufinufft (Shih et al., IPDPSW 2021) on CUDA tensors. One plan per frame and transform
    type, ``n_trans`` = the number of coil images, so all coils go through one call; the
    points are sorted once per plan and plans are kept (up to :data:`PLAN_CACHE_BYTES`
    of fine grids). Tolerance :data:`FINUFFT_EPS` = 1e-5 in single precision; on CPU the
    1.25x fine grid (:data:`FINUFFT_CPU_OPTS`), where complex64 rounding limits the
    measured relative error against an explicit DFT to ~3e-5 (8e-6 on cufinufft's 2x grid;
    tests/operators/test_radial.py).
    CPU threads: ``torch.get_num_threads()`` at call time, so the package's thread policy
    applies.
``"torchkbnufft"``
    Kaiser-Bessel table interpolation (Fessler & Sutton, IEEE TSP 51:560, 2003;
    Muckley et al., 2020), 6 neighbours on a 2x grid: ~1e-3 relative error. Pure torch,
    runs wherever torch does.

``"auto"`` (:func:`default_backend`) is finufft where it is importable (cufinufft for
CUDA tensors), else torchkbnufft.

Autograd
--------
:class:`FinufftNufft` applies the transforms through ``torch.autograd.Function``\\ s
whose backward is the exact adjoint (type 1 for type 2 and back), itself differentiable,
so gradients reach the image and, through the product ``S_c x`` formed in torch, the coil
maps; torchkbnufft's own functions are differentiable in the same way.
"""

from __future__ import annotations

import math

import torch

from mridip.errors import DependencyError, ProtocolError

BACKENDS = ("finufft", "torchkbnufft")
BACKEND_CHOICES = ("auto",) + BACKENDS
#: finufft / cufinufft relative tolerance for complex64 data (the package's dtype).
FINUFFT_EPS = 1e-5
#: finufft (CPU) options of the type-1 / type-2 plans: the 1.25x fine grid (Barnett et al.
#: 2019, sec. 4) with FFTW_ESTIMATE plans: 5x faster than the 2x grid for 128 x 128 x 8 coils
#: (3 ms against 16 ms per frame, one thread) and no planning cost; complex64 rounding
#: then limits the accuracy to ~3e-5 (8e-6 on the 2x grid), still 30x below torchkbnufft's.
FINUFFT_CPU_OPTS = {"upsampfac": 1.25, "showwarn": 0}
#: Upper bound (bytes) of the fine grids held by one operator's cached finufft plans;
#: beyond it plans are made per call (plan + sort cost ~1 ms per frame on CPU).
PLAN_CACHE_BYTES = 2**28

_HINT = {
    "finufft": "pip install finufft",
    "cufinufft": "pip install cufinufft (or pip install 'mridip[gpu]'); needs a CUDA 12 runtime",
    "torchkbnufft": "pip install torchkbnufft",
}


def _import(module: str):
    """Import ``module``, silencing torch's ``torch.jit.script`` DeprecationWarning that
    torchkbnufft triggers at import (it scripts its kernels): a library's matter, not the user's."""
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=DeprecationWarning)
        return importlib.import_module(module)


def _importable(module: str) -> bool:
    try:
        _import(module)
    except Exception:  # ImportError, or a CUDA library that fails to load
        return False
    return True


def _lib_for(backend: str, device: torch.device) -> str:
    if backend == "finufft":
        return "cufinufft" if device.type == "cuda" else "finufft"
    return backend


def available_backends(device: str | torch.device = "cpu") -> list[str]:
    """Backend names usable for tensors on ``device``, fastest first.

    ``"finufft"`` is listed for CPU when :mod:`finufft` imports and for CUDA when
    :mod:`cufinufft` does; ``"torchkbnufft"`` when it imports (a dependency of mridip).
    """
    device = torch.device(device)
    return [b for b in BACKENDS if _importable(_lib_for(b, device))]


def default_backend(device: str | torch.device = "cpu") -> str:
    """What ``backend="auto"`` picks on ``device``: finufft (cufinufft on CUDA) if importable, else torchkbnufft."""
    avail = available_backends(device)
    if not avail:
        raise DependencyError(
            "no NUFFT backend is installed: pip install finufft (CPU), cufinufft (CUDA) or torchkbnufft"
        )
    return avail[0]


def resolve_backend(backend: str | None, device: str | torch.device = "cpu") -> str:
    """The backend name for ``backend`` (``"auto"``, ``"finufft"``, ``"torchkbnufft"`` or None = auto).

    Raises
    ------
    ProtocolError
        Unknown name.
    DependencyError
        A named backend whose library is not installed (with the pip command).
    """
    device = torch.device(device)
    name = "auto" if backend is None else str(backend).lower()
    if name not in BACKEND_CHOICES:
        raise ProtocolError(f"unknown NUFFT backend {backend!r}; allowed: {', '.join(BACKEND_CHOICES)}")
    if name == "auto":
        return default_backend(device)
    lib = _lib_for(name, device)
    if not _importable(lib):
        raise DependencyError(
            f"NUFFT backend {name!r} on {device.type} needs {lib}, which is not installed: {_HINT[lib]}; "
            f"or choose one of {available_backends(device)} (protocol key data.nufft_backend)"
        )
    return name


# ------------------------------------------------------------------------ finufft plans
def _nthreads() -> int:
    return max(1, int(torch.get_num_threads()))


class _PlanCache(dict):
    """Plans keyed by (kind, frame, n_trans, threads); copies and pickles start empty
    (a finufft plan is a C object that neither copies nor pickles)."""

    def __deepcopy__(self, memo):
        return _PlanCache()

    def __reduce__(self):
        return (_PlanCache, ())


class FinufftNufft:
    """finufft (CPU) / cufinufft (CUDA) type-2 / type-1 pair on fixed per-frame trajectories.

    Parameters
    ----------
    trajectory : torch.Tensor
        float32 ``(T, 2, K)`` in radians/voxel, (ky, kx); its device selects finufft or cufinufft.
    im_size : tuple of int
        ``(Y, X)`` modes of the image grid.
    eps : float
        Relative tolerance (default :data:`FINUFFT_EPS`).
    spread_only : bool
        Spreading / interpolation with the kernel only, no FFT and no deconvolution
        (finufft's ``spreadinterponly``; for Pipe's density compensation): ``im_size``
        is then the grid itself.
    """

    def __init__(self, trajectory: torch.Tensor, im_size: tuple[int, int], *, eps: float = FINUFFT_EPS,
                 spread_only: bool = False, _points=None, _shared=None):
        self.device = trajectory.device
        self.cuda = self.device.type == "cuda"
        self.lib = _lib_for("finufft", self.device)
        if not _importable(self.lib):
            raise DependencyError(f"the finufft NUFFT backend needs {self.lib}: {_HINT[self.lib]}")
        self.im_size = tuple(int(s) for s in im_size)
        self.eps = float(eps)
        self.spread_only = bool(spread_only)
        t, _, k = trajectory.shape
        self.frames, self.samples = int(t), int(k)
        if _points is None:
            # finufft wants the points in [-pi, pi) (or up to 3 pi); contiguous per frame
            pts = trajectory.detach().to(torch.float32).contiguous()
            _points = [(pts[i, 0].contiguous(), pts[i, 1].contiguous()) for i in range(t)]
            if not self.cuda:
                _points = [(a.numpy(), b.numpy()) for a, b in _points]
        self._points = _points
        if _shared is None:
            # plans of the frames of the operator this one was made from, keyed by that
            # operator's frame index, so select_frames (mini-batches) reuses them
            ny, nx = self.im_size
            grid = ny * nx * (1 if spread_only else 4) * 8  # complex64 fine grid per transform (<= 2x)
            _shared = (_PlanCache(), list(range(t)), 2 * t * grid * 2 <= PLAN_CACHE_BYTES)
        self._plans, self._frame_ids, self._cache_ok = _shared

    def select(self, idx: torch.Tensor) -> "FinufftNufft":
        """The same transforms for frames ``idx`` only (points and plan cache shared)."""
        idx = [int(i) for i in idx.reshape(-1).tolist()]
        dummy = torch.empty(len(idx), 2, self.samples, device=self.device)
        return FinufftNufft(dummy, self.im_size, eps=self.eps, spread_only=self.spread_only,
                            _points=[self._points[i] for i in idx],
                            _shared=(self._plans, [self._frame_ids[i] for i in idx], self._cache_ok))

    # ---------------------------------------------------------------- plans
    def _plan(self, kind: int, frame: int, n_trans: int):
        threads = 1 if self.cuda else _nthreads()
        key = (kind, self._frame_ids[frame], n_trans, threads)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        opts = {} if self.cuda else dict(FINUFFT_CPU_OPTS)
        if self.spread_only:
            opts["spreadinterponly"] = 1
            opts["upsampfac"] = 2.0
        if self.cuda:
            import cufinufft

            opts["gpu_device_id"] = self.device.index if self.device.index is not None else torch.cuda.current_device()
            plan = cufinufft.Plan(kind, self.im_size, n_trans=n_trans, eps=self.eps, dtype="complex64", **opts)
        else:
            import finufft

            plan = finufft.Plan(kind, self.im_size, n_trans=n_trans, eps=self.eps, dtype="complex64",
                                nthreads=threads, **opts)
        x, y = self._points[frame]
        plan.setpts(x, y)
        if self._cache_ok:
            self._plans[key] = plan
        return plan

    def _run(self, kind: int, data: torch.Tensor) -> torch.Tensor:
        """Apply type ``kind`` to ``data`` without autograd: (T, n, Y, X) -> (T, n, K) or back."""
        data = data.detach().to(torch.complex64).resolve_conj().contiguous()
        t, n = int(data.shape[0]), int(data.shape[1])
        if t != self.frames:
            raise ValueError(f"FinufftNufft: {t} frames of data for {self.frames} trajectories")
        oshape = (t, n, self.samples) if kind == 2 else (t, n) + self.im_size
        out = torch.empty(oshape, dtype=torch.complex64, device=self.device)
        if n == 0 or self.samples == 0:
            return out.zero_()
        for i in range(t):
            plan = self._plan(kind, i, n)
            if self.cuda:
                plan.execute(data[i], out=out[i])
            else:
                plan.execute(data[i].numpy(), out=out[i].numpy())
        return out

    # ------------------------------------------------------------ transforms
    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Type 2, differentiable: complex ``(T, n, Y, X)`` -> ``(T, n, K)``."""
        return _Type2.apply(img, self)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Type 1, differentiable: complex ``(T, n, K)`` -> ``(T, n, Y, X)``."""
        return _Type1.apply(y, self)


class _Type2(torch.autograd.Function):
    """``y = F u`` (type 2); ``u.grad = F^H y.grad`` (PyTorch's convention for a C-linear map)."""

    @staticmethod
    def forward(ctx, img, op):
        ctx.op = op
        return op._run(2, img)

    @staticmethod
    def backward(ctx, grad):
        return _Type1.apply(grad, ctx.op), None


class _Type1(torch.autograd.Function):
    """``u = F^H y`` (type 1); ``y.grad = F u.grad``."""

    @staticmethod
    def forward(ctx, y, op):
        ctx.op = op
        return op._run(1, y)

    @staticmethod
    def backward(ctx, grad):
        return _Type2.apply(grad, ctx.op), None


# ----------------------------------------------------------------- torchkbnufft wrapper
def _tkbn():
    try:
        return _import("torchkbnufft")
    except ImportError as exc:  # pragma: no cover - installed with the package
        raise DependencyError(f"the torchkbnufft NUFFT backend needs torchkbnufft: {_HINT['torchkbnufft']}") from exc


class TkbnNufft:
    """torchkbnufft's table-interpolation NUFFT with the :class:`FinufftNufft` interface.

    The interpolation tables do not depend on the trajectory, so :meth:`select` returns
    the same modules with a sliced trajectory.
    """

    def __init__(self, trajectory: torch.Tensor, im_size: tuple[int, int], *, grid_size=None,
                 numpoints: int = 6, _modules=None):
        self.trajectory = trajectory
        self.im_size = tuple(int(s) for s in im_size)
        self.grid_size = tuple(grid_size) if grid_size else tuple(2 * s for s in self.im_size)
        self.numpoints = int(numpoints)
        if _modules is None:
            tkbn = _tkbn()
            kw = dict(im_size=self.im_size, grid_size=self.grid_size, numpoints=self.numpoints,
                      device=trajectory.device)
            _modules = (tkbn.KbNufft(**kw), tkbn.KbNufftAdjoint(**kw))
        self._fwd, self._adj = _modules

    @property
    def device(self) -> torch.device:
        return self.trajectory.device

    def select(self, idx: torch.Tensor) -> "TkbnNufft":
        return TkbnNufft(self.trajectory[idx], self.im_size, grid_size=self.grid_size,
                         numpoints=self.numpoints, _modules=(self._fwd, self._adj))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self._fwd(img, self.trajectory, norm=None)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._adj(y.contiguous(), self.trajectory, norm=None)


def make_nufft(backend: str, trajectory: torch.Tensor, im_size: tuple[int, int], *,
               grid_size=None, numpoints: int = 6):
    """The unnormalised type-2 / type-1 pair of a resolved ``backend`` on ``trajectory (T, 2, K)``.

    ``grid_size`` and ``numpoints`` apply to torchkbnufft only (finufft chooses its own
    kernel from :data:`FINUFFT_EPS` on a 2x grid).
    """
    if backend == "finufft":
        return FinufftNufft(trajectory, im_size)
    if backend == "torchkbnufft":
        return TkbnNufft(trajectory, im_size, grid_size=grid_size, numpoints=numpoints)
    raise ProtocolError(f"unknown NUFFT backend {backend!r}; allowed: {', '.join(BACKENDS)}")


# ------------------------------------------------------------------ functional helpers
def nufft_adjoint(y: torch.Tensor, trajectory: torch.Tensor, image_shape: tuple[int, int], *,
                  backend: str | None = "auto") -> torch.Tensor:
    """Per-coil adjoint NUFFT with the package's scaling: ``(T, C, K) -> (T, C, Y, X)``.

    ``u[t, c, n] = 1 / sqrt(Y X) sum_k y[t, c, k] exp(+i omega[t, :, k] . (n - n0))``, all
    coils in one call (e.g. density-compensated gridding of coil images).

    Parameters
    ----------
    y : torch.Tensor
        complex64 ``(T, C, K)``.
    trajectory : torch.Tensor
        float ``(T, 2, K)`` in radians/voxel, (ky, kx).
    image_shape : tuple of int
        ``(Y, X)``.
    backend : str
        ``"auto"``, ``"finufft"`` or ``"torchkbnufft"``.
    """
    ny, nx = (int(s) for s in image_shape)
    name = resolve_backend(backend, y.device)
    op = make_nufft(name, trajectory.to(device=y.device, dtype=torch.float32), (ny, nx))
    return op.adjoint(y.to(torch.complex64)) / math.sqrt(ny * nx)


@torch.no_grad()
def toeplitz_kernels(backend: str, trajectory: torch.Tensor, weights: torch.Tensor,
                     im_size: tuple[int, int], *, grid_size=None, numpoints: int = 6) -> torch.Tensor:
    """Toeplitz kernels of ``A^H A`` for ``A = sqrt(w) / sqrt(Y X) F``: real float32 ``(T, 2Y, 2X)``.

    The weighted point-spread function ``p_t[d] = sum_k w[t, k] / (Y X) exp(+i omega_k . d)``
    for ``d`` in ``[-Y, Y) x [-X, X)`` is one type-1 NUFFT of the weights onto the
    ``2Y x 2X`` grid; circularly shifted so that ``d = 0`` is element 0 and Fourier
    transformed it is the diagonal ``D_t`` of the circulant embedding (Fessler et al.,
    IEEE TSP 53:3393, 2005). Only ``|d| < (Y, X)`` enters the cropped product, where the
    PSF of real weights is Hermitian, so ``D_t`` is real up to the unused ``d = -Y, -X``
    lines: the real part is kept. ``1 / (4 Y X)`` of the unnormalised FFT pair is folded in.
    """
    ny, nx = (int(s) for s in im_size)
    w = (weights.to(torch.float32) / (ny * nx)).unsqueeze(1)  # (T, 1, K)
    if backend == "torchkbnufft":
        tkbn = _tkbn()
        kern = tkbn.calc_toeplitz_kernel(
            trajectory, (ny, nx), weights=w, norm=None,
            grid_size=grid_size or (2 * ny, 2 * nx), numpoints=numpoints,
        )  # (T, 2Y, 2X), Hermitian-symmetrised
        return kern.real.to(torch.float32).contiguous()
    op = FinufftNufft(trajectory, (2 * ny, 2 * nx))
    psf = op._run(1, w.to(torch.complex64))[:, 0]  # (T, 2Y, 2X), index j <-> d = j - (Y, X)
    psf = torch.fft.ifftshift(psf, dim=(-2, -1))
    return (torch.fft.fft2(psf).real / (4 * ny * nx)).to(torch.float32).contiguous()


class SpreadDensity:
    """``(C w)_j = sum_i w_i phi(k_j - k_i)`` on fixed per-frame trajectories ``(T, 2, K)``:
    ``w (T, K)`` spread onto ``grid`` and read back with finufft's exponential-of-semicircle
    kernel (``spreadinterponly``; kernel width set by :data:`FINUFFT_EPS`, ~6 points of
    ``grid``). For Pipe's density compensation; plans are made once."""

    def __init__(self, trajectory: torch.Tensor, grid: tuple[int, int]):
        self._op = FinufftNufft(trajectory, grid, spread_only=True)

    @torch.no_grad()
    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        g = self._op._run(1, w.to(torch.complex64).unsqueeze(1))  # (T, 1, gy, gx)
        return self._op._run(2, g)[:, 0].real  # (T, K)


__all__ = [
    "BACKENDS", "BACKEND_CHOICES", "FINUFFT_EPS", "available_backends", "default_backend",
    "resolve_backend", "FinufftNufft", "TkbnNufft", "make_nufft", "nufft_adjoint",
    "toeplitz_kernels", "SpreadDensity",
]
