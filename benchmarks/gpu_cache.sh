#!/usr/bin/env bash
# Copy this machine's interp_gan cache (the embedded style/content set and trained style
# classifiers, $INTERP_GAN_CACHE or ~/.cache/interp_gan) into .igcache/ (git-excluded), so that
# gpu_check.sh does not rebuild it on the card: run(..., carry=[".whl", ".igcache"]).
# Builds what is missing first. Only the content set and the demo recipe's four styles travel
# (about 22 MB; all 29 styles are 106 MB, over the 64 MiB carry limit with the wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.igcache/' .git/info/exclude 2>/dev/null || echo '/.igcache/' >> .git/info/exclude
PY=${PY:-.venv/bin/python}
src=$(PYTHONPATH=$PWD $PY -c "from interp_gan.data.embedded import cache_dir; print(cache_dir())")
STYLES=${STYLES:-lite01 lite03 lite06 lite17}
root=$(PYTHONPATH=$PWD $PY -c "import sys; from interp_gan.data.embedded import ensure_embedded; print(ensure_embedded(sys.argv[1:]))" $STYLES)
rm -rf .igcache && mkdir -p ".igcache/$(basename "$root")/style"
cp -r "$root/content" "$root/manifest.json" ".igcache/$(basename "$root")/"
for s in $STYLES; do cp -r "$root/style/$s" ".igcache/$(basename "$root")/style/"; done
[ -d "$src/classifiers" ] && cp -r "$src/classifiers" .igcache/
du -sh .igcache .whl 2>/dev/null
