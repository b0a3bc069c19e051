"""Shared set-up of the recon tests: noisy measurements of a known image.

Imported as ``from measure import noisy`` (pytest puts each test folder on ``sys.path``;
``tests/`` has no packages).
"""

import torch


def noisy(A, x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """``A(x)`` plus seeded complex Gaussian noise on the measured samples only.

    Parameters
    ----------
    A : Operator
        Any mridip forward operator (``A.sample_mask`` ``(T, *kshape)`` bool).
    x : torch.Tensor
        complex64 ``(T, Y, X)`` image.
    sigma : float
        Standard deviation of the complex noise per k-space sample (both parts together,
        torch's complex ``randn``), in the units of ``A(x)``.
    seed : int
        Seed of the noise.

    Returns
    -------
    torch.Tensor
        complex64 ``(T, C, *kshape)``; zero where ``A.sample_mask`` is False.
    """
    g = torch.Generator().manual_seed(seed)
    y = A(x)
    noise = sigma * torch.randn(y.shape, generator=g, dtype=torch.complex64)
    return y + noise * A.sample_mask.unsqueeze(1).to(y.dtype)
