"""Warping of complex image series by displacement fields, and the motion-corrected model.

Convention (one for the whole package). A displacement field ``u`` is float
``(T, 2, Y, X)`` in pixels, component 0 = y (rows), 1 = x (columns). The warp pulls::

    (W(u_t) s)(p) = s(p + u_t(p))          p a pixel centre, (row, column) integers

by bilinear interpolation of the four pixels around ``p + u_t(p)``, with zero outside the
image (the background of an MRI slice). ``s`` is the template in reference coordinates,
``W(u_t) s`` the frame ``t``; ``u = 0`` is the identity.

For fixed ``u`` the warp is linear in ``s`` and its adjoint is the scatter-add with the
same weights: ``(W^H r)(q) = sum_p w(p, q) r(p)``, where ``w(p, q)`` is the bilinear weight
of pixel ``q`` in the interpolation at ``p + u(p)``. Both are written here explicitly
(gather / scatter-add with one weight table), so ``<W s, r> = <s, W^H r>`` holds to
rounding. The warp is also differentiable in ``u`` (through the weights, by autograd),
which is what a motion generator needs; the weights' floor is piecewise constant.

:class:`MotionSense` is ``A o W(u)`` for a fixed field: a :class:`LinearOperator` with
``ishape = A.ishape = (T, Y, X)``, a template image per frame in reference coordinates
(the M-DIP / XD-GRASP model ``y_t = A_t W(u_t) s_t``). A single static template is the
special case ``s_t = s``, whose adjoint is the sum over frames of ``MotionSense.adjoint``;
keeping one template per frame keeps the operator frame-separable, so ``restrict``,
``select_frames`` and the fitting loop's mini-batches work unchanged.
"""

from __future__ import annotations

import torch

from mridip.errors import ShapeError
from mridip.operators.base import LinearOperator


def _check_field(x_shape: tuple[int, ...], disp: torch.Tensor, where: str) -> None:
    T, Y, X = x_shape
    if disp.ndim != 4 or tuple(disp.shape) != (T, 2, Y, X):
        raise ShapeError(
            f"{where}: displacement must be (T, 2, Y, X) = {(T, 2, Y, X)} pixels (component 0 = y, "
            f"1 = x), got {tuple(disp.shape)}"
        )
    if disp.is_complex():
        raise ShapeError(f"{where}: displacement must be real (float32 pixels), got {disp.dtype}")


def bilinear_table(disp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and weights of the bilinear pull warp by ``disp``.

    Parameters
    ----------
    disp : torch.Tensor
        float ``(T, 2, Y, X)`` in pixels (component 0 = y, 1 = x).

    Returns
    -------
    index : torch.Tensor
        long ``(T, 4, Y * X)``: flat source pixel ``row * X + column`` of each corner
        (clamped into the image; its weight is 0 where the corner lies outside).
    weight : torch.Tensor
        float ``(T, 4, Y * X)``: bilinear weights (differentiable in ``disp``), zero for
        corners outside the image.
    """
    T, _, Y, X = disp.shape
    gy = torch.arange(Y, device=disp.device, dtype=disp.dtype).view(1, Y, 1)
    gx = torch.arange(X, device=disp.device, dtype=disp.dtype).view(1, 1, X)
    qy = gy + disp[:, 0]  # (T, Y, X) sampling position, rows
    qx = gx + disp[:, 1]
    y0 = torch.floor(qy.detach())
    x0 = torch.floor(qx.detach())
    fy, fx = qy - y0, qx - x0  # in [0, 1), carries the gradient in disp
    y0, x0 = y0.long(), x0.long()
    idx, wts = [], []
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0 + dy, x0 + dx
        inside = (yy >= 0) & (yy < Y) & (xx >= 0) & (xx < X)
        idx.append((yy.clamp(0, Y - 1) * X + xx.clamp(0, X - 1)).reshape(T, -1))
        wts.append((w * inside).reshape(T, -1))
    return torch.stack(idx, 1), torch.stack(wts, 1)


def warp(x: torch.Tensor, disp: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Bilinear pull warp ``(W(u) x)_t(p) = x_t(p + u_t(p))`` of a complex series.

    Parameters
    ----------
    x : torch.Tensor
        complex ``(T, Y, X)`` (real tensors work too).
    disp : torch.Tensor
        float ``(T, 2, Y, X)`` pixels, component 0 = y, 1 = x.
    table : tuple, optional
        :func:`bilinear_table` ``(disp)``, precomputed for a fixed field.

    Returns
    -------
    torch.Tensor
        ``(T, Y, X)``, differentiable in ``x`` and (without ``table``) in ``disp``.
    """
    if x.ndim != 3:
        raise ShapeError(f"warp: x must be (T, Y, X), got {tuple(x.shape)}")
    _check_field(tuple(x.shape), disp, "warp")
    index, weight = bilinear_table(disp) if table is None else table
    T, Y, X = x.shape
    xf = x.reshape(T, 1, Y * X).expand(T, 4, Y * X)
    out = (torch.gather(xf, 2, index) * weight.to(x.real.dtype)).sum(1)
    return out.reshape(T, Y, X)


def warp_adjoint(r: torch.Tensor, disp: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Adjoint of :func:`warp` for a fixed field: scatter-add with the bilinear weights.

    ``(W^H r)_t(q) = sum_p w_t(p, q) r_t(p)``; ``r`` and the result are ``(T, Y, X)``.
    """
    if r.ndim != 3:
        raise ShapeError(f"warp_adjoint: r must be (T, Y, X), got {tuple(r.shape)}")
    _check_field(tuple(r.shape), disp, "warp_adjoint")
    index, weight = bilinear_table(disp) if table is None else table
    T, Y, X = r.shape
    vals = r.reshape(T, 1, Y * X) * weight.to(r.real.dtype)  # (T, 4, YX)
    out = torch.zeros(T, Y * X, dtype=r.dtype, device=r.device)
    out = out.scatter_add(1, index.reshape(T, -1), vals.reshape(T, -1))
    return out.reshape(T, Y, X)


class MotionSense(LinearOperator):
    """Motion-corrected forward model ``s -> A W(u) s`` for a fixed displacement field.

    Parameters
    ----------
    A : LinearOperator
        Forward model of the frames, ishape ``(T, Y, X)`` (Cartesian or radial SENSE, or a
        restriction / frame selection of one).
    displacement : torch.Tensor
        float ``(T, 2, Y, X)`` in pixels (component 0 = y, 1 = x), the pull field of
        :func:`warp`; stored as a buffer.

    ``ishape = (T, Y, X)`` (one template image per frame, in reference coordinates),
    ``oshape = A.oshape``; ``normal(s) = W^H A^H A W s`` uses ``A.normal`` (Toeplitz).
    """

    def __init__(self, A: LinearOperator, displacement: torch.Tensor):
        super().__init__(A.ishape, A.oshape)
        if len(A.ishape) != 3:
            raise ShapeError(f"MotionSense: A must have ishape (T, Y, X), got {A.ishape}")
        _check_field(A.ishape, displacement, "MotionSense")
        self.A = A
        self.register_buffer("displacement", displacement.detach().to(device=A.device, dtype=torch.float32))
        index, weight = bilinear_table(self.displacement)
        self.register_buffer("_index", index, persistent=False)
        self.register_buffer("_weight", weight, persistent=False)

    def _table(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._index, self._weight

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(warp(x, self.displacement, self._table()))

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return warp_adjoint(self.A.adjoint(y), self.displacement, self._table())

    def _normal(self, x: torch.Tensor) -> torch.Tensor:
        return warp_adjoint(self.A.normal(warp(x, self.displacement, self._table())), self.displacement, self._table())

    @property
    def sample_mask(self) -> torch.Tensor:
        return self.A.sample_mask

    def restrict(self, sample_mask: torch.Tensor) -> "MotionSense":
        return MotionSense(self.A.restrict(sample_mask), self.displacement)

    def select_frames(self, idx: torch.Tensor) -> "MotionSense":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return MotionSense(self.A.select_frames(idx), self.displacement[idx.to(self.displacement.device)])

    @property
    def backend(self):
        return getattr(self.A, "backend", None)
