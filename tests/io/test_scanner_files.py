"""Files shaped like scanner exports, end to end: GRAPPA exports with ACS lines, radial files
with gradient-delay-corrected spokes, radial files without a frame index.

The Cartesian files are written as siemens_to_ismrmrd writes a 2D GRAPPA scan
(data_tools.writers.write_ismrmrd_grappa_export): a noise scan with its own sample count
and dwell time, reference lines flagged 20 mixed with imaging lines flagged 21, ky limits
with an asymmetric centre (phase resolution < 100 %), 2x readout oversampling, optionally
an asymmetric echo. The independent reference reads the same file with the ismrmrd package
and numpy only, and reconstructs with sigpy (its own ESPIRiT on the ACS lines, SenseRecon).
"""

import math
import warnings

import ismrmrd
import numpy as np
import pytest
import torch

from data_tools.phantom import simulate_grappa_export
from data_tools.reference import sigpy_sense_cartesian
from data_tools.writers import write_ismrmrd_radial
from mridip import metrics
from mridip.coils import estimate_maps
from mridip.errors import InputFileError, ProtocolError
from mridip.io import describe, load_raw, read_ismrmrd
from mridip.preprocess import coil_compress, prewhiten
from mridip.protocols import builtin_protocols, load_protocol
from mridip.recon.pipeline import reconstruct

# float32 FFT round trips (oversampling crop) on entries of magnitude ~1-10
ATOL = 1e-4


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """A 36 x 48, 6-coil GRAPPA export: R = 3, 12 ACS lines, 28 of 36 lines, noiseless."""
    d = tmp_path_factory.mktemp("grappa")
    sim = simulate_grappa_export(d / "g.h5", shape=(36, 48), coils=6, acceleration=3, acs_lines=12,
                                 phase_resolution=28 / 36, snr=math.inf, seed=2)
    return sim


def _flags(path):
    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        acqs = [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]
    finally:
        ds.close()
    return acqs


def test_export_is_shaped_like_a_siemens_grappa_file(small_export):
    acqs = _flags(small_export["path"])
    only = [a for a in acqs if a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)]
    both = [a for a in acqs if a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)]
    noise = [a for a in acqs if a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)]
    assert only and both and noise
    assert len(only) + len(both) == 12
    assert noise[0].number_of_samples != only[0].number_of_samples  # its own sample count
    assert noise[0].sample_time_us == 2 * only[0].sample_time_us
    assert max(a.idx.kspace_encode_step_1 for a in acqs) <= 27  # of 28 lines, in a 36-line matrix
    raw = read_ismrmrd(small_export["path"])
    assert raw.header.extra["limits"]["kspace_encoding_step_1"] == (0, 27, 16)  # asymmetric centre
    assert raw.header.encoded_matrix == (96, 36, 1) and raw.header.readout_oversampling == 2


def test_reader_places_acs_and_imaging_lines(small_export):
    k_true = small_export["kspace"]  # (C, Y, X) fully sampled, recon resolution
    raw = read_ismrmrd(small_export["path"])
    assert raw.calibration is not None and tuple(raw.calibration.shape) == (1, 6, 36, 48)
    cal_rows = np.flatnonzero(raw.calibration_mask[0].numpy().any(-1))
    assert len(cal_rows) == 12 and np.all(np.diff(cal_rows) == 1)  # one contiguous block
    assert raw.header.extra["calibration_region"]["contiguous_lines"] == 12
    np.testing.assert_allclose(raw.calibration[0].numpy()[:, cal_rows], k_true[:, cal_rows], atol=ATOL)
    # data+maps (default): imaging lines and calibration-only lines are data
    rows = np.flatnonzero(raw.mask[0, 0].numpy().any(-1))
    assert set(cal_rows) <= set(rows)
    assert set(rows) <= set(small_export["lines"].tolist())
    np.testing.assert_allclose(raw.kspace[0, 0].numpy()[:, rows], k_true[:, rows], atol=ATOL)
    # "maps": the calibration-only lines stay out of the data, the imaging ones stay in
    maps_only = read_ismrmrd(small_export["path"], calibration="maps")
    rows_m = np.flatnonzero(maps_only.mask[0, 0].numpy().any(-1))
    acqs = _flags(small_export["path"])
    centre = 36 // 2 - (28 // 2 + 2)
    imaging = {a.idx.kspace_encode_step_1 + centre for a in acqs
               if not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
               and not a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)}
    assert set(rows_m.tolist()) == imaging
    assert len(rows_m) < len(rows)
    torch.testing.assert_close(maps_only.calibration, raw.calibration)
    assert raw.header.extra["calibration_use"] == "data+maps"
    # the noise scan at twice the dwell time is brought to the data's (variance / 2)
    assert raw.header.extra["noise_dwell_scaling"] == pytest.approx(math.sqrt(2.0))


def test_asymmetric_echo_is_unmeasured_not_zero(tmp_path):
    """Samples an asymmetric echo did not acquire are False in the mask (not zero-valued data)."""
    sim = simulate_grappa_export(tmp_path / "a.h5", shape=(32, 40), coils=4, acceleration=2, acs_lines=12,
                                 echo_asymmetry=16, snr=math.inf, seed=1)
    raw = read_ismrmrd(sim["path"])
    m = raw.mask[0, 0].numpy()
    rows = np.flatnonzero(m.any(-1))
    # 16 of 80 encoded samples (2x oversampled) missing = 8 recon samples at the start
    assert np.all(~m[rows, :8]) and np.all(m[rows, 9:])
    k = raw.kspace[0, 0].numpy()
    assert np.all(k[:, ~m] == 0)
    # inside the measured part, away from the edge the crop's interpolation smears, the
    # samples are the truth's
    np.testing.assert_allclose(k[:, rows, 12:], sim["kspace"][:, rows, 12:], atol=0.02 * np.abs(sim["kspace"]).max())
    assert raw.header.extra["readout_partial"] == 8
    assert raw.calibration_mask[0].numpy()[:, :8].sum() == 0


def test_info_reports_the_acs_region(small_export):
    text = describe(small_export["path"])
    assert "ACS region:" in text and "12 lines, 12 consecutive" in text
    assert "calibration only (flag 20)" in text and 'data.calibration = "data+maps"' in text


def test_coil_maps_come_from_the_acs_block(small_export):
    """R = 3 imaging lines alone have a 1-line fully sampled centre; the ACS block makes
    ESPIRiT and Walsh work, and the maps explain the truth's coil images."""
    raw = read_ismrmrd(small_export["path"], calibration="maps")
    no_cal = type(raw)(**{**raw.__dict__, "calibration": None, "calibration_mask": None})
    with pytest.raises(ProtocolError, match="no calibration lines"):
        estimate_maps(no_cal, "espirit", calib_width=12)
    maps, valid = estimate_maps(raw, "espirit", calib_width=12)
    truth = small_export["maps"]
    S = maps.numpy()
    # same subspace per pixel: |<S_est, S_true>| / (|S_est| |S_true|) ~ 1 where the object is
    obj = np.abs(small_export["image"]) > 0.05 * np.abs(small_export["image"]).max()
    num = np.abs((S.conj() * truth).sum(0))
    den = np.linalg.norm(S, axis=0) * np.linalg.norm(truth, axis=0) + 1e-12
    assert np.median((num / den)[obj & valid.numpy()]) > 0.99
    walsh, _ = estimate_maps(raw, "walsh")
    assert torch.isfinite(walsh).all()


def test_whitening_and_compression_carry_the_calibration(small_export):
    raw = read_ismrmrd(simulate_grappa_export(small_export["path"] + ".noisy.h5", shape=(36, 48), coils=6,
                                              acs_lines=12, snr=30.0, seed=3)["path"])
    w = prewhiten(raw)
    rows = np.flatnonzero(w.calibration_mask[0].numpy().any(-1))
    # calibration-only rows that are also data rows hold the same whitened samples
    both = [r for r in rows if w.mask[0, 0, r].any()]
    torch.testing.assert_close(w.calibration[0][:, both], w.kspace[0, 0][:, both], atol=1e-4, rtol=1e-4)
    c = coil_compress(w, num_coils=3)
    assert tuple(c.calibration.shape) == (1, 3, 36, 48)
    torch.testing.assert_close(c.calibration[0][:, both], c.kspace[0, 0][:, both], atol=1e-4, rtol=1e-4)


def test_calibration_protocol_key():
    assert load_protocol("cg-sense").option("data", "calibration") == "data+maps"
    with pytest.raises(ProtocolError, match="data.calibration"):
        load_protocol("cg-sense", ['data.calibration="both"'])


#: protocol -> overrides that keep the test small: generator fits run a few steps and lambda
#: tuning is off (both are tested elsewhere); none of them is about the data
SMALL = {
    "dip-static": ["fit.iterations=3"],
    "tddip-cartesian-cine": ["fit.iterations=3"],
    "moco-dip-cartesian": ["fit.iterations=3", "stages.warmup=2", "model.channels=8"],
    "gip-cartesian-cine": ["stages.stage1_iterations=2", "stages.stage2_iterations=2",
                           "stages.stage3_iterations=2", "stages.admm_iterations=1",
                           "stages.admm_net_iterations=2"],
    "bart-pics": ["baseline.iterations=30"],
    "tv": ["baseline.tune=false"],
    "temporal-tv": ["baseline.tune=false"],
    "spatiotemporal-tv": ["baseline.tune=false"],
    "l1-wavelet": ["baseline.tune=false"],
    "lplus-s": ["baseline.tune=false"],
}
#: the mapping protocols need several contrasts (echo or inversion times) and refuse a
#: one-contrast file by name (tested in their own files)
CARTESIAN = [p for p in builtin_protocols() if "radial" not in p and "mapping" not in p]


@pytest.mark.slow
@pytest.mark.parametrize("name", CARTESIAN)
def test_every_cartesian_protocol_reconstructs_a_grappa_export(small_export, name):
    """No option about the data: each protocol finds the ACS lines itself."""
    if name == "bart-pics":
        from mridip.recon.bart import bart_available

        if not bart_available():
            pytest.skip("BART (Debian package bart) is not installed")
    rec = reconstruct(small_export["path"], name, overrides=SMALL.get(name, []), progress=False)
    assert rec.image.shape == (1, 1, 36, 48)
    assert np.isfinite(rec.image).all() and np.abs(rec.image).max() > 0
    if name not in SMALL:
        # the non-iterative-prior methods must also be right: the 28-of-36-line phase
        # resolution alone costs ~7 % NRMSE against the full-resolution truth (measured:
        # cg-sense 8.3 %, grappa 13.5 %, gridding 12.1 %)
        assert metrics.nrmse(rec.image[0], small_export["image"][None]) < 0.2


@pytest.mark.slow
def test_cg_sense_on_a_grappa_export_matches_sigpy(tmp_path):
    """Case 1 of issue 17 at its size: 14 coils, 144 x 192, R = 3, 48 ACS lines, 106 of 144
    lines with the centre at 55, 2x oversampling, a noise scan. mridip's CG-SENSE as
    shipped (10 iterations) against sigpy's SENSE with its own ESPIRiT on the same ACS lines
    and the same iterations: the two implement one estimator, so they must agree to float32
    round-off, far inside the 2 % asked for (measured 3e-6)."""
    sim = simulate_grappa_export(tmp_path / "case1.h5", shape=(144, 192), coils=14, acceleration=3,
                                 acs_lines=48, phase_resolution=106 / 144, snr=40.0, seed=0)
    rec = reconstruct(sim["path"], "cg-sense", progress=False)
    pytest.importorskip("sigpy.mri")
    ref = sigpy_sense_cartesian(sim["path"], iterations=10)
    assert metrics.nrmse(rec.image[0], ref[None]) < 0.02
    assert "48 calibration lines" in rec.attrs["calibration"]


# --------------------------------------------------------------------------- radial
def _radial_case(tmp_path, stretch: float, *, write_phase=False, name="r.h5"):
    """16 x 16, 3 coils, 12 spokes of 32 samples; trajectory scaled by ``stretch`` (a
    delay-corrected spoke reaches past the Nyquist edge), k-space simulated with it."""
    from mridip.operators.radial import RadialSense
    from mridip.trajectories import radial_trajectory

    g = torch.Generator().manual_seed(0)
    img = torch.randn(1, 16, 16, generator=g, dtype=torch.complex64)
    maps = torch.randn(3, 16, 16, generator=g, dtype=torch.complex64)
    maps = maps / maps.abs().pow(2).sum(0).sqrt()
    traj = radial_trajectory(1, 12, 32) * stretch  # (1, 2, K) radians/voxel, may pass pi
    wrapped = torch.remainder(traj + math.pi, 2 * math.pi) - math.pi
    y = RadialSense(maps, wrapped)(img)  # the model is periodic: same data as the unwrapped
    p = write_ismrmrd_radial(tmp_path / name, y, traj, spokes_per_frame=12, image_shape=(16, 16),
                             write_phase=write_phase)
    return p, wrapped, y


def test_delay_corrected_spokes_are_wrapped_with_a_warning(tmp_path):
    p, wrapped, _ = _radial_case(tmp_path, 1.0006)  # reaches 0.5003 cycles/pixel
    with pytest.warns(UserWarning, match=r"0\.500\d+ cycles/pixel"):
        raw = read_ismrmrd(p, spokes_per_frame=12)
    assert float(raw.trajectory.abs().max()) <= math.pi
    torch.testing.assert_close(raw.trajectory[0], wrapped, atol=2e-6, rtol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = reconstruct(p, "cg-sense", progress=False)  # static: no spokes_per_frame needed
    assert rec.image.shape == (1, 1, 16, 16)


@pytest.mark.parametrize("scale, unit", [(2.0, "normalised"), (2 * math.pi, "radians"), (16.0, "1/FOV")])
def test_trajectory_in_another_unit_is_refused_by_name(tmp_path, scale, unit):
    p, _, _ = _radial_case(tmp_path, 0.999)
    import h5py

    with h5py.File(p, "r+") as f:  # rescale every spoke's traj field as a wrong converter would
        d = f["dataset/data"]
        for i in range(d.shape[0]):
            rec = d[i]
            rec["traj"] = rec["traj"] * np.float32(scale)
            d[i] = rec
    with pytest.raises(InputFileError, match=unit):
        read_ismrmrd(p, spokes_per_frame=12)


def test_static_radial_is_one_frame_for_static_methods(tmp_path):
    p, _, y = _radial_case(tmp_path, 0.999)
    raw = load_raw(p, spokes_per_frame="all")
    assert raw.num_frames == 1 and raw.kspace.shape[-1] == 12 * 32
    assert load_protocol("cg-sense").spokes_per_frame() == "all"
    assert load_protocol("temporal-tv").spokes_per_frame() is None
    rec = reconstruct(p, "gridding", progress=False)
    assert rec.image.shape == (1, 1, 16, 16)
    with pytest.raises(InputFileError, match="spokes_per_frame"):
        reconstruct(p, "temporal-tv", progress=False)


def test_from_arrays_takes_calibration(small_export):
    """Arrays users (sigpy, BART) can hand in their ACS block: same maps as the file's."""
    from mridip.io import from_arrays

    raw = read_ismrmrd(small_export["path"])
    cal = raw.calibration[0] * raw.calibration_mask[0]
    arr = from_arrays(raw.kspace[0], raw.mask[0], calibration=cal)
    assert arr.header.calibration_lines == 12
    torch.testing.assert_close(arr.calibration_mask, raw.calibration_mask)
    m_file, _ = estimate_maps(raw, "espirit", calib_width=12)
    m_arr, _ = estimate_maps(arr, "espirit", calib_width=12)
    torch.testing.assert_close(m_arr, m_file)
    with pytest.raises(Exception, match="calibration must be"):
        from_arrays(raw.kspace[0], raw.mask[0], calibration=cal[:, :10])


def test_calibration_lines_of_a_slice_without_image_data_are_dropped_with_a_warning(tmp_path):
    import h5py

    sim = simulate_grappa_export(tmp_path / "s.h5", shape=(24, 32), coils=3, acceleration=2, acs_lines=8,
                                 snr=math.inf, seed=4)
    bit20, bit21 = np.uint64(1 << 19), np.uint64(1 << 20)
    with h5py.File(sim["path"], "r+") as f:  # reference lines of another slice only, as a wrong export
        d = f["dataset/data"]
        for i in range(d.shape[0]):
            rec = d[i]
            flags = np.uint64(rec["head"]["flags"])
            if flags & bit20:
                rec["head"]["idx"]["slice"] = 7
            rec["head"]["flags"] = flags & ~bit21
            d[i] = rec
    with pytest.warns(UserWarning, match="slices without image data"):
        raw = read_ismrmrd(sim["path"], calibration="maps")
    assert raw.calibration is None and raw.num_slices == 1
