"""data_tools.writers: the files hold what the ISMRMRD spec and fastMRI layout say,
checked with the ismrmrd package and h5py directly (not with mridip's readers)."""

import h5py
import ismrmrd
import numpy as np
import pytest
import torch

from data_tools.writers import write_fastmri, write_ismrmrd_cartesian, write_ismrmrd_radial
from mridip.errors import ShapeError
from mridip.trajectories import radial_trajectory


def _acqs(path):
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=False) as ds:
        hdr = ismrmrd.xsd.CreateFromDocument(ds.read_xml_header())  # schema-valid header
        return hdr, [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]


def test_cartesian_file_content(tmp_path):
    rng = np.random.default_rng(0)
    T, C, Ky, Kx = 2, 3, 8, 6
    mask = np.zeros((T, Ky, Kx), bool)
    mask[0, [1, 4, 5]] = True
    mask[1, [3, 4, 6]] = True
    k = (rng.standard_normal((T, C, Ky, Kx)) * mask[:, None]).astype(np.complex64)
    noise = (rng.standard_normal((C, 300)) + 0j).astype(np.complex64)
    p = write_ismrmrd_cartesian(tmp_path / "c.h5", torch.from_numpy(k), mask, noise=noise,
                                calibration_lines=2, field_strength_t=3.0, te_ms=2.0, tr_ms=4.0)
    hdr, acqs = _acqs(p)
    enc = hdr.encoding[0]
    assert enc.trajectory == ismrmrd.xsd.trajectoryType.CARTESIAN
    assert (enc.encodedSpace.matrixSize.x, enc.reconSpace.matrixSize.x) == (12, 6)
    assert enc.encodingLimits.kspace_encoding_step_1.center == Ky // 2
    assert hdr.acquisitionSystemInformation.systemFieldStrength_T == 3.0
    assert hdr.sequenceParameters.TE == [2.0] and hdr.sequenceParameters.TR == [4.0]
    noise_acqs = [a for a in acqs if a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)]
    assert [a.number_of_samples for a in noise_acqs] == [256, 44]  # own sample count
    assert acqs[0] is noise_acqs[0]  # noise first
    img = [a for a in acqs if not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)]
    assert sorted((a.idx.phase, a.idx.kspace_encode_step_1) for a in img) == \
        [(0, 1), (0, 4), (0, 5), (1, 3), (1, 4), (1, 6)]
    cal = {(a.idx.phase, a.idx.kspace_encode_step_1) for a in img
           if a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)}
    assert cal == {(0, 4), (1, 3), (1, 4)}  # central lines 3, 4 where sampled
    assert all(a.number_of_samples == 12 for a in img)


def test_cartesian_rejects_partial_lines(tmp_path):
    m = np.zeros((1, 4, 4), bool)
    m[0, 1, :2] = True
    with pytest.raises(ShapeError, match="whole lines"):
        write_ismrmrd_cartesian(tmp_path / "c.h5", np.ones((1, 1, 4, 4), np.complex64), m)


def test_radial_file_content(tmp_path):
    T, C, spf, ns = 2, 2, 3, 8
    traj = radial_trajectory(T, spf, ns)
    k = np.ones((T, C, spf * ns), np.complex64)
    p = write_ismrmrd_radial(tmp_path / "r.h5", k, traj, spokes_per_frame=spf, image_shape=(4, 6))
    hdr, acqs = _acqs(p)
    enc = hdr.encoding[0]
    assert enc.trajectory == ismrmrd.xsd.trajectoryType.RADIAL
    assert enc.encodedSpace.matrixSize.x == ns
    assert (enc.reconSpace.matrixSize.x, enc.reconSpace.matrixSize.y) == (6, 4)
    assert len(acqs) == T * spf and [a.idx.phase for a in acqs] == [0, 0, 0, 1, 1, 1]
    a = acqs[4]  # frame 1, spoke 1
    assert a.traj.shape == (ns, 2)
    want = traj[1, :, ns:2 * ns].numpy() / (2 * np.pi)  # (ky, kx) cycles/pixel
    np.testing.assert_allclose(a.traj[:, 0], want[1], atol=1e-7)  # column 0 = kx
    np.testing.assert_allclose(a.traj[:, 1], want[0], atol=1e-7)  # column 1 = ky
    p2 = write_ismrmrd_radial(tmp_path / "r2.h5", k, traj, spokes_per_frame=spf,
                              image_shape=(4, 6), write_phase=False)
    assert {a.idx.phase for a in _acqs(p2)[1]} == {0}


def test_fastmri_layout(tmp_path):
    k = np.ones((2, 3, 8, 6), np.complex64)
    p = write_fastmri(tmp_path / "f.h5", k, reference_rss=np.ones((2, 4, 4), np.float32),
                      mask=np.ones(6, bool))
    with h5py.File(p) as f:
        assert f["kspace"].dtype == np.complex64 and f["kspace"].shape == (2, 3, 8, 6)
        hdr = ismrmrd.xsd.CreateFromDocument(f["ismrmrd_header"][()])
        assert f["reconstruction_rss"].shape == (2, 4, 4)
        assert f["mask"].shape == (6,)
        assert float(f.attrs["max"]) == 1.0
    assert hdr.encoding[0].encodedSpace.matrixSize.x == 8  # height = readout
    assert hdr.encoding[0].reconSpace.matrixSize.x == 4
