"""mridip batch on a local Ray (2 CPUs, started once for this module) with tiny real files."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from data_tools.phantom import simulate_to_files
from mridip.errors import MridipError

ray = pytest.importorskip("ray")

from mridip import batch  # noqa: E402
from mridip.cli import main  # noqa: E402
from mridip.io import load_reconstruction, save_reconstruction  # noqa: E402
from mridip.recon.pipeline import gather_slices, reconstruct  # noqa: E402

# tiny TDDIP: a few seconds per fit on one thread, checkpoints every 10 steps
TDDIP = ["tddip-radial-cine:model.channels=4", "tddip-radial-cine:fit.iterations=30",
         "tddip-radial-cine:fit.checkpoint_every=10", "tddip-radial-cine:fit.val_every=10",
         "tddip-radial-cine:fit.min_iterations=10"]
#: attrs that time the run or describe its process (thread policy): not the reconstruction's
TIMING = {"wall_seconds", "resumed_seconds", "seconds_per_iteration", "threads"}


@pytest.fixture(scope="module")
def local_ray():
    if not ray.is_initialized():
        # "local": our own Ray, even where someone's `ray start` cluster runs on this machine
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield ray
    ray.shutdown()


def _radial(tmp, i):
    return simulate_to_files(str(tmp / f"r{i}"), kind="radial", size=16, frames=4, coils=2, seed=i)[0]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Five radial cine files and a truncated one."""
    tmp = tmp_path_factory.mktemp("study")
    files = [_radial(tmp, i) for i in range(5)]
    with open(files[0], "rb") as f:
        data = f.read()
    cut = tmp / "cut.h5"
    cut.write_bytes(data[: len(data) // 3])
    return tmp, files, str(cut)


def _same_attrs(a, b):
    ka, kb = set(a) - TIMING, set(b) - TIMING
    assert ka == kb
    for k in ka:
        assert a[k] == b[k], k


def _logs(outdir, name):
    return [p for p in os.listdir(outdir / "logs") if p.startswith(name + ".")]


# ----------------------------------------------------------------------- no Ray needed
def test_inputs_folders_globs_lists_and_references(study, tmp_path):
    tmp, files, cut = study
    # a folder picks up its raw files, not the truth file beside them
    jobs = batch.expand_inputs([str(tmp / "r0")], ["cg-sense"], reference_glob="{stem}_truth.h5")
    assert [j.input for j in jobs] == [os.path.abspath(files[0])]
    assert jobs[0].reference == os.path.abspath(str(tmp / "r0" / "radial_cine_truth.h5"))
    # a glob, two protocols, the truncated file kept (its task fails later)
    jobs = batch.expand_inputs([str(tmp / "**" / "*.h5")], ["cg-sense", "gridding"])
    assert len(jobs) == 12 and sum(j.input == os.path.abspath(cut) for j in jobs) == 2
    labels = batch.labels_for([j.input for j in jobs])
    assert labels[os.path.abspath(files[1])] == "r1__radial_cine" and labels[os.path.abspath(cut)] == "cut"
    # CSV and TOML lists: relative paths from the list's folder, per-row protocol
    lst = tmp / "list.csv"
    lst.write_text("input,protocol,reference\nr0/radial_cine.h5,gridding,r0/radial_cine_truth.h5\nr1/radial_cine.h5,,\n")
    jobs = batch.expand_inputs([str(lst)], ["cg-sense"])
    assert [(os.path.basename(os.path.dirname(j.input)), j.protocol, j.reference is not None) for j in jobs] == [
        ("r0", "gridding", True), ("r1", "cg-sense", False)]
    toml = tmp / "list.toml"
    toml.write_text('[[input]]\ninput = "r2/radial_cine.h5"\nprotocol = ["gridding", "cg-sense"]\n')
    assert [j.protocol for j in batch.expand_inputs([str(toml)], [])] == ["gridding", "cg-sense"]
    with pytest.raises(MridipError, match="does not exist"):
        batch.expand_inputs([str(tmp / "nope.h5")], ["cg-sense"])
    with pytest.raises(MridipError, match="no protocol"):
        batch.expand_inputs([files[0]], [])


def test_task_key_changes_with_protocol_seed_and_slice():
    k = batch.task_key("abc", "method = 1", 0, 0)
    assert len({k, batch.task_key("abd", "method = 1", 0, 0), batch.task_key("abc", "method = 2", 0, 0),
                batch.task_key("abc", "method = 1", 1, 0), batch.task_key("abc", "method = 1", 0, 1),
                batch.task_key("abc", "method = 1", 0, 0, version="9")}) == 6
    assert batch.task_key("abc", "method = 1", 0, 0) == k


def test_without_ray_the_command_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["batch", str(tmp_path), "-p", "cg-sense", "-o", str(tmp_path / "o")]) == 2
    assert "pip install 'mridip[batch]'" in capsys.readouterr().err


def test_gather_slices_equals_a_multislice_reconstruct(tmp_path):
    """Per-slice reconstructions gathered = reconstruct of all slices (images, attrs, maps)."""
    path = simulate_to_files(str(tmp_path), kind="fastmri", size=16, coils=2, slices=3, acceleration=1)[0]
    over = ["coils.method=walsh", "fit.iterations=3", "model.channels=4"]
    whole = reconstruct(path, "dip-static", overrides=over, progress=False)
    parts = [reconstruct(path, "dip-static", overrides=over, slices=[s], progress=False) for s in range(3)]
    got = gather_slices(parts)
    assert np.array_equal(got.image, whole.image) and np.array_equal(got.reference, whole.reference)
    assert isinstance(got.attrs["data_scale"], list) and len(got.attrs["data_scale"]) == 3
    _same_attrs(got.attrs, whole.attrs)
    assert got.log == whole.log == {}


# --------------------------------------------------------------------------- on Ray
@pytest.mark.slow
def test_six_files_two_protocols_one_truncated(local_ray, study, tmp_path, capsys):
    tmp, files, cut = study
    out = tmp_path / "out"
    argv = ["batch", *files, cut, "-p", "cg-sense", "-p", "tddip-radial-cine", "-o", str(out), "-q",
            "--reference-glob", "{stem}_truth.h5", "--figures", "1"]
    for s in TDDIP:
        argv += ["--set", s]
    assert main(argv) == 1  # a task failed
    printed = capsys.readouterr().out
    rows = list(json.loads((out / "manifest.json").read_text())["tasks"].values())
    assert sum(r["status"] == "done" for r in rows) == 10
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 2 and all("cut.h5" in r["error"] and "truncated" in r["error"] for r in failed)
    assert "FAILED" in printed and "truncated" in printed
    table = (out / "results.md").read_text()
    assert "± " in table and "truncated" in table
    csv_text = (out / "results.csv").read_text().splitlines()
    assert csv_text[0].startswith("input,label,slice,protocol,status,seconds,iterations,stop_reason,device,psnr")
    assert len(csv_text) == 13
    assert (out / "figures" / "r0__radial_cine" / "frames.png").exists()
    # baseline outputs are bit-identical to mridip recon (reconstruct + save) of the same file
    for f in files[:2]:
        label = os.path.basename(os.path.dirname(f)) + "__radial_cine"
        got = load_reconstruction(out / "cg-sense" / f"{label}.h5")
        ref_path = tmp_path / f"{label}.h5"
        save_reconstruction(ref_path, reconstruct(f, "cg-sense", progress=False))
        want = load_reconstruction(ref_path)
        assert np.array_equal(got.image, want.image)
        _same_attrs(got.attrs, want.attrs)
    # the generator within float32 round-off of an in-process fit
    over = [s.split(":", 1)[1] for s in TDDIP]
    want = reconstruct(files[0], "tddip-radial-cine", overrides=over, progress=False)
    got = load_reconstruction(out / "tddip-radial-cine" / "r0__radial_cine.h5")
    err = np.linalg.norm(got.image - want.image) / np.linalg.norm(want.image)
    assert err < 1e-4, err
    assert got.attrs["iterations"] == want.attrs["iterations"]


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_the_fit_resumes(local_ray, study, tmp_path, monkeypatch):
    tmp, files, _ = study
    monkeypatch.setenv(batch.KILL_SWITCH, "all")
    out = tmp_path / "out"
    rows = batch.run([files[1]], ["cg-sense", "tddip-radial-cine"], out, overrides=TDDIP, retries=2,
                     progress=False, echo=False, figures=0)
    assert [r["status"] for r in rows] == ["done", "done"]
    assert [r["attempts"] for r in rows] == [2, 2]
    for name in ("radial_cine.cg-sense.s0", "radial_cine.tddip-radial-cine.s0"):  # one input: its stem
        (log,) = _logs(out, name)
        text = (out / "logs" / log).read_text()
        assert "attempt 1" in text and "killing this worker" in text and "attempt 2" in text and "done:" in text
    tddip_log = (out / "logs" / _logs(out, "radial_cine.tddip-radial-cine.s0")[0]).read_text()
    assert "resuming from checkpoint" in tddip_log and "at iteration 10" in tddip_log
    # the resumed fit ends where an uninterrupted one does
    over = [s.split(":", 1)[1] for s in TDDIP]
    want = reconstruct(files[1], "tddip-radial-cine", overrides=over, progress=False)
    got = load_reconstruction(out / "tddip-radial-cine" / "radial_cine.h5")
    assert np.linalg.norm(got.image - want.image) / np.linalg.norm(want.image) < 1e-4
    assert not os.listdir(out / "work")  # checkpoints and slice files cleaned up


@pytest.mark.slow
def test_resume_runs_only_unfinished_tasks_and_a_changed_set_runs_all(local_ray, study, tmp_path):
    tmp, files, cut = study
    out = tmp_path / "out"
    inputs = [*files[:3], cut]
    rows = batch.run(inputs, ["cg-sense"], out, progress=False, echo=False, figures=0)
    assert [r["status"] for r in rows] == ["done"] * 3 + ["failed"]
    with pytest.raises(MridipError, match="--resume"):
        batch.run(inputs, ["cg-sense"], out, progress=False, echo=False)
    # an interrupted run leaves tasks "running" (and their outputs unwritten)
    doc = json.loads((out / "manifest.json").read_text())
    for r in doc["tasks"].values():
        if r["label"] in ("r1__radial_cine", "r2__radial_cine"):
            r["status"] = "running"
            os.remove(r["output"])
    (out / "manifest.json").write_text(json.dumps(doc))
    rows = batch.run(inputs, ["cg-sense"], out, resume=True, progress=False, echo=False, figures=0)
    assert [r["status"] for r in rows] == ["done"] * 3 + ["failed"]

    def runs(label):
        (log,) = [p for p in _logs(out, f"{label}.cg-sense.s0")]
        return (out / "logs" / log).read_text().count("=== ")

    assert [runs(f"r{i}__radial_cine") for i in range(3)] == [1, 2, 2]
    assert (out / "cg-sense" / "r1__radial_cine.h5").exists()
    # --retry-failed tries the truncated file again (and it fails again); a changed --set is new work
    rows = batch.run(inputs, ["cg-sense"], out, retry_failed=True, progress=False, echo=False, figures=0,
                     overrides=["baseline.iterations=4"])
    assert [r["status"] for r in rows] == ["done"] * 3 + ["failed"]
    assert all(len(_logs(out, f"r{i}__radial_cine.cg-sense.s0")) == 2 for i in range(3))
    assert load_reconstruction(out / "cg-sense" / "r0__radial_cine.h5").attrs["iterations"] <= 4


@pytest.mark.slow
def test_multislice_fan_out_and_gather_equal_recon_of_the_file(local_ray, tmp_path):
    path = simulate_to_files(str(tmp_path / "f"), kind="fastmri", size=16, coils=2, slices=3, acceleration=1)[0]
    out = tmp_path / "out"
    rows = batch.run([path], ["cg-sense"], out, overrides=["coils.method=walsh"], progress=False, echo=False,
                     figures=1)
    assert [(r["slice"], r["status"]) for r in rows] == [(0, "done"), (1, "done"), (2, "done")]
    assert all(np.isfinite(r["psnr"]) for r in rows)  # against the file's own reconstruction_rss
    got = load_reconstruction(out / "cg-sense" / "fastmri_multislice.h5")
    save_reconstruction(tmp_path / "want.h5", reconstruct(path, "cg-sense", overrides=["coils.method=walsh"],
                                                          progress=False))
    want = load_reconstruction(tmp_path / "want.h5")
    assert got.image.shape == (3, 1, 16, 16)
    assert np.array_equal(got.image, want.image) and np.array_equal(got.reference, want.reference)
    _same_attrs(got.attrs, want.attrs)


@pytest.mark.cuda
def test_a_gpu_task_reconstructs_on_the_gpu_ray_gave_it(local_ray, study, tmp_path):
    if not ray.cluster_resources().get("GPU"):
        pytest.skip("the test Ray has no GPU")
    tmp, files, _ = study
    rows = batch.run([files[0]], ["cg-sense"], tmp_path / "out", gpus_per_task=0.5, progress=False, echo=False,
                     figures=0)
    assert rows[0]["status"] == "done" and rows[0]["device"].startswith("cuda"), rows[0]
    (log,) = _logs(tmp_path / "out", "radial_cine.cg-sense.s0")
    assert "CUDA_VISIBLE_DEVICES='" in (tmp_path / "out" / "logs" / log).read_text()
