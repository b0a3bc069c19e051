"""The command line end to end on small simulated files, and its error messages."""

import csv

import numpy as np
import pytest
import torch

from data_tools.phantom import simulate_to_files
from mridip.cli import main
from mridip.io import load_reconstruction


@pytest.fixture(scope="module")
def radial_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("radial")
    raw, truth = simulate_to_files(d, kind="radial", size=24, frames=4, coils=3, spokes_per_frame=8, snr=40.0, seed=1)
    return raw, truth


@pytest.fixture(scope="module")
def cartesian_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cart")
    raw, truth = simulate_to_files(d, kind="cartesian", size=24, frames=4, coils=3, acceleration=3.0, snr=40.0, seed=2)
    return raw, truth


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and "mridip" in capsys.readouterr().out
    assert main([]) == 0
    assert "recon" in capsys.readouterr().out


def test_info_describes_a_radial_file(radial_file, capsys):
    assert main(["info", radial_file[0]]) == 0
    out = capsys.readouterr().out
    assert "radial" in out and "coils:                3" in out and "frames:               4" in out


@pytest.mark.parametrize("kind", ["radial", "cartesian"])
def test_recon_tddip_writes_a_complete_output(kind, radial_file, cartesian_file, tmp_path, capsys):
    raw, _ = radial_file if kind == "radial" else cartesian_file
    out = tmp_path / "rec.h5"
    rc = main(["recon", raw, "-p", f"tddip-{kind}-cine", "-o", str(out), "-q",
               "--set", "fit.iterations=12", "--set", "model.channels=8", "--set", "fit.val_every=4",
               "--set", "fit.checkpoint_every=5"])
    assert rc == 0, capsys.readouterr().err
    rec = load_reconstruction(out)
    assert rec.image.shape == (1, 4, 24, 24) and rec.image.dtype == np.complex64
    assert np.isfinite(rec.image).all() and np.abs(rec.image).max() > 0
    assert rec.method == "tddip"
    for key in ("protocol", "mridip_version", "device", "seed", "iterations", "stop_reason", "wall_seconds"):
        assert key in rec.attrs, key
    assert rec.attrs["iterations"] == 12 and "iterations = 12" in rec.attrs["protocol"]
    assert out.with_suffix(".png").exists() and out.with_suffix(".gif").exists()
    assert not list(tmp_path.glob("*.ckpt*"))  # checkpoints removed after a finished fit


def test_recon_baseline_and_compare_table(radial_file, tmp_path, capsys):
    raw, truth = radial_file
    out = tmp_path / "cmp"
    rc = main(["compare", raw, "-p", "gridding", "-p", "cg-sense", "-p", "temporal-tv", "--reference", truth,
               "-o", str(out), "-q", "--set", "temporal-tv:baseline.tune=false", "--set", "temporal-tv:baseline.iterations=20"])
    assert rc == 0, capsys.readouterr().err
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["protocol"] for r in rows] == ["gridding", "cg-sense", "temporal-tv"]
    for r in rows:
        assert 0 < float(r["psnr"]) < 80 and 0 < float(r["ssim"]) <= 1 and float(r["nrmse"]) > 0
        assert float(r["psnr_heart"]) > 0 and float(r["seconds"]) >= 0
    # temporal TV uses the frames jointly: it must beat frame-by-frame gridding
    by = {r["protocol"]: float(r["psnr"]) for r in rows}
    assert by["temporal-tv"] > by["gridding"]
    md = (out / "results.md").read_text()
    assert "| method | protocol | psnr |" in md and md.count("\n| ") >= 4
    for name in ("frames.png", "xt_profile.png", "errors.png", "gridding.gif", "cg-sense.h5"):
        assert (out / name).stat().st_size > 0, name


def test_compare_reports_the_oracle_of_a_generator(cartesian_file, tmp_path, capsys):
    raw, truth = cartesian_file
    out = tmp_path / "cmp"
    rc = main(["compare", raw, "-p", "cg-sense", "-p", "tddip-cartesian-cine", "--reference", truth, "-o", str(out),
               "-q", "--set", "tddip-cartesian-cine:fit.iterations=30", "--set", "tddip-cartesian-cine:model.channels=8",
               "--set", "tddip-cartesian-cine:fit.val_every=5", "--set", "tddip-cartesian-cine:fit.min_iterations=5"])
    assert rc == 0, capsys.readouterr().err
    with open(out / "results.csv") as f:
        rows = {r["protocol"]: r for r in csv.DictReader(f)}
    assert rows["cg-sense"]["oracle_psnr"] == ""  # baselines have no path to monitor
    g = rows["tddip-cartesian-cine"]
    rec = load_reconstruction(out / "tddip-cartesian-cine.h5")
    it, mon = np.asarray(rec.log["iteration"]), np.asarray(rec.log["monitor"])
    assert np.isfinite(mon).sum() == 6  # validated every 5 of 30 steps
    # the monitor scores exactly what the table scores: at the held-out choice it is the PSNR
    k = np.nonzero(it == rec.attrs["best_iteration"])[0][0]
    assert abs(mon[k] - float(g["psnr"])) < 0.01
    assert float(g["oracle_psnr"]) == pytest.approx(np.nanmax(mon), abs=0.01)
    assert float(g["oracle_psnr"]) >= float(g["psnr"]) - 0.01
    assert int(g["oracle_iteration"]) == int(it[np.nanargmax(mon)])
    assert "oracle_psnr" in (out / "results.md").read_text()


def test_compare_resume_keeps_finished_and_continues_interrupted(cartesian_file, tmp_path, monkeypatch, capsys):
    from mridip.compare import compare

    raw, truth = cartesian_file
    g = "tddip-cartesian-cine"
    sets = [f"{g}:fit.iterations=30", f"{g}:model.channels=8", f"{g}:fit.val_every=5",
            f"{g}:fit.min_iterations=5", f"{g}:fit.checkpoint_every=10"]
    kw = dict(reference=truth, overrides=sets, progress=False, echo=False)
    plain = compare(raw, ["cg-sense", g], tmp_path / "plain", **kw)

    # an interrupted comparison (stopped at step 13 of the generator) leaves its checkpoint
    out = tmp_path / "cmp"
    step, calls = torch.optim.Adam.step, [0]

    def interrupted(self, *a, **k):
        calls[0] += 1
        if calls[0] == 13:
            raise KeyboardInterrupt
        return step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare(raw, ["cg-sense", g], out, **kw)
    monkeypatch.setattr(torch.optim.Adam, "step", step)
    assert (out / "cg-sense.h5").exists() and not (out / f"{g}.h5").exists()
    assert [p.name for p in out.glob(f"{g}.h5.ckpt.*")] == [f"{g}.h5.ckpt.s0.pt"]
    cg_time = (out / "cg-sense.h5").stat().st_mtime_ns

    # --resume keeps the finished baseline and continues the fit: the image of an uninterrupted run
    argv = ["compare", raw, "-p", "cg-sense", "-p", g, "--reference", truth, "-o", str(out), "-q", "--resume"]
    argv += [a for s_ in sets for a in ("--set", s_)]
    assert main(argv) == 0, capsys.readouterr().err
    assert "cg-sense.h5: kept" in capsys.readouterr().out
    assert (out / "cg-sense.h5").stat().st_mtime_ns == cg_time
    rec, ref = load_reconstruction(out / f"{g}.h5"), load_reconstruction(tmp_path / "plain" / f"{g}.h5")
    np.testing.assert_allclose(rec.image, ref.image, rtol=0, atol=1e-5 * np.abs(ref.image).max())
    assert rec.attrs["iterations"] == 30 and rec.attrs["resumed_seconds"] > 0
    assert rec.attrs["wall_seconds"] > rec.attrs["resumed_seconds"]
    assert not list(out.glob("*.ckpt*"))  # removed once the file is written
    with open(out / "results.csv") as f:
        rows = {r["protocol"]: r for r in csv.DictReader(f)}
    assert float(rows[g]["psnr"]) == pytest.approx(plain[1]["psnr"], abs=1e-3)

    # a changed protocol is made afresh; a kept file is reported as it was
    rows2 = compare(raw, ["cg-sense", g], out, resume=True,
                    **{**kw, "overrides": sets + ["cg-sense:baseline.iterations=5"], "echo": True})
    assert (out / "cg-sense.h5").stat().st_mtime_ns != cg_time and rows2[0]["iterations"] == 5
    said = capsys.readouterr().out
    assert "cg-sense.h5: made again" in said and f"{g}.h5: kept" in said
    assert rows2[1]["seconds"] == round(float(rec.attrs["wall_seconds"]), 2)


def test_errors_are_one_clear_line(radial_file, tmp_path, capsys):
    raw, _ = radial_file
    cases = [
        (["recon", raw, "-p", "tddip-radial-cine", "-o", str(tmp_path / "a.h5"), "--set", "fit.iterationz=3"],
         "unknown key 'fit.iterationz'"),
        (["recon", raw, "-p", "no-such", "-o", str(tmp_path / "a.h5")], "unknown protocol 'no-such'"),
        (["recon", str(tmp_path / "missing.h5"), "-p", "gridding", "-o", str(tmp_path / "a.h5")], "missing.h5"),
        (["recon", raw, "-p", "gridding", "-o", str(tmp_path / "nodir" / "a.h5")], "does not exist"),
        (["info", str(tmp_path / "missing.h5")], "missing.h5"),
    ]
    if not torch.cuda.is_available():
        cases.append((["recon", raw, "-p", "gridding", "-o", str(tmp_path / "a.h5"), "--device", "cuda"],
                      "no CUDA device"))
    for argv, msg in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (argv, err)
        assert not (tmp_path / "a.h5").exists()


def test_truncated_input_fails_clearly(radial_file, tmp_path, capsys):
    data = open(radial_file[0], "rb").read()
    bad = tmp_path / "cut.h5"
    bad.write_bytes(data[: len(data) // 3])
    assert main(["recon", str(bad), "-p", "gridding", "-o", str(tmp_path / "o.h5")]) == 2
    err = capsys.readouterr().err
    assert "cut.h5" in err and "Traceback" not in err
    assert not (tmp_path / "o.h5").exists()


def test_recon_gip_through_the_command_line(cartesian_file, tmp_path, capsys):
    out = tmp_path / "gip.h5"
    rc = main(["recon", cartesian_file[0], "-p", "gip-cartesian-cine", "-o", str(out), "-q", "--no-preview",
               "--set", "model.channels=6", "--set", "model.k=3",
               "--set", "stages.stage1_iterations=10", "--set", "stages.stage2_iterations=10",
               "--set", "stages.stage3_iterations=10", "--set", "stages.admm_iterations=0"])
    assert rc == 0, capsys.readouterr().err
    rec = load_reconstruction(out)
    assert rec.method == "gip" and rec.image.shape == (1, 4, 24, 24) and np.isfinite(rec.image).all()
    assert "stage 1" in rec.attrs["stop_reason"] and "stage 3" in rec.attrs["stop_reason"]
    # the frame graph the network used is kept: (T, k), self first, neighbours distinct
    graph = np.asarray(rec.attrs["graph"])
    assert graph.shape == (4, 3) and (graph[:, 0] == np.arange(4)).all()
    assert all(len(set(row)) == 3 for row in graph.tolist())
    assert rec.attrs["returned"] == "stage 3 image" and len(rec.attrs["stage_seconds_per_iteration"]) == 3


@pytest.mark.parametrize("override, says", [
    ("tddip:fit.iterations=3", "names protocol 'tddip', which is not compared"),
    ("tddip-radial-cine:fit.iterationz=3", "unknown key 'fit.iterationz'"),
    ("temporal-tv:baseline.lam=abc", "'baseline.lam' must be of type float"),
])
def test_demo_rejects_a_wrong_override_before_simulating(override, says, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "-q", "--set", override]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err, err
    assert not out.exists()  # nothing simulated, nothing written


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_demo_without_cuda_refuses_before_simulating(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--full", "--device", "cuda", "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device" in err and "--device cpu" in err and "Traceback" not in err, err
    assert not out.exists()


# ---------------------------------------------------------------- issue 23: never lose data
def _sha(path):
    import hashlib

    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_recon_never_writes_over_an_input_and_asks_before_replacing(cartesian_file, tmp_path, capsys):
    import os
    import shutil

    victim = tmp_path / "victim.h5"
    shutil.copy(cartesian_file[0], victim)
    before = _sha(victim)
    os.link(victim, tmp_path / "link.h5")
    for out, extra in ((victim, []), (victim, ["--overwrite"]), (tmp_path / "link.h5", ["--overwrite"])):
        assert main(["recon", str(victim), "-p", "cg-sense", "-o", str(out), "-q", *extra]) == 2
        err = capsys.readouterr().err
        assert "is the input file" in err and "--overwrite does not allow this" in err
    assert _sha(victim) == before  # the raw k-space is untouched
    # an earlier run's output is replaced only with --overwrite
    out = tmp_path / "cg.h5"
    assert main(["recon", str(victim), "-p", "cg-sense", "-o", str(out), "-q"]) == 0
    first = _sha(out)
    assert main(["recon", str(victim), "-p", "gridding", "-o", str(out), "-q"]) == 2
    assert f"{out} exists: give --overwrite" in capsys.readouterr().err and _sha(out) == first
    assert main(["recon", str(victim), "-p", "gridding", "-o", str(out), "-q", "--overwrite"]) == 0
    assert load_reconstruction(out).method == "gridding"
    # --provenance's sibling STEM.h5 is a main output too
    (tmp_path / "nii.h5").write_bytes(b"someone's file")
    assert main(["recon", str(victim), "-p", "gridding", "-o", str(tmp_path / "nii.nii.gz"), "-q",
                 "--provenance"]) == 2
    assert "provenance file" in capsys.readouterr().err and not (tmp_path / "nii.nii.gz").exists()


def test_compare_folder_follows_the_same_rule(cartesian_file, tmp_path, capsys):
    raw, truth = cartesian_file
    out = tmp_path / "cmp"
    argv = ["compare", raw, "-p", "cg-sense", "--reference", truth, "-o", str(out), "-q"]
    assert main(argv) == 0
    table = (out / "results.md").read_text()
    assert main(argv) == 2
    assert "results.md" in capsys.readouterr().err and (out / "results.md").read_text() == table
    assert main(argv + ["--overwrite"]) == 0
    # a reference that lies where an output goes is never replaced, --overwrite or not
    ref = out / "cg-sense.h5"
    before = _sha(ref)
    assert main(["compare", raw, "-p", "cg-sense", "--reference", str(ref), "-o", str(out), "-q", "--overwrite"]) == 2
    assert "cg-sense.h5 is the input file" in capsys.readouterr().err and _sha(ref) == before


def _interrupt_adam_at(monkeypatch, n):
    step, calls = torch.optim.Adam.step, [0]

    def interrupted(self, *a, **k):
        calls[0] += 1
        if calls[0] == n:
            raise KeyboardInterrupt
        return step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", interrupted)
    return lambda: monkeypatch.setattr(torch.optim.Adam, "step", step)


def test_an_interrupted_fit_is_never_thrown_away(cartesian_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "rec.h5"
    argv = ["recon", cartesian_file[0], "-p", "tddip-cartesian-cine", "-o", str(out), "-q",
            "--set", "fit.iterations=20", "--set", "model.channels=8", "--set", "fit.val_every=5",
            "--set", "fit.checkpoint_every=5"]
    restore = _interrupt_adam_at(monkeypatch, 13)
    assert main(argv) == 130
    restore()
    err = capsys.readouterr().err
    ck = tmp_path / "rec.h5.ckpt.s0.pt"
    assert ck.exists() and str(ck) in err and "--resume" in err and "mridip recon" in err
    stamp = ck.stat().st_mtime_ns
    # the same command without --resume refuses, and keeps the checkpoint
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "interrupted fit" in err and "--resume" in err and "--restart" in err
    assert ck.stat().st_mtime_ns == stamp and not out.exists()
    assert main(argv + ["--resume"]) == 0, capsys.readouterr().err
    rec = load_reconstruction(out)
    assert rec.attrs["iterations"] == 20 and rec.attrs["resumed_seconds"] > 0 and not ck.exists()
    # --resume with nothing to resume says so
    assert main(argv[:5] + [str(tmp_path / "other.h5")] + argv[6:] + ["--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    # --restart discards an interrupted fit on purpose
    out2 = tmp_path / "two.h5"
    argv2 = argv[:5] + [str(out2)] + argv[6:]
    restore = _interrupt_adam_at(monkeypatch, 8)
    assert main(argv2) == 130
    restore()
    capsys.readouterr()
    assert main(argv2 + ["--restart"]) == 0
    assert load_reconstruction(out2).attrs["resumed_seconds"] == 0


def test_progress_of_lambda_tuning_baselines_and_coil_maps(cartesian_file, tmp_path, capsys):
    argv = ["recon", cartesian_file[0], "-p", "temporal-tv", "--set", "baseline.iterations=5",
            "--set", "baseline.tune_values=[0.001, 0.01, 0.1]", "--no-preview"]
    assert main(argv + ["-o", str(tmp_path / "a.h5")]) == 0
    err = capsys.readouterr().err
    assert "tune lambda" in err and "candidate 3/3" in err and "held-out residual" in err
    assert "coil maps (espirit)" in err and "temporal-tv (up to 5 iterations)" in err
    assert main(argv + ["-o", str(tmp_path / "b.h5"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "candidate" not in err and "coil maps" not in err  # -q silences it


def test_the_jit_deprecation_warning_does_not_reach_the_user(radial_file, tmp_path):
    import subprocess
    import sys

    # a user with warnings on (python -W default, PYTHONWARNINGS=default) still sees none of torch's
    code = ("import sys; from mridip.cli import main; "
            f"sys.exit(main(['recon', {radial_file[0]!r}, '-p', 'gridding', '-o', {str(tmp_path / 'g.h5')!r}, '-q']))")
    res = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "torch.jit.script" not in res.stderr


def test_compare_table_shows_the_tuned_lambda(cartesian_file, tmp_path, capsys):
    raw, truth = cartesian_file
    out = tmp_path / "cmp"
    assert main(["compare", raw, "-p", "cg-sense", "-p", "temporal-tv", "--reference", truth, "-o", str(out),
                 "--set", "temporal-tv:baseline.iterations=5", "-q",
                 "--set", "temporal-tv:baseline.tune_values=[0.001, 0.01, 0.1]"]) == 0
    printed = capsys.readouterr().out
    with open(out / "results.csv") as f:
        rows = {r["protocol"]: r for r in csv.DictReader(f)}
    rec = load_reconstruction(out / "temporal-tv.h5")
    assert float(rows["temporal-tv"]["lam"]) == rec.attrs["tuned_lam"] and rows["cg-sense"]["lam"] == ""
    cands = rows["temporal-tv"]["lam_candidates"].split()
    assert [c.split(":")[0].rstrip("*") for c in cands] == ["0.001", "0.01", "0.1"]
    assert sum(c.endswith("*") for c in cands) == 1
    assert f"{rec.attrs['tuned_lam']:g}:" in [c for c in cands if c.endswith("*")][0]
    md = (out / "results.md").read_text()
    assert "lam_candidates" in md and "lam_candidates" in printed


def test_coil_maps_are_saved_and_reused(cartesian_file, tmp_path, capsys):
    raw, truth = cartesian_file
    a = tmp_path / "a.h5"
    assert main(["recon", raw, "-p", "cg-sense", "-o", str(a), "-q", "--no-preview"]) == 0
    first = load_reconstruction(a)
    assert first.coil_maps.shape == (1, 3, 24, 24) and first.coil_maps.dtype == np.complex64
    assert np.abs(first.coil_maps).max() > 0
    # walsh estimated now, but the maps given win: the same image as with a's maps
    b = tmp_path / "b.h5"
    np.save(tmp_path / "maps.npy", first.coil_maps[0])
    for i, src in enumerate((str(a), str(tmp_path / "maps.npy"))):
        out = tmp_path / f"b{i}.h5"
        assert main(["recon", raw, "-p", "cg-sense", "-o", str(out), "-q", "--no-preview",
                     "--set", "coils.method=walsh", "--coil-maps", src]) == 0
        rec = load_reconstruction(out)
        assert rec.attrs["coil_method"] == "given"
        np.testing.assert_allclose(rec.image, first.image, atol=1e-5 * np.abs(first.image).max())
    walsh = tmp_path / "w.h5"
    assert main(["recon", raw, "-p", "cg-sense", "-o", str(walsh), "-q", "--no-preview", "--set", "coils.method=walsh"]) == 0
    assert not np.allclose(load_reconstruction(walsh).coil_maps, first.coil_maps)
    # compare takes them too (the digest in its files is that of the given maps)
    out = tmp_path / "cmp"
    assert main(["compare", raw, "-p", "cg-sense", "-o", str(out), "-q", "--coil-maps", str(a),
                 "--set", "coils.method=walsh"]) == 0
    rec = load_reconstruction(out / "cg-sense.h5")
    np.testing.assert_allclose(rec.image, first.image, atol=1e-5 * np.abs(first.image).max())
    # --coil-maps names a file that is an input: never an output
    assert main(["recon", raw, "-p", "cg-sense", "-o", str(a), "-q", "--coil-maps", str(a), "--overwrite"]) == 2
    assert "is the input file" in capsys.readouterr().err
    del b


def test_reconstruct_at_the_top_level_without_a_heavy_import():
    import subprocess
    import sys

    code = ("import sys, mridip; assert 'mridip.recon.pipeline' not in sys.modules; "
            "from mridip.recon.pipeline import reconstruct; assert mridip.reconstruct is reconstruct; "
            "assert 'reconstruct' in mridip.__all__")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_an_interrupted_compare_names_its_checkpoint_and_refuses_a_fresh_rerun(cartesian_file, tmp_path,
                                                                               monkeypatch, capsys):
    raw, _ = cartesian_file
    g = "tddip-cartesian-cine"
    out = tmp_path / "cmp"
    argv = ["compare", raw, "-p", "cg-sense", "-p", g, "-o", str(out), "-q", "--set", f"{g}:fit.iterations=20",
            "--set", f"{g}:model.channels=8", "--set", f"{g}:fit.val_every=5", "--set", f"{g}:fit.checkpoint_every=5"]
    restore = _interrupt_adam_at(monkeypatch, 12)
    assert main(argv) == 130
    restore()
    err = capsys.readouterr().err
    ck = out / f"{g}.h5.ckpt.s0.pt"
    assert ck.exists() and str(ck) in err and "--resume`" in err
    assert main(argv) == 2  # without --resume: refused, the checkpoint kept
    assert "--restart" in capsys.readouterr().err and ck.exists()
    assert main(argv + ["--resume"]) == 0
    assert load_reconstruction(out / f"{g}.h5").attrs["resumed_seconds"] > 0 and not ck.exists()
