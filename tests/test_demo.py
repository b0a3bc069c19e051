"""`mridip demo`, small configuration, end to end (the README's main job).

The test runs the demo's own data, protocols and outputs with shorter budgets (`--set`):
TDDIP 1500 steps instead of 9000, the two tuned baselines at the lambdas their held-out
tuning picks on this file (docs/results.md) instead of tuning over 3 candidates. That keeps
the wiring under test (simulate -> ISMRMRD file -> coil maps -> every protocol -> table,
figures) at a quarter of the demo's 5 minutes; tuning and long fits have their own tests.
"""

import csv
import os

import pytest
import torch

from mridip.cli import main
from mridip.demo import SMALL
from mridip.io import load_reconstruction


@pytest.fixture
def all_cores():
    """The demo as a user runs it: torch's threads on every core (conftest pins tests to one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_demo_small_configuration_end_to_end(tmp_path, capsys, all_cores):
    out = tmp_path / "demo"
    budget = ["temporal-tv:baseline.tune=false", "temporal-tv:baseline.lam=0.001",
              "lplus-s:baseline.tune=false", "lplus-s:baseline.lam=0.0002",
              "tddip-radial-cine:fit.iterations=1500", "tddip-radial-cine:fit.val_every=100",
              "tddip-radial-cine:fit.patience=1500"]
    assert main(["demo", "-o", str(out), "-q", *[a for o in budget for a in ("--set", o)]]) == 0
    printed = capsys.readouterr().out
    assert "| method | protocol | psnr |" in printed
    with open(out / "results.csv") as f:
        rows = {r["protocol"]: r for r in csv.DictReader(f)}
    assert list(rows) == SMALL["protocols"]
    psnr = {k: float(r["psnr"]) for k, r in rows.items()}
    # the --set overrides came after the demo's own (9000 steps, tuned lambdas)
    assert int(rows["tddip-radial-cine"]["iterations"]) <= 1500
    for name in ("temporal-tv", "lplus-s"):
        attrs = load_reconstruction(out / f"{name}.h5").attrs
        assert "tuned_lam" not in attrs, (name, attrs.get("tuned_lam"))
    # methods that use all frames jointly beat frame-by-frame gridding on 13 spokes/frame
    for name in ("temporal-tv", "lplus-s", "tddip-radial-cine"):
        assert psnr[name] > psnr["gridding"] + 2.0, (name, psnr)
    # the generator's oracle diagnostic is reported, and the held-out choice lies on its path
    assert float(rows["tddip-radial-cine"]["oracle_psnr"]) >= psnr["tddip-radial-cine"] - 0.01
    assert rows["temporal-tv"]["oracle_psnr"] == ""
    for name in ("results.md", "frames.png", "xt_profile.png", "errors.png", "tddip-radial-cine.gif",
                 "data/radial_cine.h5", "data/radial_cine_truth.h5"):
        assert (out / name).stat().st_size > 0, name
    assert "iterations" in (out / "results.md").read_text()
