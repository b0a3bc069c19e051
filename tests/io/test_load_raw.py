"""load_raw: format detection by content, and every bad input -> a clear InputFileError."""

import os

import h5py
import ismrmrd
import numpy as np
import pytest

from data_tools.writers import write_fastmri, write_ismrmrd_cartesian
from mridip.errors import InputFileError
from mridip.io import describe, detect_format, load_raw


def test_detects_format_from_content_not_name(tmp_path, make_cartesian):
    k, m = make_cartesian(S=1, T=1)
    # names that lie about the content
    p1 = write_ismrmrd_cartesian(tmp_path / "fastmri_like.data", k[0], m[0])
    p2 = write_fastmri(tmp_path / "scan.ismrmrd.h5", k[:, 0])
    assert detect_format(p1) == "ismrmrd" and load_raw(p1).format == "ismrmrd"
    assert detect_format(p2) == "fastmri" and load_raw(p2).format == "fastmri"


def test_missing_file():
    with pytest.raises(InputFileError, match="not found"):
        load_raw("/nonexistent/raw.h5")
    with pytest.raises(InputFileError, match="not found"):
        describe("/nonexistent/raw.h5")


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_file(tmp_path, make_cartesian, keep):
    k, m = make_cartesian()
    p = write_ismrmrd_cartesian(tmp_path / "c.h5", k, m)
    data = open(p, "rb").read()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputFileError, match="truncated or corrupt"):
        load_raw(cut)


def test_not_hdf5(tmp_path):
    p = tmp_path / "k.npy"
    np.save(p, np.zeros((2, 4, 4), np.complex64))
    with pytest.raises(InputFileError, match="from_arrays"):
        load_raw(p)


def test_hdf5_of_another_kind(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("images", data=np.zeros((4, 4)))
    with pytest.raises(InputFileError, match="neither ISMRMRD") as e:
        load_raw(p)
    assert "images" in str(e.value)  # names what the file holds


def test_radial_without_trajectory(tmp_path, make_cartesian):
    k, m = make_cartesian(S=1, T=1)
    p = str(write_ismrmrd_cartesian(tmp_path / "r.h5", k[0], m[0]))
    with ismrmrd.Dataset(p, "dataset", create_if_needed=False) as ds:
        hdr = ismrmrd.xsd.CreateFromDocument(ds.read_xml_header())
        hdr.encoding[0].trajectory = ismrmrd.xsd.trajectoryType.RADIAL
        del ds._dataset["xml"]
        ds.write_xml_header(ismrmrd.xsd.ToXML(hdr))
    with pytest.raises(InputFileError, match="carries no trajectory"):
        load_raw(p, spokes_per_frame=2)


def test_line_beyond_encoding_limits(tmp_path, make_cartesian):
    k, m = make_cartesian(S=1, T=1, Ky=16)
    p = write_ismrmrd_cartesian(tmp_path / "c.h5", k[0], m[0])
    with h5py.File(p, "r+") as f:
        d = f["dataset/data"]
        rec = d[0]
        rec["head"]["idx"]["kspace_encode_step_1"] = 40
        d[0] = rec
    with pytest.raises(InputFileError, match="outside the header's encodingLimits"):
        load_raw(p)


def test_nan_in_kspace_ismrmrd_and_fastmri(tmp_path, make_cartesian):
    k, m = make_cartesian(S=1, T=1)
    k = k.copy()
    ky = int(np.flatnonzero(m[0, 0, :, 0])[0])
    k[0, 0, 1, ky, 3] = np.nan
    with pytest.raises(InputFileError, match="NaN"):
        load_raw(write_ismrmrd_cartesian(tmp_path / "c.h5", k[0], m[0], readout_oversampling=1))
    with pytest.raises(InputFileError, match="NaN"):
        load_raw(write_fastmri(tmp_path / "f.h5", k[:, 0]))


def test_reconstruction_file_is_not_raw(tmp_path):
    from mridip.data import Reconstruction
    from mridip.io import save_reconstruction

    p = save_reconstruction(tmp_path / "out.h5", Reconstruction(np.zeros((4, 4)), "zero-filled"))
    with pytest.raises(InputFileError, match="load_reconstruction"):
        load_raw(p)


def test_no_output_left_by_failed_reads(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("x", data=1)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(InputFileError):
        load_raw(p)
    assert sorted(os.listdir(tmp_path)) == before
