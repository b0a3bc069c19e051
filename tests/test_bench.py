"""``mridip bench`` building blocks at tiny sizes: every record is produced and timed."""

import math

import torch

from mridip.bench import _fit_case, _gip_case, time_call


def test_time_call_reports_the_median():
    calls = []
    sec = time_call(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5  # warm-up runs are made but not timed
    assert sec >= 0.0 and time_call.last_cpu_seconds >= 0.0  # no speed bound: timing is not a test


def test_fit_and_gip_cases_time_every_step():
    cpu = torch.device("cpu")
    fit = _fit_case(cpu, repeats=1, size=16, frames=3, coils=2, spokes=4, samples=32)
    names = [r["name"] for r in fit]
    assert names == ["dc_grad_normal", "dc_grad_forward", "tddip_step_normal", "tddip_step_forward",
                     "dc_forward_over_normal"]
    assert all(r["seconds"] > 0 for r in fit[:4]) and math.isfinite(fit[-1]["ratio"])
    gip = _gip_case(cpu, repeats=1, size=16, frames=3, coils=2, acceleration=2)
    assert [r["name"] for r in gip] == ["gip_step_stage1", "gip_step_stage2", "gip_step_stage3"]
    assert all(r["seconds"] > 0 and r["case"] == "16x16x3 C2" for r in gip)
