"""The one operator interface.

Every forward model is a :class:`LinearOperator` (a ``torch.nn.Module``)::

    y = A(x)            # forward, x: A.ishape -> y: A.oshape
    x = A.adjoint(y)    # A^H
    z = A.normal(x)     # A^H A (Toeplitz / masked FFT, never slower than adjoint(forward))

Maps, masks, trajectories and kernels are registered buffers, so ``A.to(device)`` moves
them. Shapes are checked on every call and a mismatch raises :class:`~mridip.errors.ShapeError`
naming the operator and both shapes. Tensors are complex64.

Measured samples: ``A.sample_mask`` is a bool tensor of the k-space shape without the
coil axis (Cartesian ``(T, Ky, Kx)``, radial ``(T, K)``), True where a sample is measured.
``A.restrict(m)`` returns a new operator of the same kind that measures only ``m & A.sample_mask``
(forward returns zeros elsewhere). The fitting loop uses it to hold out k-space samples
for self-validation; nothing is changed in place.

Frames: ``A.select_frames(idx)`` returns the operator of frames ``idx`` (a LongTensor of
frame indices) only, ``ishape (len(idx), Y, X)``, sharing maps with ``A``; the fitting
loop uses it for mini-batches of frames.
"""

from __future__ import annotations

import torch
from torch import nn

from mridip.errors import ShapeError


class LinearOperator(nn.Module):
    """Base class of all forward models ``A: ishape -> oshape``.

    Subclasses implement ``_forward`` and ``_adjoint`` (and ``_normal`` when a faster path
    than ``_adjoint(_forward(x))`` exists), ``sample_mask`` and ``restrict``.

    Parameters
    ----------
    ishape : tuple of int
        Input (image) shape, e.g. ``(T, Y, X)``.
    oshape : tuple of int
        Output (k-space) shape, e.g. ``(T, C, Ky, Kx)`` or ``(T, C, K)``.
    """

    def __init__(self, ishape: tuple[int, ...], oshape: tuple[int, ...]):
        super().__init__()
        self.ishape = tuple(int(s) for s in ishape)
        self.oshape = tuple(int(s) for s in oshape)

    # ----------------------------------------------------------- public calls
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x``: ``ishape`` -> ``oshape``."""
        self._check(x, self.ishape, "forward", "input x")
        return self._forward(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^H y``: ``oshape`` -> ``ishape``."""
        self._check(y, self.oshape, "adjoint", "k-space y")
        return self._adjoint(y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x``: ``ishape`` -> ``ishape``."""
        self._check(x, self.ishape, "normal", "input x")
        return self._normal(x)

    # ------------------------------------------------------ for subclasses
    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _normal(self, x: torch.Tensor) -> torch.Tensor:
        return self._adjoint(self._forward(x))

    @property
    def sample_mask(self) -> torch.Tensor:  # pragma: no cover - abstract
        """bool tensor, k-space shape without the coil axis; True where measured."""
        raise NotImplementedError

    def restrict(self, sample_mask: torch.Tensor) -> "LinearOperator":  # pragma: no cover
        """A new operator measuring only ``sample_mask & self.sample_mask``."""
        raise NotImplementedError

    def select_frames(self, idx: torch.Tensor) -> "LinearOperator":  # pragma: no cover
        """The operator of frames ``idx`` only (LongTensor ``(B,)``): ishape ``(B, Y, X)``."""
        raise NotImplementedError

    # -------------------------------------------------------------- helpers
    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def device(self) -> torch.device:
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    def _check(self, t: torch.Tensor, shape: tuple[int, ...], call: str, what: str) -> None:
        if not torch.is_tensor(t):
            raise ShapeError(f"{self.name}.{call}: {what} must be a torch tensor, got {type(t).__name__}")
        if tuple(t.shape) != shape:
            raise ShapeError(
                f"{self.name}.{call}: {what} has shape {tuple(t.shape)}, expected {shape}"
            )
        if not t.is_complex():
            raise ShapeError(f"{self.name}.{call}: {what} must be complex (complex64), got {t.dtype}")

    def extra_repr(self) -> str:
        return f"ishape={self.ishape}, oshape={self.oshape}"


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Complex inner product ``<a, b> = sum(conj(a) * b)`` as a 0-d complex tensor."""
    return torch.vdot(a.reshape(-1), b.reshape(-1))


@torch.no_grad()
def max_eigenvalue(A: LinearOperator, iterations: int = 30, seed: int = 0) -> float:
    """Largest eigenvalue of ``A^H A`` by power iteration (for step sizes, e.g. FISTA).

    Returns the Rayleigh quotient after ``iterations`` steps from a seeded random start.
    """
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(A.ishape, dtype=torch.complex64, generator=g).to(A.device)
    x = x / torch.linalg.vector_norm(x)
    lam = 0.0
    for _ in range(iterations):
        z = A.normal(x)
        lam = float(inner(x, z).real)
        nz = torch.linalg.vector_norm(z)
        if nz == 0:
            return 0.0
        x = z / nz
    return lam
