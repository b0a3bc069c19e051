#!/usr/bin/env bash
# mridip's GPU checks for the lent machine (docs/benchmarks.md, "GPU"). Run from the repository
# root there, with .whl/ from docs/scripts/gpu_wheels.sh carried:
#   bash docs/scripts/gpu_check.sh [PART ...]
# PART: checks (bench --full, both NUFFT backends, + CUDA tests), tddip, gip (TDDIP / GIP on the 128 x 128 Cartesian cine),
# t2map (dip-t2-mapping on the 128 x 128 brain, 8 echoes, R = 4); default all four in that order. The device tool allows 600 s per command, so a short budget
# runs the parts as separate calls while the machine is warm (e.g. `checks tddip`, then `gip`).
# Results go to $OUT (the device tool's folder; ./gpu-out elsewhere). FIT_SECONDS caps the
# fit of each protocol (default 360 s); a protocol cut by it leaves no table, only its log.
set -u -o pipefail
[ $# -gt 0 ] || set -- checks tddip gip t2map
for part in "$@"; do
  case $part in checks|tddip|gip|t2map) ;; *) echo "gpu_check.sh: unknown part '$part'; parts: checks, tddip, gip, t2map" >&2; exit 2 ;; esac
done
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  for t in .whl/*.tar.xz; do  # cufinufft, repacked by gpu_wheels.sh to fit the carry
    [ -f "$t" ] && { tar -C /tmp/site -xJf "$t" || exit 1; }
  done
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
  python3 -c "from mridip.operators import available_backends as a; print('NUFFT backends: cpu', a('cpu'), 'cuda', a('cuda'))"; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

checks() {
  # every NUFFT backend importable here (cufinufft and torchkbnufft on CUDA; finufft, torchkbnufft
  # and sigpy in the CPU set-up case), 8 and 32 coils, all-frame TDDIP and GIP stage steps
  echo "== bench --full (NUFFT backend comparison)"; date
  timeout 300 python3 -m mridip bench --device cuda --full 2>&1 | tee "$OUT/bench_cuda.txt"
  echo "== CUDA tests"; date
  timeout 240 python3 -m pytest -q -p no:cacheprovider -m cuda tests 2>&1 | tee "$OUT/cuda_tests.txt" | tail -15
}

fit() {  # one protocol on the 128 x 128 x 20 Cartesian cine (simulated once per machine)
  local proto=$1
  echo "== $proto, 128 x 128 x 20 Cartesian"; date
  [ -f /tmp/data/cartesian_cine.h5 ] || python3 -m mridip simulate -o /tmp/data --kind cartesian > /dev/null
  timeout "${FIT_SECONDS:-360}" python3 -m mridip compare /tmp/data/cartesian_cine.h5 -p "$proto" -q \
    --reference /tmp/data/cartesian_cine_truth.h5 -o "/tmp/cmp-$proto" --device cuda ${FIT_SET:-} \
    > "$OUT/compare_$proto.txt" 2>&1
  echo "$proto: exit $?"; date
  cp "/tmp/cmp-$proto/results.md" "$OUT/results_$proto.md" 2>/dev/null && cat "$OUT/results_$proto.md"
  tail -c 2000 "$OUT/compare_$proto.txt"
}

t2map() {  # T2 mapping on the brain phantom of docs/results.md, "T2 mapping"
  echo "== dip-t2-mapping, 128 x 128, 8 echoes"; date
  [ -f /tmp/t2/t2_mapping.h5 ] || python3 -m mridip simulate -o /tmp/t2 --kind t2map --coils 8 --acceleration 4 > /dev/null
  timeout "${FIT_SECONDS:-360}" python3 -m mridip compare /tmp/t2/t2_mapping.h5 -p dip-t2-mapping -q \
    --reference /tmp/t2/t2_mapping_truth.h5 --region brain -o /tmp/cmp-t2 --device cuda ${FIT_SET:-} \
    > "$OUT/compare_t2map.txt" 2>&1
  echo "t2map: exit $?"; date
  cp /tmp/cmp-t2/results.md "$OUT/results_t2map.md" 2>/dev/null && cat "$OUT/results_t2map.md"
  tail -c 2000 "$OUT/compare_t2map.txt"
}

for part in "$@"; do
  case $part in
    checks) checks ;;
    t2map) t2map ;;
    tddip) fit tddip-cartesian-cine ;;
    gip) fit gip-cartesian-cine ;;
  esac
done
