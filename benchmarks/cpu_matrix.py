"""The standard CPU matrix on this machine: the 9-block generator (ngf 64) in PyTorch fp32, ONNX Runtime fp32 / fp16 /
int8 and OpenVINO fp32 / int8 (the very same .onnx files, the int8 one our QDQ file), at 256x256 and 512x512, batch 1,
each with its PSNR against PyTorch fp32 on a real photograph.

Run: ``python benchmarks/cpu_matrix.py [--checkpoint G_AB.pt] [--rounds 9]`` (about 10 minutes on 2 cores). Writes
``benchmarks/results/cpu_matrix.json`` (a cg-bench JSON report, with the machine described by ``benchmarks/machine.py``)
and ``cpu_matrix.md`` (the same table, the speed-ups over ONNX Runtime fp32, and the kernels OpenVINO ran).

Timing is **interleaved**: every runner is open at once and each round times one inference of each, in an order
that rotates from round to round, so a change in the machine's load (it is shared) hits every row alike. The
speed-ups are the median of the per-round ratios to ONNX Runtime fp32 in the same round, which is steadier under
load than a ratio of medians (both are recorded). Every runtime gets the machine's cores (``--threads``).

OpenVINO runs the float layers in f32 (the runner pins it; its CPU plugin would pick bf16 on CPUs with AMX or
AVX512-BF16); where the CPU has bf16 support a further row shows that default path (``OpenVINO bf16``).

The generator is ``--checkpoint`` or one with CycleGAN's N(0, 0.02) initialisation (seed 0): latency is the same,
but int8 quality is only meaningful for trained weights. int8 is calibrated on demo-dataset crops (default recipe).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_flags, describe_machine  # noqa: E402

from cg_demo.data import make_demo_dataset  # noqa: E402
from cg_export import bench  # noqa: E402
from cg_export.backends import runner_for  # noqa: E402
from cg_export.backends.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from cg_export.backends.torch import TorchRunner  # noqa: E402
from cg_export.export.onnx import OnnxExportOptions, export_onnx  # noqa: E402
from cg_export.files import atomic_output, sha256_of  # noqa: E402
from cg_export.models import create_generator, save_generator  # noqa: E402
from cg_export.models.init import init_weights  # noqa: E402
from cg_export.parity import compare_outputs  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SIZES = ((256, 256), (512, 512))
BASELINE = "ONNX Runtime fp32"


@dataclasses.dataclass
class Row:
    """One runtime of the matrix: its label, cg-bench columns and how to open it."""

    label: str
    model: str
    open: object
    runner: object = None


def build_rows(checkpoint: Path, fp32: Path, fp16: Path, int8: Path, threads: int) -> list[Row]:
    """The runtimes compared, in table order (all on the CPU, ``threads`` each)."""
    cpu = ["CPUExecutionProvider"]
    rows = [
        Row("PyTorch fp32", checkpoint.name, lambda: TorchRunner.from_checkpoint(checkpoint)),
        Row(BASELINE, fp32.name, lambda: OnnxRuntimeRunner(fp32, providers=cpu, threads=threads)),
        Row("ONNX Runtime fp16", fp16.name, lambda: OnnxRuntimeRunner(fp16, providers=cpu, threads=threads)),
        Row("ONNX Runtime int8", int8.name, lambda: OnnxRuntimeRunner(int8, providers=cpu, threads=threads)),
        Row("OpenVINO fp32", fp32.name, lambda: runner_for(fp32, backend="openvino", threads=threads)),
        Row("OpenVINO int8 (same QDQ file)", int8.name, lambda: runner_for(int8, backend="openvino", threads=threads)),
    ]
    if {"avx512_bf16", "amx_bf16"} & cpu_flags():
        rows.append(Row("OpenVINO bf16 (its CPU default here)", fp32.name,
                        lambda: runner_for(fp32, backend="openvino", threads=threads, inference_precision="bf16")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "cpu_matrix.json", help="JSON report (Markdown beside)")
    parser.add_argument("--ngf", type=int, default=64, help="generator width (smaller for a quick try)")
    parser.add_argument("--checkpoint", type=Path, help="a trained generator to use instead of a random-init one")
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds (each times every runtime once)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of every runtime")
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
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
        print(f"exported fp32, fp16 and int8 ONNX in {time.perf_counter() - started:.0f} s", flush=True)
        rows = build_rows(checkpoint, fp32, fp16, int8, args.threads)
        for row in rows:
            row.runner = row.open()
            row.runner.activate()
        kernels = {row.label: row.runner.execution.summary() for row in rows if hasattr(row.runner, "execution")}
        results, speedups = [], {}
        for height, width in SIZES:
            label, batch = bench.photograph_batch(height, width, 1)
            reference = rows[0].runner(batch)
            parity = {}
            for row in rows:  # warm-up (two runs each) and parity on the photograph
                row.runner(batch)
                parity[row.label] = compare_outputs(label, reference, row.runner(batch))
            samples: dict[str, list[float]] = {row.label: [] for row in rows}
            for round_index in range(args.rounds):
                order = rows[round_index % len(rows):] + rows[:round_index % len(rows)]
                for row in order:
                    t0 = time.perf_counter()
                    row.runner(batch)
                    samples[row.label].append((time.perf_counter() - t0) * 1000.0)
                print(f"  {height}x{width} round {round_index + 1}/{args.rounds}: "
                      + ", ".join(f"{r.label} {samples[r.label][-1]:.0f}" for r in rows), flush=True)
            base = np.asarray(samples[BASELINE])
            for row in rows:
                times = np.asarray(samples[row.label])
                stats = bench.LatencyStats.from_samples(times)
                case = parity[row.label]
                speedups[f"{row.label} @ {height}x{width}"] = {
                    "median_of_round_ratios": float(np.median(base / times)),
                    "ratio_of_medians": float(np.median(base) / np.median(times)),
                    "p50_ms": stats.p50, "psnr_db": "inf" if np.isinf(case.psnr_db) else case.psnr_db,
                    "rounds": len(times),
                }
                results.append(bench.BenchResult(
                    row.label, bench.backend_label(row.runner), row.runner.precision, str(row.runner.device),
                    height, width, 1, latency=stats, throughput_ips=1000.0 / stats.p50, psnr_db=case.psnr_db,
                    max_abs_err=case.max_abs_err, notes=[f"file {row.model}"]))
        for row in rows:
            row.runner.deactivate()
    load_after = os.getloadavg()
    machine = describe_machine()
    report = bench.BenchReport(machine, results, reference=f"{checkpoint.name} (PyTorch fp32, same run)",
                               timing=f"interleaved, {args.rounds} rounds after 2 warm-up runs, {args.threads} threads "
                                      "per runtime")
    bench.write_json(report, args.out)
    generator = (f"{args.checkpoint.name} (sha256 {sha256_of(args.checkpoint)[:12]})" if args.checkpoint
                 else f"resnet_9blocks, ngf {args.ngf}, CycleGAN N(0, 0.02) init, seed 0")
    command = ("python benchmarks/cpu_matrix.py" + (f" --checkpoint {args.checkpoint.name}" if args.checkpoint else "")
               + (f" --ngf {args.ngf}" if args.ngf != 64 and not args.checkpoint else ""))
    markdown = bench.to_markdown(report).replace("# cg-bench report", "# cg-bench: standard CPU matrix", 1)
    busy = max(load_before[0], load_after[0]) > (os.cpu_count() or 1)
    contended = " (contended: the load average was above the core count)" if busy else ""
    markdown += "\n## Speed-up over ONNX Runtime fp32 (same run)\n\n"
    markdown += ("| runtime | 256x256 | 512x512 | PSNR vs PyTorch 256 / 512 |\n|---|---|---|---|\n")
    for row in rows:
        cells = [speedups[f"{row.label} @ {h}x{w}"] for h, w in SIZES]
        markdown += (f"| {row.label} | " + " | ".join(
            f"{c['median_of_round_ratios']:.2f}x ({c['p50_ms']:.0f} ms)" for c in cells)
            + " | " + " / ".join(_db(float(c["psnr_db"])) for c in cells) + " |\n")
    markdown += ("\nSpeed-up: median over rounds of (ONNX Runtime fp32 time / this runtime's time) in the same round; "
                 "the ratio of the medians is in the JSON beside (`cpu_matrix_speedups.json`).\n")
    markdown += "\n## Kernels OpenVINO compiled\n\n" + "".join(f"- {k}: {v}\n" for k, v in kernels.items())
    markdown += (f"\nGenerator: {generator}. int8: our QDQ file (default recipe), calibrated on 32 demo-dataset crops; "
                 f"OpenVINO ran the same .onnx files. Command: `{command} --rounds {args.rounds}`; total "
                 f"{time.perf_counter() - started:.0f} s. Load average (1, 5, 15 min) "
                 f"{' / '.join(f'{v:.1f}' for v in load_before)} before and "
                 f"{' / '.join(f'{v:.1f}' for v in load_after)} after, on {os.cpu_count()} cores: the machine was "
                 f"shared with other jobs{contended}, "
                 "so compare the ratios, not the milliseconds.\n")
    with atomic_output(args.out.with_suffix(".md")) as out:
        out.write_text(markdown)
    with atomic_output(args.out.with_name(args.out.stem + "_speedups.json")) as out:
        out.write_text(json.dumps({"machine": machine, "generator": generator, "rounds": args.rounds,
                                   "threads": args.threads, "load_before": load_before, "load_after": load_after,
                                   "kernels": kernels, "speedups": speedups},
                                  indent=2, default=lambda v: str(v)) + "\n")
    print(markdown)


def _db(value: float) -> str:
    return "inf" if np.isinf(value) else f"{value:.1f} dB"


if __name__ == "__main__":
    main()
