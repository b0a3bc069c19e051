"""ISMRMRD reader: real files written with the ismrmrd package, read back exactly.

Tolerances: values pass through float32 FFTs (readout oversampling and its crop), so they
agree to a few float32 ulps of the data's magnitude (entries ~1, eps = 1.2e-7); 1e-5
absolute leaves a margin of ~100 ulps and still catches any misplaced line or sample.
"""

import h5py
import ismrmrd
import numpy as np
import pytest
import torch

from data_tools.writers import write_ismrmrd_cartesian, write_ismrmrd_radial
from mridip.errors import InputFileError
from mridip.io import load_raw, read_ismrmrd
from mridip.trajectories import radial_trajectory

ATOL = 1e-5


def _edit_heads(path, fn):
    """Rewrite acquisition headers in place (a converter's quirks, on a real file)."""
    with h5py.File(path, "r+") as f:
        d = f["dataset/data"]
        for i in range(d.shape[0]):
            rec = d[i]
            if fn(i, rec["head"]):
                d[i] = rec


def test_cartesian_round_trip_slices_frames_noise(tmp_path, make_cartesian, make_noise):
    k, m = make_cartesian(S=2, T=3)
    noise = make_noise()
    p = write_ismrmrd_cartesian(tmp_path / "c.h5", k, m, noise=noise, readout_oversampling=2)
    raw = load_raw(p)
    assert raw.format == "ismrmrd" and raw.kind == "cartesian"
    assert tuple(raw.kspace.shape) == k.shape
    assert raw.kspace.dtype == torch.complex64
    np.testing.assert_allclose(raw.kspace.numpy(), k, atol=ATOL)
    assert np.array_equal(raw.mask.numpy(), m)
    # noise kept apart from the image data, bit-exact (no FFT on it)
    assert np.array_equal(raw.noise.numpy(), noise)
    assert raw.header.noise_scans == 4  # 1000 samples in chunks of 256
    assert raw.header.readout_oversampling == 2.0
    assert raw.header.recon_matrix[:2] == (12, 16)


def test_oversampling_crop_is_exact_and_file_is_oversampled(tmp_path, make_cartesian):
    k, m = make_cartesian(S=1, T=1, Kx=10)
    p = write_ismrmrd_cartesian(tmp_path / "c.h5", k[0], m[0], readout_oversampling=2)
    with ismrmrd.Dataset(str(p), "dataset", create_if_needed=False) as ds:
        assert ds.read_acquisition(0).number_of_samples == 20  # stored twice oversampled
    raw = read_ismrmrd(p)
    np.testing.assert_allclose(raw.kspace.numpy(), k, atol=ATOL)


def test_shuffled_order_reads_the_same(tmp_path, make_cartesian, make_noise):
    k, m = make_cartesian()
    noise = make_noise()
    a = load_raw(write_ismrmrd_cartesian(tmp_path / "a.h5", k, m, noise=noise))
    b = load_raw(write_ismrmrd_cartesian(tmp_path / "b.h5", k, m, noise=noise, shuffle_seed=3))
    with h5py.File(tmp_path / "b.h5") as f:
        e1 = f["dataset/data"].fields("head")[:]["idx"]["kspace_encode_step_1"]
    assert not np.all(np.diff(e1[4:10].astype(int)) > 0)  # the file really is out of order
    np.testing.assert_allclose(b.kspace.numpy(), a.kspace.numpy(), atol=ATOL)
    assert torch.equal(a.mask, b.mask)
    assert torch.equal(a.noise, b.noise)


def test_averages_are_averaged(tmp_path, make_cartesian):
    k, m = make_cartesian(S=1, T=1, C=2, lines=4)
    p = write_ismrmrd_cartesian(tmp_path / "c.h5", k[0], m[0], readout_oversampling=1)
    # append a second average of every line with doubled values: the mean is 1.5 x
    with ismrmrd.Dataset(str(p), "dataset", create_if_needed=False) as ds:
        n = ds.number_of_acquisitions()
        for i in range(n):
            acq = ds.read_acquisition(i)
            acq.data[:] = 2 * acq.data
            acq.idx.average = 1
            ds.append_acquisition(acq)
    raw = read_ismrmrd(p)
    np.testing.assert_allclose(raw.kspace.numpy(), 1.5 * k, atol=ATOL)
    assert np.array_equal(raw.mask.numpy(), m)


def test_lines_placed_by_encoding_limits_centre(tmp_path, make_cartesian):
    """Partial Fourier files number lines from their first measured one: the row is
    e1 - center + Ky // 2, not e1."""
    k, m = make_cartesian(S=1, T=1, Ky=16, lines=5)
    shift = 3
    m[:, :, :shift] = False  # partial Fourier: the first lines are never measured
    m[:, :, 0 + 12] = True
    k = k * m[:, :, None]
    p = write_ismrmrd_cartesian(tmp_path / "c.h5", k[0], m[0], readout_oversampling=1)
    _edit_heads(p, lambda i, h: h["idx"].__setitem__("kspace_encode_step_1",
                                                     h["idx"]["kspace_encode_step_1"] - shift) or True)
    with ismrmrd.Dataset(str(p), "dataset", create_if_needed=False) as ds:
        hdr = ismrmrd.xsd.CreateFromDocument(ds.read_xml_header())
        lim = hdr.encoding[0].encodingLimits.kspace_encoding_step_1
        lim.center, lim.minimum, lim.maximum = 8 - shift, 0, 15 - shift
        del ds._dataset["xml"]
        ds.write_xml_header(ismrmrd.xsd.ToXML(hdr))
    raw = read_ismrmrd(p)
    np.testing.assert_allclose(raw.kspace.numpy(), k, atol=ATOL)
    assert np.array_equal(raw.mask.numpy(), m)


def test_flags_noise_navigator_calibration(tmp_path, make_cartesian, make_noise):
    k, m = make_cartesian(S=1, T=2, C=3, lines=6)
    m[:, :, 8] = True  # the centre line is sampled in every frame
    k = k * m[:, :, None]
    p = write_ismrmrd_cartesian(tmp_path / "c.h5", k[0], m[0], noise=make_noise(C=3, N=300),
                                calibration_lines=4, readout_oversampling=1)
    raw = read_ismrmrd(p)
    cal = set(range(6, 10)) & set(np.flatnonzero(m[0].any(axis=(0, 2))))
    assert raw.header.calibration_lines == len(cal)
    # calibration-and-imaging lines are data
    np.testing.assert_allclose(raw.kspace.numpy(), k, atol=ATOL)
    # a navigator and a calibration-only line of garbage must both be ignored
    with ismrmrd.Dataset(str(p), "dataset", create_if_needed=False) as ds:
        acq = ds.read_acquisition(ds.number_of_acquisitions() - 1)
        acq.data[:] = 1e6
        acq.clear_all_flags()
        acq.set_flag(ismrmrd.ACQ_IS_NAVIGATION_DATA)
        ds.append_acquisition(acq)
        acq.clear_all_flags()
        acq.set_flag(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
        ds.append_acquisition(acq)
    raw2 = read_ismrmrd(p, calibration="maps")
    np.testing.assert_allclose(raw2.kspace.numpy(), k, atol=ATOL)
    assert raw2.header.extra["skipped_acquisitions"] == {"navigator": 1}
    # ... but the calibration-only line is calibration data in either mode
    assert float(raw2.calibration.abs().max()) > 1e5
    # the default ("data+maps", DESIGN's contract) also makes it image data (averaged in)
    raw3 = read_ismrmrd(p)
    assert float(raw3.kspace.abs().max()) > 1e5
    assert read_ismrmrd(p, include_calibration=False).kspace.abs().max() < 1e5  # older spelling


def test_noise_dwell_time_scaling(tmp_path, make_cartesian, make_noise):
    """Noise variance per sample is proportional to bandwidth = 1/dwell: noise sampled at
    half the data's dwell time has twice its variance, so the reader scales it by sqrt(1/2)."""
    k, m = make_cartesian(S=1, T=1, C=2)
    noise = make_noise(C=2, N=256)
    p = write_ismrmrd_cartesian(tmp_path / "c.h5", k[0], m[0], noise=noise)

    def halve_noise_dwell(i, h):
        if h["flags"] & (1 << (ismrmrd.ACQ_IS_NOISE_MEASUREMENT - 1)):
            h["sample_time_us"] = h["sample_time_us"] / 2
            return True
        return False

    _edit_heads(p, halve_noise_dwell)
    raw = read_ismrmrd(p)
    np.testing.assert_allclose(raw.noise.numpy(), noise * np.sqrt(0.5), rtol=1e-6)


def test_radial_round_trip_with_phase(tmp_path, make_noise):
    T, C, spf, ns = 3, 4, 5, 32
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((T, C, spf * ns)) + 1j * rng.standard_normal((T, C, spf * ns))).astype(np.complex64)
    traj = radial_trajectory(T, spf, ns)
    noise = make_noise()
    p = write_ismrmrd_radial(tmp_path / "r.h5", k, traj, spokes_per_frame=spf,
                             image_shape=(16, 16), noise=noise)
    raw = load_raw(p)
    assert raw.kind == "radial" and raw.image_shape == (16, 16)
    assert np.array_equal(raw.kspace[0].numpy(), k)  # no FFT on radial data: bit-exact
    # cycles/pixel float32 in the file and back: relative float32 precision of pi
    np.testing.assert_allclose(raw.trajectory[0].numpy(), traj.numpy(), atol=1e-6)
    assert np.array_equal(raw.noise.numpy(), noise)
    assert raw.header.extra["spokes_per_frame"] == spf


def test_radial_traj_columns_are_kx_then_ky(tmp_path):
    """DESIGN.md: file column 0 = kx (image X), column 1 = ky (image Y)."""
    traj = torch.zeros(1, 2, 8)
    traj[0, 0] = 0.5   # ky (radians/voxel)
    traj[0, 1] = -1.0  # kx
    k = torch.ones(1, 1, 8, dtype=torch.complex64)
    p = write_ismrmrd_radial(tmp_path / "r.h5", k, traj, spokes_per_frame=1, image_shape=(8, 8))
    with ismrmrd.Dataset(str(p), "dataset", create_if_needed=False) as ds:
        t = ds.read_acquisition(0).traj
    np.testing.assert_allclose(t[:, 0], -1.0 / (2 * np.pi), rtol=1e-6)
    np.testing.assert_allclose(t[:, 1], 0.5 / (2 * np.pi), rtol=1e-6)
    raw = load_raw(p, spokes_per_frame=1)
    np.testing.assert_allclose(raw.trajectory[0].numpy(), traj.numpy(), atol=1e-6)


def test_radial_binned_by_spokes_per_frame(tmp_path):
    T, C, spf, ns = 4, 2, 3, 16
    rng = np.random.default_rng(1)
    k = (rng.standard_normal((T, C, spf * ns)) + 0j).astype(np.complex64)
    traj = radial_trajectory(T, spf, ns)
    p = write_ismrmrd_radial(tmp_path / "r.h5", k, traj, spokes_per_frame=spf,
                             image_shape=(8, 8), write_phase=False)
    with pytest.raises(InputFileError, match="spokes_per_frame"):
        load_raw(p)
    raw = load_raw(p, spokes_per_frame=spf)
    assert np.array_equal(raw.kspace[0].numpy(), k)  # frame order = acquisition order
    # a different binning: 12 spokes into frames of 5 -> 2 frames, 2 spokes dropped
    with pytest.warns(UserWarning, match="dropped"):
        raw5 = load_raw(p, spokes_per_frame=5)
    assert tuple(raw5.kspace.shape) == (1, 2, C, 5 * ns)
    spokes = k.reshape(T, C, spf, ns).transpose(1, 0, 2, 3).reshape(C, T * spf, ns)
    np.testing.assert_array_equal(raw5.kspace[0, 1].numpy(), spokes[:, 5:10].reshape(C, -1))


def test_radial_multislice(tmp_path):
    S, T, C, spf, ns = 2, 2, 2, 3, 8
    rng = np.random.default_rng(2)
    k = (rng.standard_normal((S, T, C, spf * ns)) + 1j).astype(np.complex64)
    traj = radial_trajectory(T, spf, ns)
    p = write_ismrmrd_radial(tmp_path / "r.h5", k, traj, spokes_per_frame=spf, image_shape=(4, 4))
    raw = load_raw(p)
    assert np.array_equal(raw.kspace.numpy(), k)
    assert tuple(raw.trajectory.shape) == (S, T, 2, spf * ns)
