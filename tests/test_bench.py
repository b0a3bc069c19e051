"""``mridip bench`` at tiny sizes: every record is produced, with sane values (never timed)."""

import json
import math

import pytest
import torch

from mridip.bench import _fit_case, _gip_case, competitors, contended_rows, time_call
from mridip.cli import main as cli_main


def test_time_call_reports_the_median():
    calls = []
    sec = time_call(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5  # warm-up runs are made but not timed
    assert sec >= 0.0 and time_call.last_cpu_seconds >= 0.0  # no speed bound: timing is not a test


def test_fit_and_gip_cases_time_every_step():
    cpu = torch.device("cpu")
    fit = _fit_case(cpu, repeats=1, size=16, frames=3, coils=2, spokes=4, samples=32, channels=8)
    names = [r["name"] for r in fit]
    assert names == ["dc_grad_normal", "dc_grad_forward", "tddip_step_normal", "tddip_step_forward",
                     "dc_forward_over_normal"]
    assert all(r["seconds"] > 0 for r in fit[:4]) and math.isfinite(fit[-1]["ratio"])
    gip = _gip_case(cpu, repeats=1, size=16, frames=3, coils=2, acceleration=2)
    assert [r["name"] for r in gip] == ["gip_step_stage1", "gip_step_stage2", "gip_step_stage3"]
    assert all(r["seconds"] > 0 and r["case"] == "16x16x3 C2" for r in gip)


def test_cli_bench_tiny_json(capsys):
    from mridip.operators import available_backends

    assert cli_main(["bench", "--tiny", "--json", "--repeats", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"] == "cpu" and out["wall_seconds"] > 0 and "mode" in out["thread_policy"]
    recs = out["records"]
    names = {r["name"] for r in recs}
    assert {"radial_forward", "radial_adjoint", "radial_forward_adjoint", "radial_normal", "radial_setup",
            "radial_fa_over_normal", "cartesian_normal", "dc_grad_normal", "dc_grad_forward",
            "tddip_frame_step", "radial_maps_cg_sense"} <= names
    # every available NUFFT backend has its rows, against the Toeplitz normal
    backends = available_backends("cpu")
    for b in backends:
        mine = {r["name"]: r for r in recs if r.get("backend") == b}
        assert all(mine[n]["seconds"] > 0 for n in ("radial_forward", "radial_adjoint", "radial_normal"))
        assert mine["radial_fa_over_normal"]["ratio"] > 0
    # backends agree to the coarser one's accuracy (torchkbnufft ~1e-3)
    agree = [r["rel_diff_forward"] for r in recs if r["name"] == "radial_backend_agreement"]
    assert len(agree) == len(backends) and max(agree) < 1e-2
    setup = [r for r in recs if r["name"] == "radial_maps_cg_sense" and "note" not in r]
    assert setup and all(r["total_seconds"] > 0 and 0 <= r["nrmse"] < 1 for r in setup)
    step = next(r for r in recs if r["name"] == "tddip_frame_step")
    assert step["seconds"] > 0 and step["case"] == "16x16x3 C2 ch8"


def test_competitors_are_killed():
    with competitors(1, limit_s=30) as procs:
        assert all(p.poll() is None for p in procs)  # running
    assert all(p.poll() is not None for p in procs)


@pytest.mark.slow
def test_contended_rows_tiny():
    rows = contended_rows(tiny=True, competitors_n=1, timeout_s=120)
    assert [(r["op"], r["policy"]) for r in rows] == [
        ("tddip_frame_step", "policy"), ("radial_normal", "policy"),
        ("tddip_frame_step", "off"), ("radial_normal", "off")]
    for r in rows:
        assert r["alone_seconds"] > 0 and r["contended_seconds"] > 0 and r["ratio"] > 0
        assert r["runs"][0] >= 3 and r["runs"][1] >= 3
    assert rows[2]["thread_policy"]["mode"] == "off"
