"""describe() / `mridip info`: the numbers printed are those of the file."""

import re

import numpy as np

from data_tools.writers import write_fastmri, write_ismrmrd_cartesian, write_ismrmrd_radial
from mridip.cli import main
from mridip.io import describe
from mridip.trajectories import radial_trajectory


def _field(text, label):
    m = re.search(rf"^{re.escape(label)}:\s*(.*)$", text, re.M)
    assert m, f"{label!r} missing from:\n{text}"
    return m.group(1)


def test_cartesian_info(tmp_path, make_cartesian, make_noise):
    k, m = make_cartesian(S=2, T=3, C=4, Ky=16, Kx=12, lines=4)
    p = write_ismrmrd_cartesian(tmp_path / "c.h5", k, m, noise=make_noise(N=512), calibration_lines=2,
                                field_strength_t=3.0, te_ms=2.5, tr_ms=5.0)
    t = describe(p)
    assert _field(t, "format") == "ISMRMRD"
    assert _field(t, "trajectory") == "cartesian"
    assert _field(t, "encoded matrix").startswith("24 x 16")
    assert _field(t, "recon matrix").startswith("12 x 16")
    assert _field(t, "coils") == "4"
    assert _field(t, "frames").startswith("3")
    assert _field(t, "slices") == "2"
    assert _field(t, "lines per frame") == "4 of 16"
    assert _field(t, "acceleration").startswith("R = 4.00")
    assert _field(t, "noise scans").startswith("2 (512 samples")
    assert _field(t, "readout oversampling").startswith("2")
    assert _field(t, "field strength") == "3 T"
    assert _field(t, "TE") == "2.5 ms" and _field(t, "TR") == "5 ms"


def test_radial_info(tmp_path):
    T, C, spf, ns = 4, 2, 5, 32
    k = np.ones((T, C, spf * ns), np.complex64)
    p = write_ismrmrd_radial(tmp_path / "r.h5", k, radial_trajectory(T, spf, ns),
                             spokes_per_frame=spf, image_shape=(16, 16))
    t = describe(p)
    assert _field(t, "trajectory") == "radial"
    assert _field(t, "spokes per frame") == "5"
    assert _field(t, "frames").startswith("4")
    assert _field(t, "spokes").startswith("20 in total, 32 samples")
    assert _field(t, "noise scans").startswith("0")


def test_fastmri_info(tmp_path):
    k = np.ones((3, 2, 8, 10), np.complex64)
    cols = np.zeros(10, bool)
    cols[[1, 4, 5, 6, 9]] = True
    p = write_fastmri(tmp_path / "f.h5", k * cols, mask=cols, reference_rss=np.ones((3, 8, 10), np.float32))
    t = describe(p)
    assert _field(t, "format") == "fastMRI"
    assert _field(t, "slices") == "3" and _field(t, "coils") == "2"
    assert _field(t, "acceleration") == "R = 2.00"
    assert _field(t, "lines per frame").startswith("5 of 10")


def test_cli_info_end_to_end(tmp_path, make_cartesian, capsys):
    k, m = make_cartesian(S=1, T=1)
    p = write_ismrmrd_cartesian(tmp_path / "c.h5", k[0], m[0])
    assert main(["info", str(p)]) == 0
    assert "ISMRMRD" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "missing.h5")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err


def test_info_describes_outputs_and_truth_files(tmp_path, capsys):
    from data_tools.phantom import simulate_to_files

    raw, truth = simulate_to_files(tmp_path, kind="cartesian", size=24, frames=4, coils=2, acceleration=3.0,
                                   snr=40.0, seed=3)
    out = tmp_path / "ttv.h5"
    assert main(["recon", raw, "-p", "temporal-tv", "-o", str(out), "-q", "--no-preview",
                 "--set", "baseline.iterations=5", "--set", "baseline.tune_values=[0.001, 0.01]"]) == 0
    capsys.readouterr()
    assert main(["info", str(out), truth]) == 0
    text = capsys.readouterr().out
    o, t = text.split("ground truth")
    assert _field(o, "method") == "temporal-tv" and _field(o, "protocol") == "temporal-tv"
    assert _field(o, "stop").endswith("after 5 iterations")
    assert re.match(r"0\.0?1 \(tuned", _field(o, "lambda"))
    assert "0.001:" in _field(o, "lambda candidates") and "*" in _field(o, "lambda candidates")
    assert _field(o, "coil maps").startswith("(1, 2, 24, 24) (S, C, Y, X)")
    assert _field(t, "image").startswith("(1, 4, 24, 24) (S, T, Y, X)")
    assert "heart" in _field(t, "regions") and _field(t, "coil maps").startswith("(1, 2, 24, 24)")
