"""The overwrite rule (mridip/io/safety.py) on real files: paths, symlinks, hard links, folders."""

import os

import pytest

from mridip.errors import MridipError
from mridip.io.safety import OverwriteError, planned_outputs, refuse_overwrite, refuse_overwrite_dir, same_file


@pytest.fixture
def raw(tmp_path):
    p = tmp_path / "victim.h5"
    p.write_bytes(b"raw k-space")
    return p


def test_an_input_is_refused_by_path_even_with_overwrite(raw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for target in (raw, "victim.h5", "./sub/../victim.h5", tmp_path / "." / "victim.h5"):
        if "sub" in str(target):
            (tmp_path / "sub").mkdir(exist_ok=True)
        for overwrite in (False, True):
            with pytest.raises(OverwriteError, match="victim.h5.*input") as e:
                refuse_overwrite(target, inputs=[str(raw)], overwrite=overwrite)
            assert "--overwrite does not allow this" in str(e.value)
    assert issubclass(OverwriteError, MridipError)
    assert raw.read_bytes() == b"raw k-space"


def test_an_input_is_refused_by_inode_hard_and_symbolic_links(raw, tmp_path):
    hard = tmp_path / "hard.h5"
    os.link(raw, hard)
    soft = tmp_path / "soft.h5"
    soft.symlink_to(raw)
    assert same_file(hard, raw) and same_file(soft, raw)
    for target in (hard, soft):
        with pytest.raises(OverwriteError, match="input"):
            refuse_overwrite(target, inputs=[raw], overwrite=True)
    # the input given as the link, the output as the file itself
    with pytest.raises(OverwriteError, match="input"):
        refuse_overwrite(raw, inputs=[None, hard], overwrite=True)


def test_an_existing_output_needs_overwrite(raw, tmp_path):
    old = tmp_path / "old.h5"
    old.write_bytes(b"an earlier result")
    with pytest.raises(OverwriteError, match=r"old.h5 exists: give --overwrite"):
        refuse_overwrite(old, inputs=[raw])
    refuse_overwrite(old, inputs=[raw], overwrite=True)  # asked for: fine
    refuse_overwrite(tmp_path / "new.h5", inputs=[raw])  # a new name: fine
    with pytest.raises(OverwriteError, match="is a folder"):
        refuse_overwrite(tmp_path, inputs=[raw], overwrite=True)


def test_a_bart_pair_is_protected_by_either_name(tmp_path):
    base = tmp_path / "ksp"
    (tmp_path / "ksp.cfl").write_bytes(b"\0" * 8)
    (tmp_path / "ksp.hdr").write_text("# Dimensions\n1 1\n")
    for target in ("ksp.hdr", "ksp.cfl"):
        with pytest.raises(OverwriteError, match="input"):
            refuse_overwrite(tmp_path / target, inputs=[base], overwrite=True)


def test_folder_markers(raw, tmp_path):
    out = tmp_path / "cmp"
    refuse_overwrite_dir(out, inputs=[raw])  # missing folder: fine
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    refuse_overwrite_dir(out, inputs=[raw])  # other files are no marker
    (out / "results.md").write_text("old table")
    with pytest.raises(OverwriteError, match=r"results.md.*--overwrite"):
        refuse_overwrite_dir(out, inputs=[raw])
    refuse_overwrite_dir(out, inputs=[raw], overwrite=True)
    # an input where a marker goes: always refused (a reference reconstruction out/cg-sense.h5)
    ref = out / "cg-sense.h5"
    ref.write_bytes(b"reference")
    with pytest.raises(OverwriteError, match="cg-sense.h5 is the input"):
        refuse_overwrite_dir(out, inputs=[raw, ref], overwrite=True, marker_files=["results.md", "cg-sense.h5"])
    with pytest.raises(OverwriteError, match="is a file"):
        refuse_overwrite_dir(raw, inputs=[])


def test_planned_outputs_name_the_provenance_sibling(tmp_path):
    assert [w for _, w in planned_outputs(tmp_path / "a.h5", "h5", provenance=True)] == ["output file"]
    got = planned_outputs(tmp_path / "a.nii.gz", "nifti", provenance=True)
    assert [(p.name, w) for p, w in got] == [("a.nii.gz", "output file"), ("a.h5", "provenance file")]
    got = planned_outputs(tmp_path / "a.h5", "mrd", provenance=True)  # an MRD file named .h5
    assert got[1][0].name == "a.mridip.h5"
