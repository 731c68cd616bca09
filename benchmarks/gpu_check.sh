#!/usr/bin/env bash
# The CUDA path and every GPU ratio in one short call of the device tool (issue #17):
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl", ".igcache"], timeout_s=600)
# Before it, here: `bash benchmarks/gpu_wheels.sh` (the wheels the GPU image lacks, into .whl/) and
# optionally `bash benchmarks/gpu_cache.sh` (the embedded data, into .igcache/, so the card does not
# spend a minute building it). Rehearse on a CPU first: `python benchmarks/suite.py --rehearse`.
# What comes back ($OUT, at most 8 files): gpu.txt, results.json, results.md, logs.tar.gz.
# Then, here: `python benchmarks/suite.py --record-from <files_at>/results.json` adds the dated table
# to benchmarks/RESULTS.md.
set -uo pipefail
OUT="${OUT:-/tmp/gpu_check}"; mkdir -p "$OUT"
T0=$SECONDS
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
if [ -d .igcache ]; then cp -r .igcache /tmp/igcache; fi
export INTERP_GAN_CACHE=/tmp/igcache
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
} 2>&1 | tee "$OUT/gpu.txt"
# Every ratio in one run (benchmarks/suite.py: steps in order of importance, each under its own limit, none
# past the deadline). Its pipeline steps are the CUDA path end to end: the demo recipe trained on the card
# (bf16 autocast, channels_last), then the thorough pipeline on it; a random 9-block CycleGAN at 256 px.
python3 benchmarks/suite.py --device cuda --out /tmp/suite --deadline-s $(( ${BUDGET_S:-560} - (SECONDS - T0) ))
cp /tmp/suite/results.json /tmp/suite/results.md "$OUT/" 2>/dev/null
tar -czf "$OUT/logs.tar.gz" -C /tmp/suite --exclude='*.safetensors' --exclude='*.pt' --exclude='demo_run' . 2>/dev/null
echo "gpu_check: $((SECONDS - T0)) s"
