#!/usr/bin/env bash
# The decision tables of `cg-export deploy` on this machine, committed in benchmarks/results/deploy/:
# the cg-demo generator (from a finished `cg-demo` run) and the 9-block ResNet generator untrained (cg-export init),
# each at 256x256 and 512x512, on the seven real photographs scikit-image ships (4 calibrate int8, 3 held out).
#
#   cg-demo --quick -o /tmp/cg-demo-quick          # or a full `cg-demo` run
#   benchmarks/deploy_figures.sh /tmp/cg-demo-quick [SCRATCH_FOLDER]
#
# One thread per runtime and few timed runs: the build machine is shared (load 8-12 on 2 cores while these ran),
# and multi-threaded pools that spin lose far more than single threads when cores are oversubscribed (PyTorch with
# 2 threads measured 12x slower than ONNX Runtime there, against 1.4x in the quiet cg-demo report).
# Override with TIMING="..." (e.g. TIMING="--duration 3" on a quiet machine).
#
# Each run's deploy.json, report.md and figures are copied to benchmarks/results/deploy/<model>_<size>/ (the model
# files are not: they stay in SCRATCH_FOLDER).
set -euo pipefail
demo=${1:?usage: benchmarks/deploy_figures.sh CG_DEMO_FOLDER [SCRATCH_FOLDER]}
scratch=${2:-/tmp/cg-deploy-figures}
results=benchmarks/results/deploy
timing=${TIMING:---threads 1 --warmup 1 --iterations 5}
mkdir -p "$scratch" "$results"
python - "$scratch/photos" <<'PY'
import sys
from pathlib import Path

from PIL import Image

from cg_export.images import sample_photographs

folder = Path(sys.argv[1])
folder.mkdir(parents=True, exist_ok=True)
for name, image in sample_photographs():
    Image.fromarray(image).save(folder / f"{name}.png")
PY
[ -f "$scratch/resnet_9blocks_untrained.pt" ] || cg-export init resnet_9blocks -o "$scratch/resnet_9blocks_untrained.pt" --seed 0
for model in "cg-demo:$demo/run/G_AB.pt" "resnet_9blocks_untrained:$scratch/resnet_9blocks_untrained.pt"; do
  name=${model%%:*}
  checkpoint=${model#*:}
  for size in 256x256 512x512; do
    out="$scratch/${name}_$size"
    echo "== cg-export deploy $checkpoint --photos $scratch/photos --size $size -o $out"
    cg-export deploy "$checkpoint" --photos "$scratch/photos" --size "$size" -o "$out" $timing
    rm -rf "${results:?}/${name}_$size"
    mkdir -p "$results/${name}_$size"
    cp "$out/deploy.json" "$out/report.md" "$out/report.html" "$out"/*.png "$results/${name}_$size/"
  done
done
