"""Where OpenVINO's int8 time goes on this CPU, and what QDQ placement buys: per-operator performance counters and
interleaved timings of a few one-calibration variants of our QDQ file.

Run: ``python benchmarks/openvino_int8_study.py [--checkpoint G_AB.pt] [--rounds 7]`` (about 10 minutes on 2 cores).
Writes ``benchmarks/results/openvino_int8_study.json``; ``benchmarks/openvino_int8.md`` discusses it.

Variants (all calibrated once, on the same 16 demo-dataset crops, by :func:`cg_export.export.quantize.quantize_int8`):

* ``default``: our file (convs int8, first/last 7x7 and both ConvTranspose float, pre-norm equalization);
* ``+convtranspose``: the two upsampling ConvTranspose layers quantized too;
* ``+image_convs``: the first and last 7x7 convs quantized too;
* ``default, bf16 float layers``: our file, OpenVINO asked to run the float layers in bf16 (CPUs with AVX512-BF16/AMX).

Each is timed with OpenVINO (and ONNX Runtime for reference) in one interleaved loop against OpenVINO and ONNX
Runtime fp32, at 256x256; quality is the worst 8-bit PSNR against PyTorch fp32 over three photographs that neither
training nor calibration saw. The performance counters (``PERF_COUNT``) of each OpenVINO variant are summed by layer
type and kernel over ``--profile-runs`` inferences, and the convolutions' multiply-accumulates are counted from the
PyTorch modules, so each kernel's throughput (G MAC/s) is known.
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
import onnx
import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe_machine  # noqa: E402

from cg_demo.data import make_demo_dataset  # noqa: E402
from cg_export.backends import runner_for  # noqa: E402
from cg_export.backends.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from cg_export.backends.torch import TorchRunner  # noqa: E402
from cg_export.export.onnx import OnnxExportOptions, add_metadata, export_onnx, to_onnx_graph  # noqa: E402
from cg_export.export.quantize import DEFAULT_RECIPE, calibration_batches, quantize_int8  # noqa: E402
from cg_export.files import atomic_output, sha256_of  # noqa: E402
from cg_export.images import fit_to_size, sample_photographs, to_model_input  # noqa: E402
from cg_export.models import create_generator, load_generator, save_generator  # noqa: E402
from cg_export.models.init import init_weights  # noqa: E402
from cg_export.parity import compare_outputs  # noqa: E402

RESULTS = Path(__file__).parent / "results"
HELD_OUT = ("rocket", "motorcycle_left", "motorcycle_right")
VARIANTS = {
    "default": DEFAULT_RECIPE,
    "+convtranspose": dataclasses.replace(DEFAULT_RECIPE, op_types=("Conv", "ConvTranspose")),
    "+image_convs": dataclasses.replace(DEFAULT_RECIPE, keep_first_and_last_conv=False),
}


def conv_macs(model: torch.nn.Module, height: int, width: int) -> dict[str, float]:
    """Multiply-accumulates of one inference, by layer kind (``conv3x3`` residual/downsampling, ``conv7x7``,
    ``convtranspose``), counted from the modules' output shapes."""
    macs: dict[str, float] = {}
    hooks = []

    def count(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        kernel = int(np.prod(module.kernel_size))
        if isinstance(module, torch.nn.ConvTranspose2d):
            value, kind = inputs[0].numel() * module.out_channels * kernel / module.groups, "convtranspose"
        else:
            value = output.numel() * module.in_channels * kernel / module.groups
            kind = "conv7x7" if module.kernel_size == (7, 7) else "conv3x3"
        macs[kind] = macs.get(kind, 0.0) + float(value)

    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            hooks.append(module.register_forward_hook(count))
    with torch.inference_mode():
        model(torch.zeros(1, 3, height, width))
    for hook in hooks:
        hook.remove()
    return macs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="a trained generator (default: random init, seed 0)")
    parser.add_argument("--ngf", type=int, default=64, help="width of the random-init generator (a quick try)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile-runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=RESULTS / "openvino_int8_study.json")
    parser.add_argument("--onnx", type=Path, nargs=2, metavar=("FP32", "INT8"),
                        help="study these two exports of --checkpoint (the int8 one our QDQ file) instead of "
                             "exporting fp32 and the default variant")
    parser.add_argument("--variants", help="comma-separated variants to calibrate (default: all, or none with --onnx)")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    size = (args.size, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.checkpoint:
            checkpoint = args.checkpoint
        else:
            model = init_weights(create_generator("resnet_9blocks", ngf=args.ngf))
            checkpoint = save_generator(model, tmp / "g.pt", meta={"untrained": True, "seed": 0})
        generator = load_generator(checkpoint)
        macs = conv_macs(generator.model, *size)
        files = {}
        chosen = args.variants.split(",") if args.variants else ([] if args.onnx else list(VARIANTS))
        if args.onnx:
            fp32, files["default"] = args.onnx
            chosen = [name for name in chosen if name != "default"]
        else:
            fp32 = export_onnx(generator, tmp / "g.onnx", OnnxExportOptions(verify=False)).path
        if chosen:
            calib_folder = make_demo_dataset(tmp / "demo", size=256, train_per_domain=16, test_per_domain=0) / "trainA"
            calibration = list(calibration_batches(calib_folder, size=256))
        for name, recipe in {name: VARIANTS[name] for name in chosen}.items():
            graph = to_onnx_graph(generator.model)
            quantized = quantize_int8(graph, calibration, recipe)
            add_metadata(quantized, generator, "int8")
            files[name] = tmp / f"g_int8_{name.strip('+')}.onnx"
            onnx.save(quantized, str(files[name]))
        print(f"exported fp32 and {len(files)} int8 variants in {time.perf_counter() - started:.0f} s", flush=True)

        cpu = ["CPUExecutionProvider"]
        runners = {
            "ONNX Runtime fp32": OnnxRuntimeRunner(fp32, providers=cpu, threads=args.threads),
            "OpenVINO fp32": runner_for(fp32, backend="openvino", threads=args.threads),
        }
        for name, path in files.items():
            runners[f"ONNX Runtime int8 {name}"] = OnnxRuntimeRunner(path, providers=cpu, threads=args.threads)
            runners[f"OpenVINO int8 {name}"] = runner_for(path, backend="openvino", threads=args.threads)
        runners["OpenVINO int8 default, bf16 float layers"] = runner_for(
            files["default"], backend="openvino", threads=args.threads, inference_precision="bf16")
        photos = dict(sample_photographs())
        held_out = [to_model_input([fit_to_size(photos[name], *size)]) for name in HELD_OUT]
        with TorchRunner(generator.model) as reference:
            expected = [reference(x) for x in held_out]
        for runner in runners.values():
            runner.activate()
        quality, kernels, profiles = {}, {}, {}
        for label, runner in runners.items():
            quality[label] = min(compare_outputs(n, e, runner(x)).psnr_db for n, e, x in zip(HELD_OUT, expected, held_out))
            if label.startswith("OpenVINO"):
                kernels[label] = runner.execution.summary()
                profiles[label] = [dataclasses.asdict(r) for r in runner.profile(held_out[0], args.profile_runs)]
        batch = held_out[0]
        samples: dict[str, list[float]] = {label: [] for label in runners}
        order = list(runners)
        for label in order[:len(order) if args.rounds else 0]:  # warm-up before timed rounds
            runners[label](batch)
        for round_index in range(args.rounds):
            shift = round_index % len(order)
            for label in order[shift:] + order[:shift]:
                t0 = time.perf_counter()
                runners[label](batch)
                samples[label].append((time.perf_counter() - t0) * 1000.0)
            print(f"round {round_index + 1}/{args.rounds} done", flush=True)
        for runner in runners.values():
            runner.deactivate()
    base = np.asarray(samples["ONNX Runtime fp32"])
    crops = "16 demo-dataset domain-A crops, 256x256"
    calibration_note = (f"default: {args.onnx[1].name} as given" + (f"; the other variants: {crops}" if chosen else "")
                        if args.onnx else crops)
    rows = {label: {"p50_ms": float(np.median(v)) if v else None,
                    "speedup_vs_ort_fp32": float(np.median(base / np.asarray(v))) if v else None,
                    "worst_psnr_db": quality[label]} for label, v in samples.items()}
    record = {
        "machine": describe_machine(), "size": list(size), "rounds": args.rounds, "threads": args.threads,
        "generator": (f"{checkpoint.name} (sha256 {sha256_of(checkpoint)[:12]})" if args.checkpoint
                      else f"resnet_9blocks ngf {args.ngf}, N(0, 0.02) init, seed 0"),
        "held_out_photographs": list(HELD_OUT), "calibration": calibration_note,
        "conv_macs": macs, "rows": rows, "kernels": kernels,
        "profile_ms_per_inference": {label: [dict(r, milliseconds=r["milliseconds"] / args.profile_runs)
                                             for r in rows_] for label, rows_ in profiles.items()},
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "seconds": time.perf_counter() - started,
    }
    with atomic_output(args.out) as out:
        out.write_text(json.dumps(record, indent=2) + "\n")
    for label, row in rows.items():
        timing = f"p50 {row['p50_ms']:7.0f} ms  {row['speedup_vs_ort_fp32']:.2f}x  " if row["p50_ms"] else ""
        print(f"{label:45s} {timing}{row['worst_psnr_db']:.1f} dB")
    for label, rows_ in record["profile_ms_per_inference"].items():
        print(f"\n{label}:")
        for r in rows_[:8]:
            print(f"  {r['node_type']:24s} {r['exec_type']:28s} {r['layers']:3d} layers {r['milliseconds']:8.1f} ms")
    print(f"conv MACs: { {k: f'{v / 1e9:.2f} G' for k, v in macs.items()} }")
    print(f"written {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
