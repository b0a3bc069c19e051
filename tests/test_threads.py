"""mridip/threads.py: the thread policy decides from the environment and leaves the user's settings.

What the policy does at ``import mridip`` depends on the process environment before torch
starts, so those cases run ``import mridip`` in a fresh interpreter.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mridip.threads import _busy_ticks, _free_threads, _self_ticks, allowed_cpus, decide

ROOT = str(Path(__file__).resolve().parents[1])
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MRIDIP_THREADS")


def _run(code: str, **env_set: str) -> dict:
    """Run ``code`` (which prints one JSON line last) in a fresh Python with a clean thread environment."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(env_set)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


REPORT = (
    "import json, os, torch, mridip\n"
    "from mridip.threads import apply_thread_policy, refresh_threads, thread_policy\n"
    "p = thread_policy()\n"
    "n = torch.get_num_threads()\n"
    "print(json.dumps({'policy': p, 'torch_threads': n, 'refreshed': refresh_threads(0.05),\n"
    "                  'again': apply_thread_policy()['mode'],\n"
    "                  'env': {k: os.environ.get(k) for k in %r}}))\n" % (THREAD_VARS,)
)


def test_free_threads_from_the_load_of_other_processes():
    assert _free_threads(2, 0.0) == 2
    assert _free_threads(2, 0.3) == 2  # an occasional short job keeps both
    assert _free_threads(2, 1.0) == 1  # one busy process: one thread
    assert _free_threads(2, 7.5) == 1  # never fewer than one
    assert _free_threads(16, 4.0) == 12


def test_decide_respects_the_users_settings():
    cpus = [0, 1]
    assert decide({}, cpus, 0.1)["mode"] == "adaptive" and decide({}, cpus, 0.1)["threads"] == 2
    assert decide({}, cpus, 1.2)["threads"] == 1
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        rec = decide({var: "1"}, cpus, 0.0)
        assert rec["mode"] == "user" and rec["threads"] is None and rec["user_env"] == {var: "1"}
    rec = decide({"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1000"}, cpus, 0.0)
    assert rec["mode"] == "adaptive" and rec["env_set"] == {}  # wait variables are never written
    assert "OMP_WAIT_POLICY=PASSIVE" in " ".join(rec["reasons"])
    assert decide({"MRIDIP_THREADS": "off"}, cpus, 0.0)["mode"] == "off"
    assert decide({"MRIDIP_THREADS": "OFF", "OMP_NUM_THREADS": "2"}, cpus, 0.0)["mode"] == "off"
    rec = decide({"MRIDIP_THREADS": "3"}, cpus, 5.0)
    assert rec["mode"] == "fixed" and rec["threads"] == 3
    assert decide({"MRIDIP_THREADS": "many"}, cpus, 0.0)["mode"] == "off"  # and says why
    assert decide({"MRIDIP_THREADS": "auto"}, cpus, 0.0)["mode"] == "adaptive"
    # torch.set_num_threads called before import mridip: kept
    assert decide({}, cpus, 0.0, torch_threads=1)["mode"] == "user"
    assert decide({}, cpus, 0.0, torch_threads=2)["mode"] == "adaptive"
    assert decide({}, cpus, None)["threads"] == 2  # load unknown: all allowed cores


def test_proc_counters_are_read():
    assert isinstance(_busy_ticks(allowed_cpus()), int) and isinstance(_self_ticks(), int)


def test_import_applies_the_policy_and_records_it():
    out = _run(REPORT)
    p = out["policy"]
    assert p["mode"] == "adaptive" and p["governor"]["active"]
    assert out["torch_threads"] == p["threads"] == p["torch_threads"] >= 1
    assert p["cores"] == len(allowed_cpus()) and p["reasons"]
    # the wait policy is left at libgomp's default (measured: PASSIVE costs ~2x on an idle
    # machine, docs/benchmarks.md); the environment is not written
    assert out["env"]["OMP_WAIT_POLICY"] is None and out["env"]["GOMP_SPINCOUNT"] is None
    assert p["wait_policy"] == "libgomp default" and p["env_set"] == {}
    assert 1 <= out["refreshed"] <= len(allowed_cpus()) and out["again"] == "adaptive"  # applied once


def test_import_leaves_user_env_vars():
    out = _run(REPORT, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", GOMP_SPINCOUNT="5000")
    p = out["policy"]
    assert p["mode"] == "user" and p["governor"] is None and out["torch_threads"] == 1
    assert out["env"]["OMP_WAIT_POLICY"] == "PASSIVE" and out["env"]["GOMP_SPINCOUNT"] == "5000"
    assert p["wait_policy"] == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "5000"}


def test_opt_out_and_fixed_count():
    off = _run(REPORT, MRIDIP_THREADS="off")
    assert off["policy"]["mode"] == "off" and off["policy"]["governor"] is None
    fixed = _run(REPORT, MRIDIP_THREADS="1")
    assert fixed["policy"]["mode"] == "fixed" and fixed["torch_threads"] == 1
    assert fixed["policy"]["governor"] is None


def test_set_num_threads_before_or_after_import_is_kept():
    before = _run("import torch\ntorch.set_num_threads(1)\n" + REPORT)
    assert before["policy"]["mode"] == "user" and before["torch_threads"] == 1
    if len(allowed_cpus()) < 2:
        pytest.skip("needs 2 cores to change the thread count")
    after = _run(
        "import json, torch, mridip, mridip.threads as mt\n"
        "g = mt._GOVERNOR\n"
        "n = 1 if g.threads != 1 else 2\n"
        "torch.set_num_threads(n)\n"
        "g._t -= 5.0\n"  # as if a measurement interval had passed
        "mt.adapt_threads()\n"
        "print(json.dumps({'n': n, 'now': torch.get_num_threads(), 'gov': mt.thread_policy()['governor']}))\n"
    )
    assert after["now"] == after["n"] and not after["gov"]["active"] and "outside" in after["gov"]["stopped"]


@pytest.mark.slow
def test_governor_gives_up_a_thread_beside_a_busy_process():
    if len(allowed_cpus()) < 2:
        pytest.skip("needs 2 cores")
    out = _run(
        "import json, time, torch, mridip, mridip.threads as mt\n"
        "from mridip.bench import competitors\n"
        "g = mt._GOVERNOR\n"
        "with competitors(1):\n"
        "    g._t, g._busy, g._own = time.monotonic(), mt._busy_ticks(g.cpus), mt._self_ticks()\n"
        "    time.sleep(1.5)\n"
        "    mt.adapt_threads()\n"
        "print(json.dumps({'cores': len(g.cpus), 'threads': torch.get_num_threads(),\n"
        "                  'others': g.last_others}))\n"
    )
    # the busy loop alone is a whole core of other processes' use (more if others run too)
    assert out["others"] >= 0.5
    assert out["threads"] <= out["cores"] - 1
