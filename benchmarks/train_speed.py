"""Seconds per training iteration of CycleGAN at the paper's setting: resnet_9blocks (ngf 64), 70x70 PatchGAN
(ndf 64), 256x256, batch 1, LSGAN + cycle + identity losses, replay buffers, two Adam steps.

Run: ``python benchmarks/train_speed.py`` (on a 2-core CPU a few minutes: 1 warm-up + 2 timed iterations;
on a GPU well under 90 s). One iteration is :meth:`training.cyclegan.CycleGAN.train_step` on images already on
the device (decoding JPEGs is not timed: it runs in worker processes alongside). CUDA is synchronised before the
clock is read, after warm-up iterations that let cuDNN pick its algorithms. Writes
``benchmarks/results/train_speed_<cpu|cuda>.json`` and prints a Markdown table.

Distributed mode, ``python benchmarks/train_speed.py --distributed``: the same iteration as cg-train runs it under
torchrun (``python -m torch.distributed.run --standalone``), gradients averaged over the processes, at a smaller
setting that a CPU gets through in minutes (``--dist-*`` options; default resnet_9blocks ngf 32, ndf 32,
128x128, batch 1 per process). On the CPU (Gloo) it times 1 process with 1 thread, 1 process with 2 threads and
2 processes with 1 thread each (the last two use the same cores); with CUDA, 1 process on 1 GPU and, where there
are two GPUs, 2 processes with NCCL. Steps/s and images/s (processes x batch per step) from rank 0's clock, which
every all-reduce keeps in step with the others. The configurations are run in turn, ``--dist-rounds`` times
over (a shared machine's load drifts; interleaving exposes every configuration to the same drift), and each is
summarised by the median over rounds. Writes ``benchmarks/results/train_speed_distributed_<cpu|cuda>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe_machine  # noqa: E402

from training.cyclegan import CycleGAN  # noqa: E402
from training.distributed import Processes, make_data_parallel  # noqa: E402
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


def distributed_worker(args: argparse.Namespace) -> None:
    """One torchrun process: time ``args.dist_iterations`` data-parallel steps; rank 0 writes ``args.worker``."""
    processes = Processes.from_environment()
    processes.start()
    cuda = torch.cuda.is_available() and not args.dist_cpu
    device = processes.device_for(torch.device("cuda")) if cuda else torch.device("cpu")
    if not cuda:
        torch.set_num_threads(args.threads or 1)
    options = TrainOptions.from_overrides(arch="resnet_9blocks", ngf=args.dist_ngf, ndf=args.dist_ndf,
                                          image_size=args.dist_image_size, batch_size=args.dist_batch, seed=0)
    torch.manual_seed(0)
    model = CycleGAN(options, device)
    make_data_parallel(model, processes)
    generator = torch.Generator().manual_seed(processes.rank)
    size, batch = options.image_size, options.batch_size
    real_A, real_B = (model.prepare(torch.rand(batch, 3, size, size, generator=generator) * 2 - 1) for _ in range(2))
    share = 1 / processes.world_size
    if cuda:
        torch.backends.cudnn.benchmark = True

    def step() -> torch.Tensor:
        # What cg-train's step does: the model's step (gradients averaged inside) and the losses averaged.
        return processes.weighted_sum(model.train_step(real_A, real_B), share)

    for _ in range(args.dist_warmup):
        step()
    seconds = []
    for _ in range(args.dist_iterations):
        started = time.perf_counter()
        losses = step()
        if cuda:
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
    assert torch.isfinite(losses).all(), "training diverged while timing"
    if processes.is_main:
        median = statistics.median(seconds)
        backend = torch.distributed.get_backend() if processes.distributed else None
        Path(args.worker).write_text(json.dumps({
            "processes": processes.world_size,
            "device": torch.cuda.get_device_name(device) if cuda else "cpu",
            "backend": backend,
            "threads_per_process": None if cuda else torch.get_num_threads(),
            "batch_per_process": batch,
            "warmup": args.dist_warmup,
            "iterations": args.dist_iterations,
            "s_per_step_median": median,
            "s_per_step_min": min(seconds),
            "steps_per_s": 1 / median,
            "images_per_s": processes.world_size * batch / median,
        }))
    processes.stop()


def distributed(args: argparse.Namespace) -> None:
    """Run :func:`distributed_worker` under torchrun for each configuration and record the results."""
    cuda = torch.cuda.is_available() and not args.dist_cpu
    if cuda:
        configs = [(1, None)] + ([(2, None)] if torch.cuda.device_count() >= 2 else [])
    else:
        configs = [(1, 1), (1, 2), (2, 1)]
    forwarded = [f"--dist-{name}={getattr(args, 'dist_' + name.replace('-', '_'))}"
                 for name in ("image-size", "ngf", "ndf", "batch", "iterations", "warmup")]
    rounds: list[list[dict]] = [[] for _ in configs]
    for round_index in range(args.dist_rounds):
        for config_index, (nproc, threads) in enumerate(configs):
            with tempfile.TemporaryDirectory() as folder:
                result = Path(folder) / "result.json"
                command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                           str(nproc), __file__, "--worker", str(result), *forwarded,
                           *(["--dist-cpu"] if args.dist_cpu else [])]
                if threads:
                    command += ["--threads", str(threads)]
                env = {**os.environ, "OMP_NUM_THREADS": str(threads or 1)}
                load_before = os.getloadavg()[0]
                subprocess.run(command, check=True, env=env)
                run = json.loads(result.read_text())
            run["load_average_1min_before"] = round(load_before, 2)
            rounds[config_index].append(run)
            print(f"round {round_index + 1}: {nproc} process(es) x {threads or 'GPU'}: "
                  f"{run['s_per_step_median']:.3f} s/step, {run['images_per_s']:.3f} images/s", flush=True)
    runs = []
    for per_round in rounds:
        median = statistics.median(r["s_per_step_median"] for r in per_round)
        first = per_round[0]
        runs.append({**{k: first[k] for k in ("processes", "device", "backend", "threads_per_process",
                                                "batch_per_process", "warmup", "iterations")},
                     "rounds": len(per_round),
                     "s_per_step_median": median,
                     "steps_per_s": 1 / median,
                     "images_per_s": first["processes"] * first["batch_per_process"] / median,
                     "per_round": [{k: r[k] for k in ("s_per_step_median", "s_per_step_min",
                                                       "load_average_1min_before")} for r in per_round]})

    kind = "cuda" if cuda else "cpu"
    report = {
        "environment": describe_machine(),
        "setup": f"resnet_9blocks ngf {args.dist_ngf} + 70x70 PatchGAN ndf {args.dist_ndf}, "
                 f"{args.dist_image_size}x{args.dist_image_size}, batch {args.dist_batch} per process; one CycleGAN "
                 "iteration as cg-train runs it under torchrun --standalone (gradients all-reduced per optimiser "
                 "step, losses averaged); images already in memory",
        "command": "python benchmarks/train_speed.py --distributed" + (" --dist-cpu" if args.dist_cpu else ""),
        "note": None if cuda else "no CUDA GPU here: the NCCL configurations (1 and 2 GPUs) were not run",
        "results": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"train_speed_distributed_{kind}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    base = runs[0]["images_per_s"]
    print("\n| processes | device | backend | threads each | s/step (median) | steps/s | images/s | vs 1 process |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['processes']} | {r['device']} | {r['backend'] or '-'} | {r['threads_per_process'] or '-'} | "
              f"{r['s_per_step_median']:.3f} | {r['steps_per_s']:.3f} | {r['images_per_s']:.3f} | "
              f"{r['images_per_s'] / base:.2f}x |")
    print(f"\nwritten {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distributed", action="store_true", help="time 1 and 2 processes under torchrun instead")
    parser.add_argument("--dist-image-size", type=int, default=128)
    parser.add_argument("--dist-ngf", type=int, default=32)
    parser.add_argument("--dist-ndf", type=int, default=32)
    parser.add_argument("--dist-batch", type=int, default=1, help="images per process and step")
    parser.add_argument("--dist-iterations", type=int, default=3)
    parser.add_argument("--dist-rounds", type=int, default=3, help="times every configuration is run, in turn")
    parser.add_argument("--dist-warmup", type=int, default=1)
    parser.add_argument("--dist-cpu", action="store_true", help="distributed mode on the CPU even with CUDA present")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cpu-iterations", type=int, default=2, help="timed CPU iterations (0 skips the CPU)")
    parser.add_argument("--cpu-warmup", type=int, default=1)
    parser.add_argument("--cuda-iterations", type=int, default=30)
    parser.add_argument("--cuda-warmup", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's, one per core)")
    args = parser.parse_args()
    if args.worker:
        distributed_worker(args)
        return
    if args.distributed:
        distributed(args)
        return
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
