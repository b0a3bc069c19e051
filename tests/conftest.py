"""Shared test configuration: deterministic, small, CPU by default."""

import os

import numpy as np
import pytest
import torch

# tiny test problems run fastest on one thread (and CI has only 2 cores)
torch.set_num_threads(int(os.environ.get("MRIDIP_TEST_THREADS", "1")))

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="no CUDA device on this machine")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_cuda)


@pytest.fixture
def sigpy_brain_path():
    """Path of the real 8-coil brain k-space in ../shared/data (skips if absent)."""
    path = os.path.abspath(os.path.join(SHARED_DATA, "sigpy-brain", "cartesian_ksp.npy"))
    if not os.path.exists(path):
        pytest.skip(f"shared sample data not found at {path}")
    return path
