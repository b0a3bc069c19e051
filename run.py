#!/usr/bin/env python3
"""Set up a local environment and run mridip's main job or its tests.

    python3 run.py demo      # simulate a cine phantom, reconstruct, compare, report
    python3 run.py test      # the full test suite (what CI runs)
    python3 run.py mridip ARGS...   # any mridip command inside the environment

``demo`` and ``mridip`` run in the caller's folder (relative paths are the caller's; the
demo writes ./mridip-demo there) and exit with the command's status; ``test`` runs in the
repository.

Needs only Python >= 3.10. The first call creates ``.venv`` beside this file, installs
torch 2.13.0 (the CPU build) when that environment has no torch, then installs mridip
with its test extra. Later calls reuse the environment and skip what is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".mridip-installed"


def sh(*cmd: str | os.PathLike) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.check_call([str(c) for c in cmd], cwd=ROOT)


def has_module(name: str) -> bool:
    return subprocess.call([str(PY), "-c", f"import {name}"], stderr=subprocess.DEVNULL) == 0


def ensure_env() -> None:
    if sys.version_info < (3, 10):
        sys.exit(f"mridip needs Python >= 3.10; this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pyproject = ROOT / "pyproject.toml"
    if STAMP.exists() and STAMP.stat().st_mtime >= pyproject.stat().st_mtime and has_module("mridip"):
        return
    if not has_module("torch"):
        # the pinned version takes the local CPU wheel; an unpinned torch pulls CUDA packages
        sh(PY, "-m", "pip", "install", "--quiet", "torch==2.13.0")
    sh(PY, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[test]")
    STAMP.touch()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "mridip"}:
        print(__doc__)
        return 2
    ensure_env()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # the tests run from the repository; a mridip command runs where the caller is, so that
    # relative paths (inputs, -o) mean what they mean in the caller's folder
    cwd: Path | None = None
    if argv[0] == "test":
        cmd, cwd = [str(PY), "-m", "pytest", "-q", *argv[1:]], ROOT
    elif argv[0] == "demo":
        cmd = [str(BIN / "mridip"), "demo", *argv[1:]]
    else:
        cmd = [str(BIN / "mridip"), *argv[1:]]
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=cwd, env=env)  # its exit status is ours


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
