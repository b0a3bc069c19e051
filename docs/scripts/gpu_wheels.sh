#!/usr/bin/env bash
# Fetch, on a machine with package-registry access, the wheels of mridip's dependencies that
# the lent GPU machine's image lacks (it has torch, numpy, scipy, h5py, numba, matplotlib, tqdm,
# typing-extensions; not sigpy, PyWavelets, torchkbnufft, ismrmrd, xsdata). They land in .whl/
# (git-ignored), which a device call carries; docs/scripts/gpu_check.sh installs them there.
# Versions: those this project is tested with (python3 run.py's environment).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
for spec in sigpy==0.1.27 PyWavelets==1.9.0 torchkbnufft==1.5.2 ismrmrd==1.15.0 xsdata==26.10; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "$spec"
done
ls -l .whl
