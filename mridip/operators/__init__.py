"""Forward models: one interface (:class:`LinearOperator`), Cartesian and radial SENSE."""

from mridip.operators.base import LinearOperator, inner, max_eigenvalue

__all__ = ["LinearOperator", "inner", "max_eigenvalue"]
