"""T1-mapping phantoms and files (data_tools/t1_phantom.py), and the TI / TR / flip-angle header
facts as the writers put them and the ISMRMRD reader returns them."""

import h5py
import numpy as np
import pytest

from data_tools import writers
from data_tools.phantom import cartesian_center_lines
from data_tools.phantom import main as phantom_main
from data_tools.phantom import simulate_to_files
from data_tools.t1_phantom import (
    CARDIAC_T1_1P5T,
    IR_TI_MS,
    MOLLI_READOUT_MS,
    MOLLI_TI_MS,
    NIST_T1_ARRAY_3T_MS,
    cardiac_t1_phantom,
    t1_images,
    t1_mapping_phantom,
)
from mridip.errors import ShapeError
from mridip.io import load_raw


@pytest.fixture(scope="module")
def nist():
    return t1_mapping_phantom(64, seed=1)


def test_nist_spheres_hold_the_plate_values(nist):
    t1 = nist["t1_ms"]
    for k, ref in enumerate(NIST_T1_ARRAY_3T_MS):
        inside = nist["rois"][f"sphere_{k + 1}"]
        assert inside.sum() >= 10
        # pixels more than half inside a sphere: partial volume only at the rim
        assert np.median(t1[inside]) == pytest.approx(ref, rel=1e-5)
    scored = nist["rois"]["spheres"]
    assert scored.any() and 100.0 <= t1[scored].min() and t1[scored].max() <= 2000.0
    assert not (scored & nist["rois"]["brain"]).any()
    assert np.all(t1[~nist["rois"]["object"]] == 0) and nist["m0"].max() == pytest.approx(1.0)
    with pytest.raises(ShapeError):
        t1_mapping_phantom(8)


def test_cardiac_phantom_values_and_regions():
    ph = cardiac_t1_phantom(64)
    myo, blood = ph["rois"]["myocardium"], ph["rois"]["blood"]
    assert myo.sum() > 30 and blood.sum() > 30 and not (myo & blood).any()
    assert np.median(ph["t1_ms"][myo]) == pytest.approx(CARDIAC_T1_1P5T["myocardium"][1], rel=1e-5)
    assert np.median(ph["t1_ms"][blood]) == pytest.approx(CARDIAC_T1_1P5T["blood"][1], rel=1e-5)


def test_images_follow_the_signal_equations(nist):
    ti = np.asarray(IR_TI_MS)[:, None, None]
    m0, t1, ph = nist["m0"], nist["t1_ms"], nist["phase"]
    on = t1 > 0
    x = t1_images(nist, "ir")
    expected = np.where(on, m0 * (1 - 2 * np.exp(-ti / np.where(on, t1, 1))), 0) * np.exp(1j * ph)
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-6)
    # the signal crosses zero: negative (after removing the phase) at TI = 35 ms where T1 > 35 / ln 2
    slow = t1 > 35.0 / np.log(2.0) * 1.01
    assert (np.real(x[0] * np.exp(-1j * ph))[slow] < 0).all() and (np.real(x[-1] * np.exp(-1j * ph))[on] > 0).all()
    with pytest.raises(ShapeError, match="model"):
        t1_images(nist, "t2")


def test_molli_truth_is_consistent(tmp_path):
    raw, truth = simulate_to_files(str(tmp_path), kind="molli", size=32, coils=4, acceleration=2.0, snr=np.inf)
    with h5py.File(truth) as f:
        pm = {k: f["parameter_maps"][k][0] for k in f["parameter_maps"]}
        img = f["image"][0]
        assert list(f.attrs["ti_ms"]) == list(MOLLI_TI_MS)
    on = pm["T1"] > 0
    # Look-Locker relations: T1 = T1* (B / A - 1), 1 / T1* = 1 / T1 + 1 / T_RO
    np.testing.assert_allclose((pm["T1star"] * (pm["B"] / np.where(on, pm["A"], 1) - 1))[on], pm["T1"][on], rtol=1e-4)
    np.testing.assert_allclose(1 / pm["T1star"][on], 1 / pm["T1"][on] + 1 / MOLLI_READOUT_MS, rtol=1e-5)
    ti = np.asarray(MOLLI_TI_MS)[:, None, None]
    curve = pm["A"] - pm["B"] * np.exp(-ti / np.where(on, pm["T1star"], 1))
    np.testing.assert_allclose(np.abs(img), np.abs(curve) * on, rtol=1e-4, atol=1e-5)


def test_cartesian_t1_file_reads_back_with_its_header(tmp_path):
    raw, truth = simulate_to_files(str(tmp_path), kind="t1map", size=32, coils=4, acceleration=2.0, snr=np.inf)
    rd = load_raw(raw)
    assert rd.kspace.shape[:3] == (1, len(IR_TI_MS), 4)
    assert rd.header.ti_ms == list(IR_TI_MS) and rd.header.tr_ms == [10000.0]
    with h5py.File(truth) as f:
        img = f["image"][0]  # (E, Y, X)
        maps = f["coil_maps"][0]
    # noise-free: the read k-space is the centred FFT of the coil images where sampled
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(maps[None] * img[:, None], axes=(-2, -1)), norm="ortho"),
                        axes=(-2, -1))
    m = np.asarray(rd.mask[0])[:, None]
    np.testing.assert_allclose(np.asarray(rd.kspace[0]) * m, k * m, atol=1e-4 * np.abs(k).max())
    # the embedded calibration is the longest TI's centre only (averaging TIs of opposite sign cancels)
    cal, cm = np.asarray(rd.calibration[0]), np.asarray(rd.calibration_mask[0])
    assert cm.any() and cm.any(axis=1).sum() == cartesian_center_lines(32, 2.0)
    np.testing.assert_allclose(cal[:, cm], k[-1][:, cm], atol=1e-4 * np.abs(k).max())


def test_radial_multi_ti_and_multi_echo_files(tmp_path):
    raw, _ = simulate_to_files(str(tmp_path / "t1"), kind="t1map-radial", size=32, coils=2, spokes_per_frame=7)
    rd = load_raw(raw)
    assert rd.kind == "radial" and rd.kspace.shape[1] == len(IR_TI_MS) and rd.header.ti_ms == list(IR_TI_MS)
    raw, _ = simulate_to_files(str(tmp_path / "t2"), kind="t2map-radial", size=32, coils=2, spokes_per_frame=7,
                               echoes=4, echo_spacing_ms=12.0)
    rd = load_raw(raw)
    assert rd.kspace.shape[1] == 4 and rd.header.te_ms == [12.0, 24.0, 36.0, 48.0]


def test_header_facts_match_ismrmrds_own_parser(tmp_path):
    import ismrmrd
    import ismrmrd.xsd

    fa = [3.0, 8.0, 15.0]
    k = np.zeros((3, 2, 16, 16), np.complex64)
    k[..., 8, :] = 1.0
    mask = np.zeros((3, 16, 16), bool)
    mask[:, 6:10] = True
    path = writers.write_ismrmrd_cartesian(tmp_path / "vfa.h5", k * mask[:, None], mask, tr_ms=12.5,
                                           flip_angle_deg=fa, frame_counter="contrast", te_ms=2.0,
                                           ti_ms=[100.0, 200.0, 300.0])
    ds = ismrmrd.Dataset(path, "dataset", create_if_needed=False)
    hdr = ismrmrd.xsd.CreateFromDocument(ds.read_xml_header())
    ds.close()
    sp = hdr.sequenceParameters
    rd = load_raw(path)
    assert rd.header.flip_angle_deg == [float(v) for v in sp.flipAngle_deg] == fa
    assert rd.header.tr_ms == [float(v) for v in sp.TR] == [12.5]
    assert rd.header.ti_ms == [float(v) for v in sp.TI] == [100.0, 200.0, 300.0]


def test_cli_writes_t1_files(tmp_path, capsys):
    assert phantom_main(["-o", str(tmp_path), "--kind", "t1map", "--t1-model", "vfa", "--size", "32",
                         "--coils", "2", "--acceleration", "2"]) == 0
    out = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[1] for p in out] == ["t1_mapping.h5", "t1_mapping_truth.h5", "b1_map.npy"]
    b1 = np.load(out[2])
    assert b1.shape == (32, 32) and 0.8 <= b1.min() and b1.max() <= 1.2
    with h5py.File(out[1]) as f:
        assert set(f["parameter_maps"]) == {"M0", "T1", "B1"}
        assert f["parameter_maps/T1"].dtype == np.float32 and f["parameter_maps/T1"].shape == (1, 32, 32)
