"""Export time and parity of the 9-block generator (ngf 64) to ONNX fp32 and fp16 on this machine.

Run: ``python benchmarks/export_onnx.py`` (about a minute on 2 cores). Writes
``benchmarks/results/export_onnx.json`` and prints a Markdown table. The generator has CycleGAN's N(0, 0.02)
initialisation (seed 0); parity is measured on real photographs (scikit-image's astronaut and coffee) at
256x256 and 256x384, exactly as ``cg-export onnx`` verifies.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe_machine  # noqa: E402

from cg_export.export.onnx import OnnxExportOptions, export_onnx  # noqa: E402
from cg_export.models import create_generator, save_generator  # noqa: E402
from cg_export.models.init import init_weights  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "export_onnx.json"


def main() -> None:
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = save_generator(init_weights(create_generator("resnet_9blocks")), Path(tmp) / "G_AB.pt")
        for fp16 in (False, True):
            started = time.perf_counter()
            result = export_onnx(checkpoint, Path(tmp) / f"g{'_fp16' if fp16 else ''}.onnx", OnnxExportOptions(fp16=fp16))
            total = time.perf_counter() - started
            for case in result.parity.cases:
                rows.append({
                    "precision": result.precision,
                    "case": case.label,
                    "export_s": round(result.export_seconds, 2),
                    "export_and_verify_s": round(total, 2),
                    "max_abs_err": case.max_abs_err,
                    "psnr_db": case.psnr_db if case.psnr_db != float("inf") else "inf",
                    "size_mb": round(result.path.stat().st_size / 1e6, 1),
                })
    report = {"environment": describe_machine(), "generator": "resnet_9blocks ngf 64, N(0, 0.02) init, seed 0",
              "results": rows}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print("| precision | photographs @ size | export s | export+verify s | max abs err | PSNR dB | MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        psnr = r["psnr_db"] if r["psnr_db"] == "inf" else f"{r['psnr_db']:.1f}"
        print(f"| {r['precision']} | {r['case']} | {r['export_s']} | {r['export_and_verify_s']} | "
              f"{r['max_abs_err']:.2e} | {psnr} | {r['size_mb']} |")
    print(f"\nwritten {RESULTS}")


if __name__ == "__main__":
    main()
