#!/usr/bin/env bash
# Every GPU benchmark of issue #7, then a GPU correctness check (≈ 12 minutes on an H100, most of
# it compiling: 5–18 s per program there).
#
#   OUT=results/gpu bash benchmarks/gpu_all.sh                       # from the repository root
#   STEPS="scan_shared scan_shared_tf32 verify32" bash benchmarks/gpu_all.sh   # only these steps
#
# Each step has its own time limit and writes its JSON after every row (--out), so a step that runs
# out of time keeps its finished rows and the next step still runs. Sizes are the issue's, trimmed
# where a column would cost minutes: Gaussian-data scans (every run draws its own 10000 × 201
# training set, 24 MB per run) stop at 4096 students in chunks of 1024; the KD-tree is skipped for
# 32+32 above n = 10⁴ (the JAX estimator still runs there).
set -u
OUT=${OUT:-benchmarks/runs/gpu-$(date -u +%F)}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
LOG="$OUT/log.txt"

step() { # step SECONDS NAME ARGS...: run one script under a limit, log its output and exit code
    local limit=$1 name=$2
    shift 2
    if [ -n "${STEPS:-}" ] && [[ " $STEPS " != *" $name "* ]]; then return; fi
    echo "== $(date -u +%T) $name (limit ${limit}s): $*" | tee -a "$LOG"
    timeout "$limit" "$PY" "$@" >>"$LOG" 2>&1
    local rc=$?  # 124: the limit was reached (the rows saved so far are in the JSON)
    echo "== $(date -u +%T) $name exit $rc" | tee -a "$LOG"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    "$PY" -c 'import sys, jax, flax, optax, numpy; print(sys.version); print(jax.__version__, flax.__version__, optax.__version__, numpy.__version__); print(jax.devices())'
    nproc
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

step 300 scan_shared benchmarks/scan_throughput.py --data shared \
    --students 1 16 256 1024 4096 16384 --chunk-size 16384 --min-time 0.3 \
    --out "$OUT/scan_shared.json"
step 75 scan_shared_tf32 benchmarks/scan_throughput.py --data shared --students 4096 \
    --chunk-size 16384 --min-time 0.3 --precision default --out "$OUT/scan_shared_tf32.json"
step 80 ksg benchmarks/ksg_speed.py --n 1000 10000 50000 --dims 1 8 32 --tiles 128 1024 \
    --kdtree-max-n-32 10000 --min-time 0.3 --repeats 2 --out "$OUT/ksg.json"
step 150 scan_gaussian benchmarks/scan_throughput.py --data gaussian \
    --students 1 256 1024 4096 --chunk-size 1024 --min-time 0.3 --out "$OUT/scan_gaussian.json"
# (1024 CNN students in one chunk need ~72 GB on the device: beyond the limit, see BENCHMARKS.md)
step 100 mnist benchmarks/mnist_scan.py --students 1 16 64 256 --budget-mb 40000 \
    --min-time 0.3 --out "$OUT/mnist.json"
# correctness on the GPU: trained students against the exact risk (float64, then float32)
step 40 verify -m cch_jax.cli verify --example --lam 0 0.5 2 --seeds 4096
step 30 verify32 -m cch_jax.cli verify --example --lam 0 0.5 2 --seeds 4096 --float32
grep -h "^== " "$LOG" | grep exit
