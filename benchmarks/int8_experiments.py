"""INT8 recipes for a trained 9-block generator: speed and quality on ONNX Runtime CPU, each against fp32 in one run.

Run: ``python benchmarks/int8_experiments.py --checkpoint G_AB.pt [--recipes naive,conv_minmax,...]``.
Calibration: 16 domain-A training crops of the embedded demo dataset (cg_demo/data.py, seed 0).
Quality: PSNR (8-bit) of ORT int8 against the PyTorch fp32 output on held-out photographs that neither training nor
calibration saw (rocket, motorcycle_left, motorcycle_right, fitted to 256x256). Speed: ORT CPU latency at
256x256, batch 1, median of N runs, fp32 and int8 sessions alternated so machine load hits both alike.
Results go to ``benchmarks/results/int8_experiments.json``; conclusions are in ``benchmarks/int8_experiments.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe_machine  # noqa: E402

from cg_demo.data import HELD_OUT_PHOTOGRAPHS, make_demo_dataset  # noqa: E402
from cg_export.backends.onnxruntime import import_onnxruntime  # noqa: E402
from cg_export.export.onnx import to_onnx_graph  # noqa: E402
from cg_export.export.quantize import DEFAULT_RECIPE, Int8Recipe, calibration_batches, quantize_int8  # noqa: E402
from cg_export.images import fit_to_size, sample_photographs, to_model_input  # noqa: E402
from cg_export.models import load_generator  # noqa: E402
from cg_export.parity import psnr_8bit  # noqa: E402

ALL_OPS = ("Conv", "ConvTranspose", "Add", "Relu", "Pad", "InstanceNormalization", "Resize")
RECIPES = {
    # Everything ORT's QDQ quantizer knows, MinMax, nothing kept float: the "naive" baseline of the issue.
    "naive": Int8Recipe(op_types=ALL_OPS, keep_first_and_last_conv=False, calibration_method="minmax",
                        equalize_pre_norm=False),
    "conv_minmax": Int8Recipe(op_types=("Conv", "ConvTranspose"), calibration_method="minmax", equalize_pre_norm=False),
    "conv_pct99.99": Int8Recipe(op_types=("Conv", "ConvTranspose"), calibration_method="percentile", percentile=99.99,
                                equalize_pre_norm=False),
    "eq_minmax": Int8Recipe(op_types=("Conv", "ConvTranspose"), calibration_method="minmax"),
    "eq_entropy": Int8Recipe(op_types=("Conv", "ConvTranspose"), calibration_method="entropy"),
    "eq_pct99.999": Int8Recipe(op_types=("Conv", "ConvTranspose"), calibration_method="percentile", percentile=99.999),
    "eq_pct99.99": Int8Recipe(op_types=("Conv", "ConvTranspose"), calibration_method="percentile", percentile=99.99),
    "eq_pct99.9": Int8Recipe(op_types=("Conv", "ConvTranspose"), calibration_method="percentile", percentile=99.9),
    "eq_pct99.99_float_upsampling": Int8Recipe(op_types=("Conv",), calibration_method="percentile", percentile=99.99),  # = default
    "default": DEFAULT_RECIPE,
}


def latency_ms(session, batch: np.ndarray) -> float:
    start = time.perf_counter()
    session.run(None, {"input": batch})
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    ort = import_onnxruntime()
    torch.set_num_threads(args.threads)

    generator = load_generator(args.checkpoint)
    graph = to_onnx_graph(generator.model)
    held_out = [(name, to_model_input([fit_to_size(image, 256, 256)]))
                for name, image in sample_photographs() if name in HELD_OUT_PHOTOGRAPHS]
    with torch.inference_mode():
        references = [generator.model(torch.from_numpy(x)).numpy() for _, x in held_out]

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.log_severity_level = 3
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        calib = list(calibration_batches(make_demo_dataset(Path(tmp) / "demo", size=256, train_per_domain=16,
                                                           test_per_domain=0) / "trainA", size=256))
        fp32_path = Path(tmp) / "fp32.onnx"
        onnx.save(graph, str(fp32_path))
        fp32 = ort.InferenceSession(str(fp32_path), options, providers=["CPUExecutionProvider"])
        for name in args.recipes.split(","):
            recipe = RECIPES[name]
            started = time.perf_counter()
            quantized = quantize_int8(graph, calib, recipe)
            quantize_s = time.perf_counter() - started
            path = Path(tmp) / f"{name}.onnx"
            onnx.save(quantized, str(path))
            int8 = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            psnrs = [psnr_8bit(ref, int8.run(None, {"input": x})[0]) for ref, (_, x) in zip(references, held_out)]
            batch = held_out[0][1]
            for session in (fp32, int8):
                latency_ms(session, batch)
            t32, t8 = [], []
            for _ in range(args.runs):  # alternate, so load on the shared machine hits both alike
                t32.append(latency_ms(fp32, batch))
                t8.append(latency_ms(int8, batch))
            ops = [n.op_type for n in quantized.graph.node]
            row = {
                "recipe": name, "op_types": list(recipe.op_types), "keep_first_and_last_conv":
                recipe.keep_first_and_last_conv, "equalize_pre_norm": recipe.equalize_pre_norm, "calibration": recipe.calibration_method,
                "percentile": recipe.percentile if recipe.calibration_method == "percentile" else None,
                "psnr_db": {n: round(p, 2) for (n, _), p in zip(held_out, psnrs)}, "psnr_min_db": round(min(psnrs), 2),
                "fp32_ms": round(float(np.median(t32)), 1), "int8_ms": round(float(np.median(t8)), 1),
                "speedup": round(float(np.median(t32) / np.median(t8)), 2), "quantize_s": round(quantize_s, 1),
                "quantize_linear_nodes": ops.count("QuantizeLinear"),
            }
            rows.append(row)
            print(f"{name:24s} PSNR min {row['psnr_min_db']:5.1f} dB  fp32 {row['fp32_ms']:6.0f} ms  "
                  f"int8 {row['int8_ms']:6.0f} ms  speedup {row['speedup']:.2f}x  Q nodes {row['quantize_linear_nodes']}",
                  flush=True)
    out = Path(__file__).parent / "results" / "int8_experiments.json"
    out.write_text(json.dumps({"environment": describe_machine(), "checkpoint_sha256": generator.sha256,
                               "held_out": [n for n, _ in held_out], "calibration": "16 demo trainA crops, 256x256",
                               "threads": args.threads, "runs": args.runs, "results": rows}, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
