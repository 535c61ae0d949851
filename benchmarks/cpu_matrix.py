"""The standard cg-bench matrix on this machine's CPU: the 9-block generator (ngf 64) in PyTorch fp32 and ONNX Runtime
fp32, fp16 and int8, at 256x256 and 512x512, batch 1.

Run: ``python benchmarks/cpu_matrix.py [--checkpoint G_AB.pt]`` (about 5 minutes on 2 cores). Writes ``benchmarks/results/cpu_matrix.json``
(the cg-bench JSON report, with the machine described by ``benchmarks/machine.py``) and ``cpu_matrix.md`` (the same
table, plus a check that the harness adds no overhead: its p50 next to a bare timing loop around the same session).

The generator is ``--checkpoint`` (the committed results use the GPU-trained demo generator, see
``int8_experiments.md``) or one with CycleGAN's N(0, 0.02) initialisation (seed 0): latency is the same, but int8
quality is only meaningful for trained weights. int8 is calibrated on demo-dataset crops. Parity is against the
PyTorch fp32 checkpoint on real photographs. On a shared machine, compare ratios within one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe_machine  # noqa: E402

from cg_demo.data import make_demo_dataset  # noqa: E402
from cg_export import bench  # noqa: E402
from cg_export.backends.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from cg_export.backends.torch import TorchRunner  # noqa: E402
from cg_export.export.onnx import OnnxExportOptions, export_onnx  # noqa: E402
from cg_export.files import atomic_output, sha256_of  # noqa: E402
from cg_export.models import create_generator, save_generator  # noqa: E402
from cg_export.models.init import init_weights  # noqa: E402

RESULTS = Path(__file__).parent / "results"
# (size, warm-up, timed iterations): a 512x512 run of this generator takes about 3 s on 2 cores.
PLAN = (((256, 256), 2, 8), ((512, 512), 2, 4))


def harness_overhead(runner_factory, batch: np.ndarray, bare_call, pairs: int) -> dict[str, float]:
    """p50 of cg-bench's timing loop and of a bare ``perf_counter`` loop around the same session, interleaved so
    that a change in the machine's load hits both alike."""
    settings = bench.TimingSettings.create(warmup=0, iterations=1)
    harness, bare = [], []
    with runner_factory() as runner:
        call = bare_call(runner)
        runner(batch)
        call(batch)
        for _ in range(pairs):
            harness += bench.time_calls(lambda: runner(batch), settings)
            started = time.perf_counter()
            call(batch)
            bare.append((time.perf_counter() - started) * 1000.0)
    h, b = float(np.median(harness)), float(np.median(bare))
    return {"harness_p50_ms": h, "bare_p50_ms": b, "difference_pct": (h - b) / b * 100}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "cpu_matrix.json", help="JSON report (Markdown beside)")
    parser.add_argument("--ngf", type=int, default=64, help="generator width (smaller for a quick try)")
    parser.add_argument("--checkpoint", type=Path, help="a trained generator to use instead of a random-init one")
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if args.checkpoint:
            checkpoint = args.checkpoint
        else:
            model = init_weights(create_generator("resnet_9blocks", ngf=args.ngf))
            checkpoint = save_generator(model, Path(tmp) / "resnet_9blocks.pt", meta={"untrained": True, "seed": 0})
        fp32 = export_onnx(checkpoint, Path(tmp) / "resnet_9blocks.onnx", OnnxExportOptions(verify=False)).path
        fp16 = export_onnx(checkpoint, Path(tmp) / "resnet_9blocks_fp16.onnx",
                           OnnxExportOptions(fp16=True, verify=False)).path
        # int8 calibrated on the embedded demo dataset's domain-A crops (never on the parity photographs).
        calib = make_demo_dataset(Path(tmp) / "demo", size=256, train_per_domain=32, test_per_domain=0) / "trainA"
        int8 = export_onnx(checkpoint, Path(tmp) / "resnet_9blocks_int8.onnx",
                           OnnxExportOptions(int8=True, calib=calib, verify=False)).path
        print(f"exported fp32, fp16 and int8 ONNX in {time.perf_counter() - started:.0f} s")
        files = bench.targets_from_files([checkpoint, fp32, fp16, int8])
        targets = [dataclasses.replace(t, label=t.path.name) for t in files]
        reference = bench.find_reference([checkpoint])
        results = []
        for size, warmup, iterations in PLAN:
            part = bench.run_benchmark(targets, sizes=[size], warmup=warmup, iterations=iterations,
                                       reference=reference, environment=describe_machine(),
                                       progress=lambda r: print(f"  {r.model} {r.height}x{r.width}: "
                                                                f"p50 {bench.format_ms(r.latency.p50)} ms"))
            results += part.results
        report = dataclasses.replace(part, results=results, timing="warm-up 2; 8 iterations at 256x256, 4 at 512x512",
                                     reference=f"{checkpoint.name} ({reference.reason})")
        batch = bench.photograph_batch(256, 256, 1)[1]
        overhead = {
            "onnxruntime CPU fp32": harness_overhead(
                lambda: OnnxRuntimeRunner(fp32), batch,
                lambda r: (lambda x, s=r.session, n=r.session.get_inputs()[0].name: s.run(None, {n: x})), 8),
            "torch CPU fp32": harness_overhead(
                lambda: TorchRunner.from_checkpoint(checkpoint), batch,
                lambda r: (lambda x, m=r.model: _torch_bare(m, x)), 8),
        }
    bench.write_json(report, args.out)
    markdown = bench.to_markdown(report).replace("# cg-bench report", "# cg-bench: standard CPU matrix", 1)
    markdown += "\n## Harness overhead (256x256, batch 1, 8 interleaved pairs)\n\n"
    markdown += "| session | cg-bench p50 ms | bare loop p50 ms | difference |\n|---|---|---|---|\n"
    for name, o in overhead.items():
        markdown += (f"| {name} | {o['harness_p50_ms']:.1f} | {o['bare_p50_ms']:.1f} | "
                     f"{o['difference_pct']:+.1f}% |\n")
    generator = (f"{args.checkpoint.name} (sha256 {sha256_of(args.checkpoint)[:12]})" if args.checkpoint
                 else f"resnet_9blocks, ngf {args.ngf}, CycleGAN N(0, 0.02) init, seed 0")
    command = "python benchmarks/cpu_matrix.py" + (f" --checkpoint {args.checkpoint.name}" if args.checkpoint else "")
    markdown += (f"\nGenerator: {generator}. int8: calibrated on 32 demo-dataset crops (default recipe). Command: "
                 f"`{command}`; total {time.perf_counter() - started:.0f} s. One-minute load "
                 f"average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores "
                 "(above the core count, other processes competed for the CPU and slowed some rows).\n")
    with atomic_output(args.out.with_suffix(".md")) as out:
        out.write_text(markdown)
    print(bench.format_table(report))
    for name, o in overhead.items():
        print(f"harness overhead, {name}: cg-bench p50 {o['harness_p50_ms']:.1f} ms, bare loop p50 "
              f"{o['bare_p50_ms']:.1f} ms ({o['difference_pct']:+.1f}%)")
    print(f"written {args.out} and {args.out.with_suffix('.md')} in {time.perf_counter() - started:.0f} s")


def _torch_bare(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


if __name__ == "__main__":
    main()
