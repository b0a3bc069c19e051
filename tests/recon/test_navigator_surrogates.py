"""Self-navigated physiological surrogates (mridip/recon/navigator.py) and ISMRMRD
physiology stamps (mridip/io/physiology.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_tools.free_breathing import free_breathing_cine, simulate_free_breathing_files
from data_tools.phantom import coil_sensitivities
from mridip.operators import CartesianSense
from mridip.recon.navigator import bandpass, physiological_surrogates
from mridip.trajectories import variable_density_lines


def test_bandpass_keeps_the_band_only():
    t = np.arange(200) * 0.05
    s = torch.tensor(np.sin(2 * np.pi * 0.3 * t) + np.sin(2 * np.pi * 2.0 * t) + 3.0)
    out = bandpass(s, 0.05, (0.1, 0.5)).numpy()
    ref = np.sin(2 * np.pi * 0.3 * t)
    # 3 cycles in the window: the hard spectral mask of the mirrored signal rings a little
    # (0.3 Hz is not on a bin of the 2T-point FFT), hence 0.95, not 0.99
    assert np.corrcoef(out[20:-20], ref[20:-20])[0, 1] > 0.95
    assert abs(out.mean()) < 0.1


def test_navigator_recovers_the_planted_respiratory_frequency():
    """96 frames of 100 ms (9.6 s): breathing at 0.3 Hz (18/min), heart at 1.25 Hz.
    Frequency bins are 1 / 9.6 s = 0.104 Hz apart: the peak must fall in the bin of the truth."""
    T, N = 96, 24
    ph = free_breathing_cine(N, T, frame_ms=100.0, heart_rate_bpm=75.0, breaths_per_min=18.0,
                             amplitude_mm=15.0, seed=1)
    maps = torch.from_numpy(coil_sensitivities(4, (N, N), seed=1, normalize=True)).to(torch.complex64)
    A = CartesianSense(maps, variable_density_lines(T, N, N, 3.0, center_lines=8, seed=1))
    y = A(torch.from_numpy(ph["images"]))
    sur = physiological_surrogates(A, y, 0.1)
    assert abs(sur["respiratory_info"]["peak_hz"] - 0.3) <= 0.105
    r = ph["respiratory"]
    assert abs(np.corrcoef(sur["respiratory"].numpy(), r - r.mean())[0, 1]) > 0.8
    assert abs(sur["cardiac_info"]["peak_hz"] - 1.25) <= 0.105


@pytest.mark.parametrize("kind", ["radial", "cartesian"])
def test_physiology_stamps_are_read_back(tmp_path, kind):
    from mridip.io.info import describe
    from mridip.io.physiology import frame_physiology

    raw, truth = simulate_free_breathing_files(str(tmp_path), kind=kind, size=16, frames=12, coils=2,
                                               spokes_per_frame=5, acceleration=4.0, frame_ms=200.0)
    import h5py

    with h5py.File(truth) as f:
        true_phase = f["motion/cardiac_phase"][()]
    phys = frame_physiology(raw, 12)
    assert phys["found"] == ["cardiac", "respiratory"]
    # a frame's stamps span its 200 ms (a fifth of a beat): the circular mean sits at its middle,
    # 100 ms (0.1 cycle) after the frame's start phase
    d = np.angle(np.exp(2j * np.pi * (phys["cardiac"] - true_phase - 0.1))) / (2 * np.pi)
    assert np.abs(d).max() < 0.03
    assert "ECG" in describe(raw)


def test_file_without_stamps_reports_none(tmp_path):
    from data_tools.phantom import simulate_to_files
    from mridip.io.info import describe
    from mridip.io.physiology import read_physiology

    raw = simulate_to_files(str(tmp_path), kind="radial", size=16, frames=2, coils=2, spokes_per_frame=4)[0]
    assert read_physiology(raw)["found"] == []
    assert "physiology:" in describe(raw) and "none in the file" in describe(raw)
