"""run.py: `python3 run.py mridip ARGS` works in the caller's folder and passes the exit status on."""

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_py(monkeypatch):
    spec = importlib.util.spec_from_file_location("mridip_run_py", ROOT / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not (mod.BIN / "mridip").exists():
        pytest.skip(f"no environment at {mod.VENV} (python3 run.py creates it)")
    monkeypatch.setattr(mod, "ensure_env", lambda: None)  # the environment is there; no pip here
    return mod


def test_relative_paths_are_the_callers_and_the_status_is_passed_on(run_py, tmp_path, monkeypatch, capfd):
    import numpy as np

    from data_tools.writers import write_ismrmrd_cartesian

    rng = np.random.default_rng(0)
    m = np.zeros((1, 16, 12), dtype=bool)
    m[:, ::2] = True  # (T, Ky, Kx), every other line
    k = ((rng.standard_normal((1, 2, 16, 12)) + 1j * rng.standard_normal((1, 2, 16, 12))) * m[:, None]).astype(np.complex64)
    write_ismrmrd_cartesian(tmp_path / "good.h5", k, m)
    monkeypatch.chdir(tmp_path)
    assert os.getcwd() != str(ROOT)
    assert run_py.main(["mridip", "info", "good.h5"]) == 0
    out = capfd.readouterr().out
    assert "ISMRMRD" in out and "good.h5" in out
    assert run_py.main(["mridip", "info", "missing.h5"]) == 2  # the command's status, not 0
    assert "not found" in capfd.readouterr().err
