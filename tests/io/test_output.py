"""Reconstruction output files: round trip and atomic writing."""

import os

import h5py
import numpy as np
import pytest

from mridip.data import Reconstruction
from mridip.errors import InputFileError
from mridip.io import load_reconstruction, save_reconstruction


def _recon():
    rng = np.random.default_rng(0)
    img = (rng.standard_normal((2, 3, 4, 5)) + 1j * rng.standard_normal((2, 3, 4, 5))).astype(np.complex64)
    return Reconstruction(
        image=img,
        method="tddip",
        attrs={"protocol": "[fit]\niterations = 3\n", "seed": 7, "wall_seconds": 1.5,
               "device": "cpu", "settings": {"lr": 1e-3, "layers": [1, 2]}, "note": None},
        parameter_maps={"T1": rng.random((2, 4, 5)).astype(np.float32)},
        reference=np.abs(img),
        log={"loss": np.linspace(1, 0, 5), "iteration": np.arange(5)},
    )


def test_round_trip(tmp_path):
    r = _recon()
    p = save_reconstruction(tmp_path / "sub" / "out.h5", r)
    with h5py.File(p) as f:
        assert f["reconstruction"].dtype == np.complex64 and f["reconstruction"].shape == (2, 3, 4, 5)
        assert f["parameter_maps/T1"].dtype == np.float32
        assert f.attrs["method"] == "tddip"
    back = load_reconstruction(p)
    assert back.method == "tddip"
    assert np.array_equal(back.image, r.image)
    assert np.array_equal(back.parameter_maps["T1"], r.parameter_maps["T1"])
    assert np.array_equal(back.reference, r.reference)
    assert np.array_equal(back.log["loss"], r.log["loss"])
    for k, v in r.attrs.items():
        assert back.attrs[k] == v, k  # dicts/lists/None come back via JSON
    assert "mridip_version" in back.attrs


def test_atomic_write_keeps_old_file_on_crash(tmp_path):
    p = tmp_path / "out.h5"
    save_reconstruction(p, _recon())
    old = p.read_bytes()
    bad = _recon()
    bad.parameter_maps["bad"] = np.zeros((2, 4, 5), np.complex64)  # rejected mid-write
    with pytest.raises(Exception):
        save_reconstruction(p, bad)
    assert p.read_bytes() == old  # the previous result is intact
    assert os.listdir(tmp_path) == ["out.h5"]  # and no temporary file is left behind


def test_no_half_file_when_first_write_crashes(tmp_path):
    bad = _recon()
    bad.parameter_maps["bad"] = np.zeros((7,), np.float32)
    with pytest.raises(Exception):
        save_reconstruction(tmp_path / "new.h5", bad)
    assert os.listdir(tmp_path) == []


def test_load_errors(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        load_reconstruction(tmp_path / "missing.h5")
    p = tmp_path / "raw.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("kspace", data=np.zeros(3))
    with pytest.raises(InputFileError, match="not a mridip output"):
        load_reconstruction(p)


def test_coil_maps_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    maps = (rng.standard_normal((2, 4, 4, 5)) + 1j * rng.standard_normal((2, 4, 4, 5))).astype(np.complex64)
    r = _recon()
    r.coil_maps = maps
    p = save_reconstruction(tmp_path / "m.h5", r)
    with h5py.File(p) as f:  # the file's own reader: the dataset is there, (S, C, Y, X) complex64
        assert f["coil_maps"].dtype == np.complex64 and f["coil_maps"].shape == (2, 4, 4, 5)
    back = load_reconstruction(p)
    assert np.array_equal(back.coil_maps, maps)
    # and --coil-maps reads it back the same, as it reads .npy and BART .cfl
    from mridip.io.coilmaps import load_coil_maps
    from mridip.recon.bart import write_cfl

    assert np.array_equal(load_coil_maps(p), maps)
    np.save(tmp_path / "m.npy", maps[0])  # sigpy's (C, Y, X)
    assert np.array_equal(load_coil_maps(tmp_path / "m.npy"), maps[:1])
    # BART ecalib: (X, Y, Z, C) with Z = slices
    write_cfl(tmp_path / "sens", np.transpose(maps, (3, 2, 0, 1)))
    assert np.array_equal(load_coil_maps(tmp_path / "sens.cfl"), maps)
    with pytest.raises(InputFileError, match="no 'coil_maps'"):
        load_coil_maps(save_reconstruction(tmp_path / "none.h5", _recon()))


def test_reprs_are_short(make_cartesian, make_noise):
    import torch

    from mridip.data import RawData

    k, m = make_cartesian(S=2, T=3, C=4, Ky=16, Kx=12)
    raw = RawData(kspace=torch.from_numpy(k), kind="cartesian", mask=torch.from_numpy(m),
                  noise=torch.from_numpy(make_noise(C=4, N=50)), format="ismrmrd", source="x.h5")
    text = repr(raw)
    assert str(raw) == text and len(text) < 400 and "\n" not in text and "tensor(" not in text
    for part in ("cartesian", "(2, 3, 4, 16, 12)", "2 slice(s)", "3 frame(s)", "4 coils", "noise (4, 50)",
                 "calibration", "format ismrmrd", "source 'x.h5'"):
        assert part in text, part
    assert "tensor(" not in repr(_recon()) and len(repr(_recon())) < 200
