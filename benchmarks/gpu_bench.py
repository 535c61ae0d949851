"""cg-bench on a CUDA GPU: the 9-block generator (ngf 64) at 256x256 and 512x512, batch 1.

PyTorch on CUDA: fp32 as PyTorch runs it by default (cuDNN convolutions in TF32), strict fp32 (TF32 off), fp16,
channels_last in fp32 and fp16, and fp16 channels_last replayed as a CUDA graph (torch.compile is left out:
compiling this generator for each size would take most of the time budget). ONNX Runtime: every execution provider
installed (the CPU provider at least, with fewer iterations). ``--engine FILE`` adds TensorRT engines. Parity is
against the PyTorch fp32 checkpoint on the CPU.

Run: ``python benchmarks/gpu_bench.py --out benchmarks/results/gpu_bench_<gpu>.json`` (about 1 minute on an H200 with
16 CPU cores, export included; the Markdown goes beside the JSON). Without a GPU the CUDA rows are reported
unavailable, with the reason. A check that the harness adds no overhead is printed and written to the Markdown:
cg-bench's p50 next to a bare loop around the same model, end to end and compute-only (CUDA events).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe_machine  # noqa: E402

from cg_export import bench  # noqa: E402
from cg_export.backends.onnxruntime import OnnxRuntimeRunner, import_onnxruntime  # noqa: E402
from cg_export.backends.torch import TorchRunner  # noqa: E402
from cg_export.errors import CgExportError  # noqa: E402
from cg_export.export.onnx import OnnxExportOptions, export_onnx  # noqa: E402
from cg_export.files import atomic_output  # noqa: E402
from cg_export.models import create_generator, save_generator  # noqa: E402
from cg_export.models.init import init_weights  # noqa: E402

# (warm-up, iterations) per size: a GPU row costs milliseconds, an ONNX Runtime CPU row about a second per run.
GPU_PLAN = {256: (10, 100), 512: (10, 50)}
CPU_PLAN = {256: (1, 5), 512: (1, 3)}


class StrictFp32Runner(TorchRunner):
    """fp32 with cuDNN's TF32 convolutions turned off while active (PyTorch turns them on by default)."""

    def _activate(self) -> None:
        self._tf32 = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        super()._activate()

    def _deactivate(self) -> None:
        super()._deactivate()
        torch.backends.cudnn.allow_tf32 = self._tf32


class CudaGraphRunner(TorchRunner):
    """Replays one captured CUDA graph per input shape: one launch instead of one per kernel."""

    def _activate(self) -> None:
        super()._activate()
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def _deactivate(self) -> None:
        self._graphs = {}

    def run_on_device(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.stride())
        if key not in self._graphs:
            static_input = x.clone()
            # Warm up on a side stream first, as capture requires: cuDNN picks its algorithms outside the graph.
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    self.model(static_input)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_output = self.model(static_input)
            self._graphs[key] = (graph, static_input, static_output)
        graph, static_input, static_output = self._graphs[key]
        static_input.copy_(x)
        graph.replay()
        return static_output


def torch_targets(checkpoint: Path) -> list[bench.BenchTarget]:
    """The PyTorch CUDA variants; each loads its own copy (a runner converts its module in place)."""

    def target(label: str, cls: type[TorchRunner] = TorchRunner, **options: bool) -> bench.BenchTarget:
        return bench.BenchTarget(f"torch {label}", lambda: cls.from_checkpoint(checkpoint, device="cuda", **options))

    return [
        target("fp32 (cuDNN TF32, default)"),
        target("fp32 strict (TF32 off)", StrictFp32Runner),
        target("fp32 channels_last", channels_last=True),
        target("fp16", half=True),
        target("fp16 channels_last", half=True, channels_last=True),
        target("fp16 channels_last CUDA graph", CudaGraphRunner, half=True, channels_last=True),
    ]


def onnxruntime_targets(models: list[Path]) -> tuple[list[bench.BenchTarget], list[bench.BenchTarget]]:
    """ONNX Runtime per installed provider: (GPU providers, CPU provider)."""
    try:
        available = import_onnxruntime().get_available_providers()
    except CgExportError as exc:
        print(f"no ONNX Runtime rows: {exc}")
        return [], []
    gpu, cpu = [], []
    for provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"):
        if provider not in available:
            continue
        for model in models:
            label = f"{model.name} ({provider.removesuffix('ExecutionProvider')})"
            t = bench.BenchTarget(label, lambda m=model, p=provider: OnnxRuntimeRunner(m, providers=[p]), model)
            (cpu if provider == "CPUExecutionProvider" else gpu).append(t)
    return gpu, cpu


def interleaved_p50(first: Callable[[], float], second: Callable[[], float], pairs: int) -> tuple[float, float]:
    """Medians of two timers run alternately, so a drifting clock or load affects both alike."""
    a, b = [], []
    for _ in range(pairs):
        a.append(first())
        b.append(second())
    return float(np.median(a)), float(np.median(b))


def harness_overhead(checkpoint: Path, pairs: int = 50) -> list[tuple[str, float, float]]:
    """cg-bench's timing against bare loops around the same fp16 channels_last model at 256x256."""
    batch = bench.photograph_batch(256, 256, 1)[1]
    settings = bench.TimingSettings.create(warmup=0, iterations=1)
    with TorchRunner.from_checkpoint(checkpoint, device="cuda", half=True, channels_last=True) as runner:
        model = runner.model

        def bare_end_to_end() -> float:
            started = time.perf_counter()
            with torch.inference_mode():
                x = torch.from_numpy(batch).to("cuda", dtype=torch.float16, memory_format=torch.channels_last)
                model(x).float().cpu().numpy()
            return (time.perf_counter() - started) * 1000.0

        with torch.inference_mode():
            resident = torch.from_numpy(batch).to("cuda", dtype=torch.float16, memory_format=torch.channels_last)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def bare_compute() -> float:
            with torch.inference_mode():
                start.record()
                model(resident)
                end.record()
            end.synchronize()
            return start.elapsed_time(end)

        compute = runner.compute_timer(batch)
        assert compute is not None
        for _ in range(10):
            runner(batch)
            compute()
        e2e = interleaved_p50(lambda: bench.time_calls(lambda: runner(batch), settings)[0], bare_end_to_end, pairs)
        dev = interleaved_p50(lambda: bench.time_device_runs(compute, 1)[0], bare_compute, pairs)
    return [("end to end (wall clock)", *e2e), ("compute (CUDA events)", *dev)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON report to write (the Markdown goes beside)")
    parser.add_argument("--ngf", type=int, default=64, help="generator width (smaller for a quick try)")
    parser.add_argument("--engine", type=Path, action="append", default=[], help="TensorRT engine to add")
    parser.add_argument("--budget-s", type=float, default=200.0,
                        help="skip the remaining groups once this many seconds have passed")
    args = parser.parse_args()
    started = time.perf_counter()
    torch.manual_seed(0)
    # Fixed shapes per row: let cuDNN pick its fastest algorithms during warm-up, as a deployment would.
    torch.backends.cudnn.benchmark = True
    has_cuda = torch.cuda.is_available()
    print(f"GPU: {torch.cuda.get_device_name(0) if has_cuda else 'none (CUDA rows will be unavailable)'}")
    environment = describe_machine()
    results: list[bench.BenchResult] = []
    skipped: list[str] = []
    overhead: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        model = init_weights(create_generator("resnet_9blocks", ngf=args.ngf))
        checkpoint = save_generator(model, Path(tmp) / "resnet_9blocks.pt", meta={"untrained": True, "seed": 0})
        onnx_models = []
        for fp16 in (False, True):
            try:
                onnx_models.append(export_onnx(checkpoint, Path(tmp) / f"resnet_9blocks{'_fp16' if fp16 else ''}.onnx",
                                               OnnxExportOptions(fp16=fp16, verify=False)).path)
            except CgExportError as exc:
                print(f"no {'fp16' if fp16 else 'fp32'} ONNX rows: {exc}")
        print(f"exported ONNX in {time.perf_counter() - started:.0f} s")
        reference = bench.Reference(checkpoint, "PyTorch fp32 on the CPU")
        ort_gpu, ort_cpu = onnxruntime_targets(onnx_models)
        engines = bench.targets_from_files(args.engine)
        groups = [("PyTorch CUDA", torch_targets(checkpoint), GPU_PLAN),
                  ("ONNX Runtime GPU providers", ort_gpu, GPU_PLAN),
                  ("TensorRT engines", engines, GPU_PLAN),
                  ("ONNX Runtime CPU", ort_cpu, CPU_PLAN)]
        for name, targets, plan in groups:
            if not targets:
                continue
            if time.perf_counter() - started > args.budget_s:
                skipped.append(name)
                print(f"skipped {name}: past the {args.budget_s:g} s budget")
                continue
            for size, (warmup, iterations) in plan.items():
                part = bench.run_benchmark(
                    targets, sizes=[(size, size)], warmup=warmup, iterations=iterations, reference=reference,
                    environment=environment,
                    progress=lambda r: print(f"  {r.model} {r.height}x{r.width}: p50 "
                                             f"{bench.format_ms(r.latency.p50 if r.latency else None)} ms "
                                             f"{r.note or ''}", flush=True))
                results += part.results
            print(f"{name} done at {time.perf_counter() - started:.0f} s", flush=True)
        if has_cuda:
            overhead = harness_overhead(checkpoint)
    timing = ("warm-up 10 and 100 iterations at 256x256, 50 at 512x512 on the GPU; warm-up 1 and 5 / 3 iterations "
              "for ONNX Runtime's CPU provider; cudnn.benchmark on")
    report = bench.BenchReport(environment, results, f"{checkpoint.name} ({reference.reason})", timing)
    bench.write_json(report, args.out)
    markdown = bench.to_markdown(report).replace("# cg-bench report", "# cg-bench on a GPU", 1)
    if overhead:
        markdown += "\n## Harness overhead (torch fp16 channels_last, 256x256, batch 1, 50 interleaved pairs)\n\n"
        markdown += "| what | cg-bench p50 ms | bare loop p50 ms | difference |\n|---|---|---|---|\n"
        markdown += "".join(f"| {what} | {h:.3f} | {b:.3f} | {(h - b) / b * 100:+.1f}% |\n" for what, h, b in overhead)
    if skipped:
        markdown += f"\nSkipped (time budget): {', '.join(skipped)}.\n"
    markdown += (f"\nGenerator: resnet_9blocks, ngf {args.ngf}, CycleGAN N(0, 0.02) init, seed 0. Command: "
                 f"`python benchmarks/gpu_bench.py --out {args.out.name}`; "
                 f"total {time.perf_counter() - started:.0f} s.\n")
    with atomic_output(args.out.with_suffix(".md")) as out:
        out.write_text(markdown)
    print(bench.format_table(report))
    for what, h, b in overhead:
        print(f"harness overhead, {what}: cg-bench p50 {h:.3f} ms, bare loop p50 {b:.3f} ms "
              f"({(h - b) / b * 100:+.1f}%)")
    print(f"written {args.out} and {args.out.with_suffix('.md')} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
