"""The simulated multi-echo spin-echo T2-mapping data set: brain phantom, echo images,
raw ISMRMRD file (frames on idx.contrast, TE list in the header) and its truth file."""

import math
import os

import h5py
import ismrmrd
import numpy as np
import pytest
import torch

from data_tools.phantom import (
    BRAIN_TISSUES_3T,
    T2_LITERATURE_RANGE_MS,
    cartesian_center_lines,
    coil_sensitivities,
    main,
    simulate_t2_mapping,
    simulate_to_files,
    t2_echo_images,
    t2_mapping_phantom,
)
from data_tools.writers import write_ismrmrd_cartesian
from mridip.errors import ShapeError
from mridip.io import load_raw
from mridip.operators.cartesian import CartesianSense

SIZE, COILS, ECHOES, R, SEED = 32, 4, 6, 4.0, 3
TE = 10.0 * np.arange(1, ECHOES + 1)
ROIS = ("brain", "wm", "gm", "lesion", "csf", "object")


@pytest.fixture(scope="module")
def phantom():
    return t2_mapping_phantom(SIZE, seed=SEED)


@pytest.fixture(scope="module")
def noise_free_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("t2map")
    return simulate_to_files(str(out), kind="t2map", size=SIZE, coils=COILS, echoes=ECHOES,
                             echo_spacing_ms=10.0, acceleration=R, snr=math.inf, seed=SEED)


# ----------------------------------------------------------------------------- phantom
def test_phantom_maps_rois_and_phase(phantom):
    m0, t2, phase, rois = phantom["m0"], phantom["t2_ms"], phantom["phase"], phantom["rois"]
    for a in (m0, t2, phase):
        assert a.shape == (SIZE, SIZE) and a.dtype == np.float32 and np.isfinite(a).all()
    assert 0.99 <= m0.max() <= 1.0 and m0.min() >= 0.0
    assert set(rois) == set(ROIS)
    for name in ROIS:
        assert rois[name].shape == (SIZE, SIZE) and rois[name].dtype == bool and rois[name].any(), name
    # no signal, no T2: 0 outside the head, positive wherever there is signal
    assert (t2[m0 == 0] == 0).all() and (t2[m0 > 0] > 0).all()
    assert (m0[~rois["object"]] < 0.5).all() and (t2[rois["object"]] > 0).all()
    assert not (rois["brain"] & ~rois["object"]).any()
    for name in ("wm", "gm", "lesion"):
        assert not (rois[name] & ~rois["brain"]).any(), name
    assert not (rois["wm"] & rois["gm"]).any() and not (rois["csf"] & rois["brain"]).any()
    # lesions and CSF are T2-bright against white matter
    assert np.median(t2[rois["lesion"]]) > 1.5 * np.median(t2[rois["wm"]])
    assert np.median(t2[rois["csf"]]) > 2.0 * np.median(t2[rois["lesion"]])
    # a few radians of smooth background phase across the head, no wraps between neighbours
    obj = rois["object"]
    assert 1.0 < np.ptp(phase[obj]) < 9.0
    assert np.abs(np.diff(phase, axis=0)).max() < 0.5 and np.abs(np.diff(phase, axis=1)).max() < 0.5


def test_phantom_t2_varies_smoothly_and_is_seeded(phantom):
    t2, wm = phantom["t2_ms"], phantom["rois"]["wm"]
    wm_t2 = BRAIN_TISSUES_3T["wm"][1]
    # 3 % std clipped at 2.5 std; partial volume only lengthens WM T2 (every neighbour
    # tissue has a longer T2), so the lower bound holds on the whole ROI
    assert t2[wm].min() >= (1.0 - 0.076) * wm_t2
    pure = wm & (t2 <= (1.0 + 0.076) * wm_t2)
    assert pure.sum() > 50
    assert np.std(t2[pure]) > 0.01 * wm_t2  # not piecewise constant
    again, other = t2_mapping_phantom(SIZE, seed=SEED), t2_mapping_phantom(SIZE, seed=SEED + 1)
    for key in ("m0", "t2_ms", "phase"):
        np.testing.assert_array_equal(again[key], phantom[key])
    assert not np.allclose(other["phase"], phantom["phase"])
    assert not np.allclose(other["t2_ms"], phantom["t2_ms"])
    np.testing.assert_array_equal(other["m0"], phantom["m0"])  # anatomy does not depend on the seed


def test_wm_gm_t2_within_literature_ranges(phantom):
    t2, rois = phantom["t2_ms"], phantom["rois"]
    for name in ("wm", "gm"):
        lo, hi = T2_LITERATURE_RANGE_MS[name]
        assert lo < BRAIN_TISSUES_3T[name][1] < hi
        x = t2[rois[name]]
        assert lo <= np.median(x) <= hi, name
        # the rest is partial volume with CSF or lesions (ROI = more than half the pixel)
        assert np.mean((x >= lo) & (x <= hi)) >= 0.8, name


def test_echo_images_and_validation(phantom):
    x = t2_echo_images(phantom["m0"], phantom["t2_ms"], phantom["phase"], TE)
    assert x.shape == (ECHOES, SIZE, SIZE) and x.dtype == np.complex64
    inside = phantom["m0"] > 0
    # mono-exponential decay per pixel: log-ratio of consecutive echoes = -dTE / T2
    ratio = np.abs(x[1:, inside]) / np.abs(x[:-1, inside])
    np.testing.assert_allclose(ratio, np.broadcast_to(np.exp(-10.0 / phantom["t2_ms"][inside]), ratio.shape), rtol=1e-5)
    assert (x[:, ~inside] == 0).all()
    with pytest.raises(ShapeError, match="te_ms"):
        t2_echo_images(phantom["m0"], phantom["t2_ms"], phantom["phase"], [10.0, -5.0])
    with pytest.raises(ShapeError, match="maps"):
        t2_echo_images(phantom["m0"], phantom["t2_ms"][:4], phantom["phase"], TE)


# ----------------------------------------------------------------------------- files
def test_truth_file_holds_maps_and_matching_echo_images(noise_free_files, phantom):
    raw_path, truth_path = noise_free_files
    assert os.path.basename(raw_path) == "t2_mapping.h5"
    assert os.path.basename(truth_path) == "t2_mapping_truth.h5"
    with h5py.File(truth_path, "r") as f:
        image = f["image"][()]
        m0, t2 = f["parameter_maps/M0"][()], f["parameter_maps/T2"][()]
        assert image.shape == (1, ECHOES, SIZE, SIZE) and image.dtype == np.complex64
        assert m0.shape == t2.shape == (1, SIZE, SIZE) and m0.dtype == t2.dtype == np.float32
        assert f["coil_maps"].shape == (1, COILS, SIZE, SIZE)
        assert "noise_cov" not in f  # snr = inf (the CLI test checks a noisy file's)
        for name in ROIS:
            roi = f["roi"][name][()]
            assert roi.shape == (1, ECHOES, SIZE, SIZE) and roi.dtype == bool
            assert (roi == phantom["rois"][name][None, None]).all(), name  # static over echoes
        attrs = dict(f.attrs)
    assert attrs["kind"] == "t2map" and attrs["echoes"] == ECHOES
    np.testing.assert_array_equal(attrs["te_ms"], TE)
    assert attrs["te_ms"].dtype == np.float64
    assert attrs["acceleration"] == R and attrs["center_lines"] == cartesian_center_lines(SIZE, R)
    np.testing.assert_array_equal(m0[0], phantom["m0"])
    np.testing.assert_array_equal(t2[0], phantom["t2_ms"])
    assert (t2[0][m0[0] == 0] == 0).all()
    # image = M0 exp(-TE / T2) exp(i phase), from the truth file's own maps
    safe = np.where(t2[0] > 0, t2[0], 1.0).astype(np.float64)
    want = m0[0] * np.exp(-TE[:, None, None] / safe) * np.where(t2[0] > 0, 1.0, 0.0)
    want = want * np.exp(1j * phantom["phase"].astype(np.float64))
    np.testing.assert_allclose(image[0], want, atol=1e-6)


def test_raw_file_loads_as_echo_series(noise_free_files, phantom):
    raw = load_raw(noise_free_files[0])
    assert raw.kind == "cartesian" and raw.format == "ismrmrd"
    assert raw.num_slices == 1 and raw.num_frames == ECHOES and raw.num_coils == COILS
    assert raw.header.te_ms == TE.tolist()
    assert raw.header.field_strength_t == 3.0
    assert raw.header.extra["frame_axes"] == [("contrast", ECHOES)]
    mask = raw.mask[0].numpy()  # (E, Ky, Kx)
    for a in range(ECHOES):
        for b in range(a + 1, ECHOES):
            assert (mask[a] != mask[b]).any(), (a, b)  # a different mask per echo
    n_center = cartesian_center_lines(SIZE, R)
    c0 = SIZE // 2 - n_center // 2
    assert mask[:, c0 : c0 + n_center].all()
    assert raw.header.calibration_lines == n_center
    # the mask is the simulator's (same seed -> same draw)
    maps = coil_sensitivities(COILS, (SIZE, SIZE), seed=SEED, normalize=True)
    sim = simulate_t2_mapping(phantom, maps, TE, acceleration=R, snr=math.inf, seed=SEED)
    np.testing.assert_array_equal(mask, sim["mask"])


def test_noise_free_kspace_is_fft_of_coil_echo_images(noise_free_files):
    raw_path, truth_path = noise_free_files
    raw = load_raw(raw_path)
    assert raw.noise is None  # snr = inf: no noise scans
    with h5py.File(truth_path, "r") as f:
        image = torch.from_numpy(f["image"][0])
        maps = torch.from_numpy(f["coil_maps"][0])
    mask = raw.mask[0]
    want = CartesianSense(maps, mask)(image).numpy()  # (E, C, Ky, Kx), zero off the mask
    got = raw.kspace[0].numpy()
    # the readout goes through the file's 2x oversampling FFT and back in float32
    assert np.abs(got - want).max() < 1e-4 * np.abs(want).max()
    assert (got[~np.broadcast_to(mask.numpy()[:, None], got.shape)] == 0).all()


def test_cli_writes_both_files(tmp_path, capsys):
    rc = main(["-o", str(tmp_path), "--kind", "t2map", "--size", "32", "--coils", "4",
               "--echoes", "6", "--seed", "1"])
    assert rc == 0
    raw_path, truth_path = tmp_path / "t2_mapping.h5", tmp_path / "t2_mapping_truth.h5"
    assert raw_path.is_file() and truth_path.is_file()
    assert capsys.readouterr().out.split() == [str(raw_path), str(truth_path)]
    raw = load_raw(raw_path)
    assert raw.num_frames == 6 and raw.header.te_ms == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    assert raw.noise is not None and raw.noise.shape[0] == 4  # noise scans (default snr 30)
    with ismrmrd.Dataset(str(raw_path), "dataset", create_if_needed=False) as ds:
        first = ds.read_acquisition(0)
        acqs = [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]
    assert first.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)  # noise scans first
    img = [a for a in acqs if not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)]
    assert {a.idx.contrast for a in img} == set(range(6)) and {a.idx.phase for a in img} == {0}
    assert any(a.is_flag_set(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING) for a in img)
    with h5py.File(truth_path, "r") as f:
        assert f["image"].shape == (1, 6, 32, 32) and f["parameter_maps/T2"].shape == (1, 32, 32)
        assert f["noise_cov"].shape == (4, 4)


# ----------------------------------------------------------------------------- writer
def test_writer_frames_on_contrast_with_te_list(tmp_path):
    T, C, Ky, Kx = 3, 2, 8, 6
    mask = np.zeros((T, Ky, Kx), bool)
    mask[:, [3, 4]] = True
    mask[0, 1] = mask[1, 6] = mask[2, 0] = True
    k = (np.random.default_rng(0).standard_normal((T, C, Ky, Kx)) * mask[:, None]).astype(np.complex64)
    p = write_ismrmrd_cartesian(tmp_path / "c.h5", k, mask, te_ms=[12.0, 24.0, 36.0],
                                frame_counter="contrast")
    with ismrmrd.Dataset(str(p), "dataset", create_if_needed=False) as ds:
        hdr = ismrmrd.xsd.CreateFromDocument(ds.read_xml_header())  # schema-valid header
        acqs = [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]
    assert hdr.sequenceParameters.TE == [12.0, 24.0, 36.0]
    lim = hdr.encoding[0].encodingLimits
    assert (lim.contrast.maximum, lim.phase.maximum) == (T - 1, 0)
    assert sorted({(a.idx.contrast, a.idx.phase) for a in acqs}) == [(0, 0), (1, 0), (2, 0)]
    firsts = [a.idx.contrast for a in acqs if a.is_flag_set(ismrmrd.ACQ_FIRST_IN_CONTRAST)]
    assert firsts == [0, 1, 2] and not any(a.is_flag_set(ismrmrd.ACQ_FIRST_IN_PHASE) for a in acqs)
    raw = load_raw(p)
    assert raw.num_frames == T and raw.header.te_ms == [12.0, 24.0, 36.0]
    np.testing.assert_array_equal(raw.mask[0].numpy(), mask)
    # defaults unchanged: frames on idx.phase, one TE
    p2 = write_ismrmrd_cartesian(tmp_path / "d.h5", k, mask, te_ms=2.0)
    raw2 = load_raw(p2)
    assert raw2.header.extra["frame_axes"] == [("phase", T)] and raw2.header.te_ms == [2.0]
    with pytest.raises(ShapeError, match="frame_counter"):
        write_ismrmrd_cartesian(tmp_path / "e.h5", k, mask, frame_counter="set")
    with pytest.raises(ShapeError, match="one per contrast"):
        write_ismrmrd_cartesian(tmp_path / "e.h5", k, mask, te_ms=[10.0, 20.0], frame_counter="contrast")
    with pytest.raises(ShapeError, match="one per contrast"):
        write_ismrmrd_cartesian(tmp_path / "e.h5", k, mask, te_ms=[10.0, 20.0, 30.0])


def test_t2map_rejects_too_few_echoes(tmp_path):
    with pytest.raises(ShapeError, match="echoes"):
        simulate_to_files(str(tmp_path), kind="t2map", size=16, coils=2, echoes=1)
