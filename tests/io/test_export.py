"""MRD and NIfTI outputs, read back with the libraries' own readers (ismrmrd, nibabel)."""

import json
import warnings

import ismrmrd
import nibabel as nib
import numpy as np
import pytest

from mridip.data import Reconstruction
from mridip.errors import InputFileError, ShapeError
from mridip.io.export import output_format, output_stem, save_mrd, save_nifti, save_output

S, T, Y, X = 2, 3, 6, 8
FOV = (200.0, 120.0, 4.0)  # mm: dx = 25, dy = 20, thickness 4
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def rotation(a, b, c):
    """A proper rotation (det +1) from three angles in radians (z, y, x)."""
    cz, sz, cy, sy, cx, sx = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return rz @ ry @ rx


def geometry(rot, centre=(10.0, -20.0, 30.0), gap=6.0):
    """One dict per slice; slice s at centre + s * gap * slice_dir (LPS mm)."""
    read, phase, normal = rot[:, 0], rot[:, 1], rot[:, 2]
    return [
        {"position": list(np.asarray(centre) + s * gap * normal), "read_dir": list(read),
         "phase_dir": list(phase), "slice_dir": list(normal)}
        for s in range(S)
    ]


def make_recon(rot=None, maps=True, fov=FOV, **attrs):
    rng = np.random.default_rng(3)
    img = (rng.standard_normal((S, T, Y, X)) + 1j * rng.standard_normal((S, T, Y, X))).astype(np.complex64)
    a = {"slices": [1, 2], "kind": "radial", **attrs}
    if fov is not None:
        a["recon_fov_mm"] = list(fov)
    if rot is not None:
        a["slice_geometry"] = json.dumps(geometry(rot))
    pm = {}
    if maps:
        pm = {"T2": rng.uniform(20, 200, (S, Y, X)).astype(np.float32),
              "M0": rng.uniform(0, 1, (S, Y, X)).astype(np.float32)}
    return Reconstruction(image=img, method="gridding", attrs=a, parameter_maps=pm)


OBLIQUE = rotation(0.3, -0.5, 0.8)
TRANSVERSE = np.eye(3)


# ------------------------------------------------------------------------------- NIfTI


@pytest.mark.parametrize("rot", [TRANSVERSE, OBLIQUE], ids=["transverse", "oblique"])
def test_nifti_round_trip_magnitude_affine_units(rot, tmp_path):
    rec = make_recon(rot, tr_ms=4.5)
    out = tmp_path / "out.nii.gz"
    written = save_nifti(out, rec)
    assert written == [str(out), str(tmp_path / "out_T2.nii.gz"), str(tmp_path / "out_M0.nii.gz")]
    v = nib.load(str(out))
    data = np.asarray(v.dataobj)
    assert data.shape == (X, Y, S, T) and data.dtype == np.float32
    for s in range(S):
        for t in range(T):
            np.testing.assert_allclose(data[:, :, s, t], np.abs(rec.image[s, t]).T, rtol=1e-6)
    A = v.affine
    # voxel sizes = FOV / matrix in-plane; slice step = the distance between slice positions (6 mm)
    np.testing.assert_allclose(np.linalg.norm(A[:3, :3], axis=0), [25.0, 20.0, 6.0], rtol=1e-6)
    np.testing.assert_allclose(v.header.get_zooms()[:3], [25.0, 20.0, 6.0], rtol=1e-6)
    # orientation: columns along read, rows along phase, slices along the normal, in RAS
    for k, d in enumerate((rot[:, 0], rot[:, 1], rot[:, 2])):
        np.testing.assert_allclose(A[:3, k] / np.linalg.norm(A[:3, k]), LPS_TO_RAS @ d, atol=1e-6)
    # the centre of the FOV box (between the middle voxels) is each slice's ISMRMRD position
    geo = geometry(rot)
    for s in range(S):
        ras = A @ np.array([(X - 1) / 2, (Y - 1) / 2, s, 1.0])
        np.testing.assert_allclose(ras[:3], LPS_TO_RAS @ np.asarray(geo[s]["position"]), atol=1e-4)
    assert v.header.get_xyzt_units() == ("mm", "msec")
    assert float(v.header["pixdim"][4]) == pytest.approx(4.5)
    assert int(v.header["sform_code"]) == 1 and int(v.header["qform_code"]) == 1
    np.testing.assert_allclose(v.get_qform(), A, atol=1e-4)  # a rigid grid: qform holds it too
    t2 = nib.load(str(tmp_path / "out_T2.nii.gz"))
    assert t2.shape == (X, Y, S)
    np.testing.assert_allclose(np.asarray(t2.dataobj), rec.parameter_maps["T2"].transpose(2, 1, 0))
    np.testing.assert_allclose(t2.affine, A)


def test_nifti_transverse_axis_codes(tmp_path):
    # LPS read = +x (towards the patient's left) is RAS -x: nibabel calls the axes L, P, S
    save_nifti(tmp_path / "t.nii", make_recon(TRANSVERSE, maps=False))
    v = nib.load(str(tmp_path / "t.nii"))
    assert nib.aff2axcodes(v.affine) == ("L", "P", "S")
    np.testing.assert_allclose(v.affine[:3, :3], np.diag([-25.0, -20.0, 6.0]), atol=1e-9)


def test_nifti_one_slice_uses_the_thickness(tmp_path):
    rec = make_recon(OBLIQUE, maps=False)
    one = Reconstruction(image=rec.image[:1], method="x",
                         attrs={"recon_fov_mm": list(FOV), "slice_geometry": json.dumps(geometry(OBLIQUE)[:1])})
    save_nifti(tmp_path / "one.nii.gz", one)
    v = nib.load(str(tmp_path / "one.nii.gz"))
    np.testing.assert_allclose(np.linalg.norm(v.affine[:3, :3], axis=0), [25.0, 20.0, 4.0], rtol=1e-6)
    assert float(v.header["pixdim"][4]) == 0.0  # TR unknown


def test_no_geometry_warns_and_writes_1mm(tmp_path):
    rec = make_recon(None, maps=False, fov=None)
    with pytest.warns(UserWarning, match="header gave no geometry"):
        save_nifti(tmp_path / "g.nii.gz", rec)
    v = nib.load(str(tmp_path / "g.nii.gz"))
    np.testing.assert_allclose(np.linalg.norm(v.affine[:3, :3], axis=0), [1.0, 1.0, 1.0])
    with pytest.warns(UserWarning, match="header gave no geometry"):
        save_mrd(tmp_path / "g.mrd", rec)


def test_unequal_slice_spacing_warns(tmp_path):
    rec = make_recon(TRANSVERSE, maps=False)
    geo = geometry(TRANSVERSE)
    geo.append({**geo[1], "position": [10.0, -20.0, 30.0 + 20.0]})  # gaps 6 then 14 mm
    img = np.concatenate([rec.image, rec.image[:1]])
    three = Reconstruction(image=img, method="x", attrs={"recon_fov_mm": list(FOV), "slice_geometry": json.dumps(geo)})
    with pytest.warns(UserWarning, match="not equally spaced"):
        save_nifti(tmp_path / "u.nii.gz", three)


def test_slice_geometry_of_the_wrong_length_is_an_error(tmp_path):
    rec = make_recon(OBLIQUE, maps=False)
    rec.attrs["slice_geometry"] = json.dumps(geometry(OBLIQUE)[:1])
    with pytest.raises(ShapeError, match="1 entries for 2"):
        save_nifti(tmp_path / "e.nii.gz", rec)


# ------------------------------------------------------------------------------- MRD


def read_images(path, group):
    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        ims = [ds.read_image(group, i) for i in range(ds.number_of_images(group))]
        xml = ds.read_xml_header()
    finally:
        ds.close()
    return ims, xml.decode() if isinstance(xml, bytes) else xml


@pytest.mark.parametrize("rot", [TRANSVERSE, OBLIQUE], ids=["transverse", "oblique"])
def test_mrd_round_trip_pixels_indices_geometry(rot, tmp_path):
    rec = make_recon(rot)
    out = tmp_path / "out.mrd"
    assert save_mrd(out, rec) == str(out)
    ims, xml = read_images(out, "reconstruction")
    assert len(ims) == S * T
    geo = geometry(rot)
    seen = set()
    for im in ims:
        s = [1, 2].index(im.slice)  # the input's slice numbers (attrs["slices"])
        t = im.phase
        seen.add((s, t))
        assert im.data.shape == (1, 1, Y, X) and im.data.dtype == np.complex64
        np.testing.assert_array_equal(im.data[0, 0], rec.image[s, t])
        assert im.matrix_size == (X, Y, 1)
        assert im.image_type == ismrmrd.IMTYPE_COMPLEX and im.image_series_index == 1
        np.testing.assert_allclose(list(im.field_of_view), FOV, rtol=1e-6)
        np.testing.assert_allclose(list(im.position), geo[s]["position"], atol=1e-4)
        for k in ("read_dir", "phase_dir", "slice_dir"):
            np.testing.assert_allclose(list(getattr(im, k)), geo[s][k], atol=1e-6)
        assert im.meta["SeriesDescription"] == "mridip gridding"
    assert seen == {(s, t) for s in range(S) for t in range(T)}
    # the minimal header is a valid ismrmrdHeader with the reconSpace
    hdr = ismrmrd.xsd.CreateFromDocument(xml)
    rs = hdr.encoding[0].reconSpace
    assert (rs.matrixSize.x, rs.matrixSize.y, rs.matrixSize.z) == (X, Y, 1)
    assert (rs.fieldOfView_mm.x, rs.fieldOfView_mm.y, rs.fieldOfView_mm.z) == pytest.approx(FOV)
    # parameter maps: one real series each, named in the meta attributes
    for k, name in enumerate(("T2", "M0")):
        maps, _ = read_images(out, f"map_{name}")
        assert len(maps) == S
        for im in maps:
            s = [1, 2].index(im.slice)
            assert im.data.dtype == np.float32 and im.image_type == ismrmrd.IMTYPE_REAL
            assert im.image_series_index == 2 + k and im.meta["ImageComment"] == name
            np.testing.assert_array_equal(im.data[0, 0], rec.parameter_maps[name][s])
        assert maps[0].meta["Units"] == ("ms" if name == "T2" else "a.u.")


def test_mrd_rewrite_replaces_not_appends(tmp_path):
    out = tmp_path / "r.mrd"
    save_mrd(out, make_recon(OBLIQUE, maps=False))
    save_mrd(out, make_recon(OBLIQUE, maps=False))
    ims, _ = read_images(out, "reconstruction")
    assert len(ims) == S * T
    assert [p.name for p in tmp_path.iterdir()] == ["r.mrd"]  # no temporary left behind


def test_mrd_copies_the_input_header(tmp_path):
    from data_tools.writers import write_ismrmrd_cartesian

    rng = np.random.default_rng(0)
    k = (rng.standard_normal((1, 2, Y, X)) + 1j * rng.standard_normal((1, 2, Y, X))).astype(np.complex64)
    raw = write_ismrmrd_cartesian(tmp_path / "raw.h5", k, np.ones((1, Y, X), bool), tr_ms=7.0)
    ds = ismrmrd.Dataset(raw, "dataset", create_if_needed=False)
    want = ds.read_xml_header()
    ds.close()
    want = want.decode() if isinstance(want, bytes) else want
    rec = make_recon(OBLIQUE, maps=False, input=raw)
    save_mrd(tmp_path / "c.mrd", rec)
    _, xml = read_images(tmp_path / "c.mrd", "reconstruction")
    assert xml.strip() == want.strip()
    save_nifti(tmp_path / "c.nii.gz", rec)  # TR from the input's header
    assert float(nib.load(str(tmp_path / "c.nii.gz")).header["pixdim"][4]) == pytest.approx(7.0)


# ------------------------------------------------------------------------------- dispatch


@pytest.mark.parametrize("name, fmt", [("a.h5", "h5"), ("a.mrd", "mrd"), ("a.MRD.h5", "mrd"),
                                       ("a.nii", "nifti"), ("a.nii.gz", "nifti")])
def test_output_format_by_suffix(name, fmt):
    assert output_format(name) == fmt
    assert output_stem(name) == "a"


def test_output_format_errors():
    with pytest.raises(InputFileError, match=r"\.h5.*\.mrd.*\.nii\.gz"):
        output_format("out.png")
    assert output_format("out.h5", "mrd") == "mrd"  # MRD files are often named .h5
    with pytest.raises(InputFileError, match="must end in .nii"):
        output_format("out.h5", "nifti")
    with pytest.raises(InputFileError, match="NIfTI suffix"):
        output_format("out.nii.gz", "h5")
    with pytest.raises(InputFileError, match="choose one of"):
        output_format("out.h5", "dicom")


def test_save_output_dispatch_and_provenance(tmp_path):
    from mridip.io import load_reconstruction

    rec = make_recon(OBLIQUE)
    assert save_output(tmp_path / "a.h5", rec) == [str(tmp_path / "a.h5")]
    np.testing.assert_array_equal(load_reconstruction(tmp_path / "a.h5").image, rec.image)
    w = save_output(tmp_path / "b.nii.gz", rec, provenance=True)
    assert w[0] == str(tmp_path / "b.nii.gz") and w[-1] == str(tmp_path / "b.h5")
    np.testing.assert_array_equal(load_reconstruction(tmp_path / "b.h5").image, rec.image)
    w = save_output(tmp_path / "c.h5", rec, format="mrd", provenance=True)
    assert w == [str(tmp_path / "c.h5"), str(tmp_path / "c.mridip.h5")]
    ims, _ = read_images(tmp_path / "c.h5", "reconstruction")
    assert len(ims) == S * T
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # geometry present: no warning
        save_output(tmp_path / "d.mrd", rec)


# ------------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def radial_file(tmp_path_factory):
    from data_tools.phantom import simulate_to_files

    d = tmp_path_factory.mktemp("radial")
    raw, _ = simulate_to_files(d, kind="radial", size=16, frames=2, coils=2, spokes_per_frame=8, snr=40.0, seed=1)
    return raw


def test_cli_recon_writes_nifti_and_mrd(radial_file, tmp_path, capsys):
    from mridip.cli import main
    from mridip.io import load_reconstruction

    out = tmp_path / "rec.nii.gz"
    rc = main(["recon", radial_file, "-p", "gridding", "-o", str(out), "-q", "--provenance"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "rec.png").exists() and (tmp_path / "rec.gif").exists()
    assert not list(tmp_path.glob("*.nii.png"))
    rec = load_reconstruction(tmp_path / "rec.h5")
    v = nib.load(str(out))
    assert v.shape == (16, 16, 1, 2)
    np.testing.assert_allclose(np.asarray(v.dataobj)[:, :, 0, :], np.abs(rec.image[0]).transpose(2, 1, 0), rtol=1e-6)
    fov = rec.attrs.get("recon_fov_mm")
    want = [fov[0] / 16, fov[1] / 16] if fov is not None else [1.0, 1.0]
    np.testing.assert_allclose(v.header.get_zooms()[:2], want, rtol=1e-6)
    assert float(v.header["pixdim"][4]) == pytest.approx(3.0)  # the simulator's TR, from the input header

    rc = main(["recon", radial_file, "-p", "gridding", "-o", str(tmp_path / "rec.mrd"), "-q", "--no-preview"])
    assert rc == 0, capsys.readouterr().err
    ims, xml = read_images(tmp_path / "rec.mrd", "reconstruction")
    assert len(ims) == 2 and sorted(im.phase for im in ims) == [0, 1]
    tol = 1e-6 * np.abs(rec.image).max()
    np.testing.assert_allclose(ims[0].data[0, 0], rec.image[0, ims[0].phase], rtol=1e-5, atol=tol)
    assert "ismrmrdHeader" in xml

    rc = main(["recon", radial_file, "-p", "gridding", "-o", str(tmp_path / "rec.png"), "-q"])
    assert rc == 2 and ".mrd" in capsys.readouterr().err
