"""Seconds per training iteration of CycleGAN at the paper's setting: resnet_9blocks (ngf 64), 70x70 PatchGAN
(ndf 64), 256x256, batch 1, LSGAN + cycle + identity losses, replay buffers, two Adam steps.

Run: ``python benchmarks/train_speed.py`` (on a 2-core CPU a few minutes: 1 warm-up + 2 timed iterations;
on a GPU well under 90 s). One iteration is :meth:`training.cyclegan.CycleGAN.train_step` on images already on
the device (decoding JPEGs is not timed: it runs in worker processes alongside). CUDA is synchronised before the
clock is read, after warm-up iterations that let cuDNN pick its algorithms. Writes
``benchmarks/results/train_speed_<cpu|cuda>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe_machine  # noqa: E402

from training.cyclegan import CycleGAN  # noqa: E402
from training.options import TrainOptions  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def time_iterations(options: TrainOptions, device: torch.device, warmup: int, iterations: int) -> dict:
    """Build the model, run ``warmup`` untimed and ``iterations`` timed steps; return the measurements."""
    torch.manual_seed(0)
    model = CycleGAN(options, device)
    generator = torch.Generator().manual_seed(0)
    size = options.image_size
    real_A, real_B = (model.prepare(torch.rand(1, 3, size, size, generator=generator) * 2 - 1) for _ in range(2))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        model.train_step(real_A, real_B)
    sync()
    seconds = []
    for _ in range(iterations):
        started = time.perf_counter()
        losses = model.train_step(real_A, real_B)
        sync()
        seconds.append(time.perf_counter() - started)
    assert torch.isfinite(losses).all(), "training diverged while timing"
    result = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "precision": str(model.amp_dtype).removeprefix("torch.") if model.amp_dtype else "float32",
        "memory_format": "channels_last" if model.memory_format == torch.channels_last else "contiguous",
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "warmup": warmup,
        "iterations": iterations,
        "s_per_it_median": statistics.median(seconds),
        "s_per_it_mean": statistics.fmean(seconds),
        "s_per_it_min": min(seconds),
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else None,
    }
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-iterations", type=int, default=2, help="timed CPU iterations (0 skips the CPU)")
    parser.add_argument("--cpu-warmup", type=int, default=1)
    parser.add_argument("--cuda-iterations", type=int, default=30)
    parser.add_argument("--cuda-warmup", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    base = TrainOptions.from_overrides(arch="resnet_9blocks", image_size=args.image_size, seed=0)
    runs = []
    if torch.cuda.is_available():
        cuda = torch.device("cuda")
        for amp, channels_last in ((False, False), (True, False), (True, True)):
            options = base.replace(amp=amp, channels_last=channels_last)
            runs.append(time_iterations(options, cuda, args.cuda_warmup, args.cuda_iterations))
    if args.cpu_iterations > 0:
        runs.append(time_iterations(base, torch.device("cpu"), args.cpu_warmup, args.cpu_iterations))

    kind = "cuda" if torch.cuda.is_available() else "cpu"
    report = {
        "environment": describe_machine(),
        "setup": f"resnet_9blocks ngf 64 + 70x70 PatchGAN ndf 64, {args.image_size}x{args.image_size}, batch 1, "
                 "one CycleGAN iteration (both generators and both discriminators, forward, backward, Adam)",
        "results": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"train_speed_{kind}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print("| device | precision | memory format | s/it (median) | it/s | timed iterations | peak GPU MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        device = r["device"] + (f" ({r['threads']} threads)" if r["threads"] else "")
        print(f"| {device} | {r['precision']} | {r['memory_format']} | {r['s_per_it_median']:.3f} | "
              f"{1 / r['s_per_it_median']:.2f} | {r['iterations']} | {r['peak_gpu_mib'] or '-'} |")
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
