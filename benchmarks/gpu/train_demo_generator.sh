#!/usr/bin/env bash
# Train a 9-block CycleGAN generator on the embedded demo dataset on a GPU for a fixed wall-clock budget, and
# return its G_AB.pt in 15 MB pieces (the device tool returns files up to 16 MiB). The trained generator is
# what the int8 and tiling figures are measured on (benchmarks/int8_experiments.md, benchmarks/tiling.md).
# Usage (repository root, on the GPU machine): bash benchmarks/gpu/train_demo_generator.sh OUT_DIR SECONDS
set -u
out=${1:?output folder}; budget=${2:-270}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "from cg_demo.data import make_demo_dataset; make_demo_dataset('/tmp/demo256', size=256, train_per_domain=240, test_per_domain=16)"
timeout "$budget" python3 -m training.cli /tmp/demo256 --name poster -o /tmp/runs --epochs 100 --decay-epoch 50 \
    --size 256 --device cuda --seed 0 > "$out/train.log" 2>&1
echo "trainer exit $? (124 = stopped by the time budget; the last completed epoch was saved)"
tr '\r' '\n' < "$out/train.log" | grep -E "it/s|epoch [0-9]+ +G" | tail -n 6
cp /tmp/runs/poster/losses.jsonl "$out/" 2>/dev/null
ls /tmp/runs/poster/samples | tail -n 1 | xargs -I{} cp /tmp/runs/poster/samples/{} "$out/last_samples.png"
split -b 15000000 -d /tmp/runs/poster/G_AB.pt "$out/G_AB.pt.part"
sha256sum /tmp/runs/poster/G_AB.pt | tee "$out/G_AB.sha256"
