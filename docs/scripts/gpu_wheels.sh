#!/usr/bin/env bash
# Fetch, on a machine with package-registry access, the wheels of mridip's dependencies that
# the lent GPU machine's image lacks (it has torch, numpy, scipy, h5py, numba, matplotlib, tqdm,
# typing-extensions; not sigpy, PyWavelets, torchkbnufft, ismrmrd, xsdata). They land in .whl/
# (git-ignored), which a device call carries; docs/scripts/gpu_check.sh installs them there.
# Versions: those this project is tested with (python3 run.py's environment).
# NUFFT backends: finufft (CPU) and cufinufft (CUDA), so that one lent GPU compares both backends
# (docs/scripts/gpu_check.sh, part "checks": mridip bench --device cuda --full). The cufinufft wheel
# (114 MB: kernels for every GPU architecture) is over the device tool's 64 MiB carry, so it is
# repacked as .whl/cufinufft-VERSION.tar.xz (unpacked package + dist-info), which gpu_check.sh
# unpacks into its site folder; CUFINUFFT=0 leaves it out.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
fetch() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$2" "$1"
}
for spec in sigpy==0.1.27 PyWavelets==1.9.0 torchkbnufft==1.5.2 ismrmrd==1.15.0 xsdata==26.10 finufft==2.5.1; do
  fetch "$spec" .whl
done
CUF_VERSION=2.5.1
if [ "${CUFINUFFT:-1}" != 0 ] && [ ! -f ".whl/cufinufft-$CUF_VERSION.tar.xz" ]; then
  tmp=$(mktemp -d)
  fetch "cufinufft==$CUF_VERSION" "$tmp"
  mkdir "$tmp/pkg"
  python3 -m zipfile -e "$tmp"/cufinufft-*.whl "$tmp/pkg"
  # xz -9 in one block: a few minutes on 2 cores; the archive must leave room in the 64 MiB carry
  tar -C "$tmp/pkg" -cf - . | xz -9 -T1 > ".whl/cufinufft-$CUF_VERSION.tar.xz"
  rm -rf "$tmp"
fi
ls -l .whl
du -sh .whl  # carried whole: keep it under ~60 MiB (the device tool carries 64 MiB in all)
