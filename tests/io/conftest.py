"""Small synthetic k-space for the io tests (real files are written with data_tools.writers)."""

import numpy as np
import pytest


def random_cartesian(S=2, T=3, C=4, Ky=16, Kx=12, lines=6, seed=0):
    """Zero-filled complex k-space (S, T, C, Ky, Kx) and its line mask (S, T, Ky, Kx)."""
    rng = np.random.default_rng(seed)
    k = (rng.standard_normal((S, T, C, Ky, Kx)) + 1j * rng.standard_normal((S, T, C, Ky, Kx)))
    m = np.zeros((S, T, Ky, Kx), dtype=bool)
    for s in range(S):
        for t in range(T):
            m[s, t, rng.choice(Ky, lines, replace=False)] = True
    return (k * m[:, :, None]).astype(np.complex64), m


def random_noise(C=4, N=1000, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((C, N)) + 1j * rng.standard_normal((C, N))).astype(np.complex64)


@pytest.fixture
def make_cartesian():
    """Factory: make_cartesian(S=, T=, C=, Ky=, Kx=, lines=, seed=) -> (kspace, mask)."""
    return random_cartesian


@pytest.fixture
def make_noise():
    """Factory: make_noise(C=, N=, seed=) -> complex64 (C, N) white noise."""
    return random_noise
