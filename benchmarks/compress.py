"""cg-compress on this CPU: a teacher trained briefly by cg-train, distilled into a mobile ResNet student.

Records the MAC ratio (ptflops), PSNR and SSIM (scikit-image) of the student against the teacher on held-out
photographs (never seen by training, distillation or calibration), and ONNX Runtime fp32 and int8 latency of both
at 256x256 and 512x512, all rows interleaved round by round in one run so machine load hits every row alike.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/compress.py --work /tmp/cgc_bench

The teacher is the cg-demo generator (resnet, ngf 16, 3 blocks, 16 epochs of 64-px crops of the demo's poster
data) unless ``--teacher`` names another checkpoint (``--teacher-ngf/--teacher-blocks`` train a larger one).
Files under ``--work`` are reused when present, so a rerun only measures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from cg_demo.data import HELD_OUT_PHOTOGRAPHS, make_demo_dataset  # noqa: E402
from cg_export.backends.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from cg_export.export.onnx import OnnxExportOptions, export_onnx  # noqa: E402
from cg_export.images import fit_to_size, sample_photographs, to_model_input, to_uint8  # noqa: E402
from cg_export.macs import count_cost  # noqa: E402
from cg_export.models import load_generator  # noqa: E402
from training.compress import compress  # noqa: E402
from training.trainer import train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "compress.json"
SIZES = (256, 512)


def teacher_checkpoint(work: Path, args: argparse.Namespace) -> Path:
    """The given teacher, or one trained here with cg-train's library (resumed/reused when already there)."""
    data = work / "data"
    if not data.exists():
        make_demo_dataset(data, size=72, train_per_domain=64, test_per_domain=8, seed=0)
    if args.teacher:
        return args.teacher
    name = f"teacher_ngf{args.teacher_ngf}_b{args.teacher_blocks}"
    run = work / "runs" / name
    options = {"epochs": args.teacher_epochs, "image_size": 64, "arch": "resnet", "ngf": args.teacher_ngf,
               "n_blocks": args.teacher_blocks, "ndf": 16, "lr": 1e-3, "lambda_id": 10.0, "seed": 0}
    result = train(data, name, out=work / "runs", resume=(run / "training_state.pt").exists(), progress=False,
                   **options)
    return result.generator_AB


def held_out(size: int) -> list[tuple[str, np.ndarray]]:
    photos = dict(sample_photographs())
    return [(name, fit_to_size(photos[name], size, size)) for name in HELD_OUT_PHOTOGRAPHS]


def quality(teacher: torch.nn.Module, student: torch.nn.Module, size: int) -> dict[str, float]:
    """Mean PSNR and SSIM of the student's 8-bit output against the teacher's, PyTorch fp32, held-out photos."""
    psnrs, ssims = [], []
    with torch.no_grad():
        for _, image in held_out(size):
            batch = torch.from_numpy(to_model_input([image]))
            want, got = to_uint8(teacher(batch).numpy())[0], to_uint8(student(batch).numpy())[0]
            psnrs.append(peak_signal_noise_ratio(want, got, data_range=255))
            ssims.append(structural_similarity(want, got, channel_axis=2, data_range=255))
    return {"psnr_db": round(float(np.mean(psnrs)), 2), "ssim": round(float(np.mean(ssims)), 4)}


def onnx_psnr(runner: OnnxRuntimeRunner, teacher: torch.nn.Module, size: int) -> float | str:
    """Mean PSNR of the runner's 8-bit output against the teacher's (PyTorch fp32); ``"inf"`` when identical."""
    values = []
    for _, image in held_out(size):
        batch = to_model_input([image])
        with torch.no_grad():
            want = to_uint8(teacher(torch.from_numpy(batch)).numpy())[0]
        got = to_uint8(runner(batch))[0]
        values.append(np.inf if np.array_equal(want, got) else peak_signal_noise_ratio(want, got, data_range=255))
    mean = float(np.mean(values))
    return "inf" if np.isinf(mean) else round(mean, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="Folder for data, runs and ONNX files (reused).")
    parser.add_argument("--teacher", type=Path, help="Teacher checkpoint (default: train the demo generator here).")
    parser.add_argument("--teacher-ngf", type=int, default=16)
    parser.add_argument("--teacher-blocks", type=int, default=3)
    parser.add_argument("--teacher-epochs", type=int, default=16)
    parser.add_argument("--ratio", type=float, default=10.0)
    parser.add_argument("--epochs", type=int, default=30, help="Distillation epochs (64 photographs each).")
    parser.add_argument("--image-size", type=int, default=64, help="Distillation crop size.")
    parser.add_argument("--lr", type=float, default=None, help="Distillation learning rate (default: cg-compress's).")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads.")
    parser.add_argument("--rounds", type=int, default=9, help="Interleaved timing rounds (medians are reported).")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.work.expanduser()
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()

    started = time.perf_counter()
    teacher_path = teacher_checkpoint(work, args)
    teacher_seconds = time.perf_counter() - started
    photos = work / "data" / "trainA"  # the teacher's input domain; calibration uses it too, never the held-out ones
    student_path = work / f"{teacher_path.stem}_{teacher_path.parent.name}_student_r{args.ratio:g}.pt"
    started = time.perf_counter()
    result = compress(teacher_path, photos, output=student_path, ratio=args.ratio, epochs=args.epochs,
                      image_size=args.image_size, lr=args.lr, seed=0, progress=False,
                      resume=(student_path.with_name(f"{student_path.stem}_compress") / "compress_state.pt").exists())
    distill_seconds = time.perf_counter() - started
    choice = result.choice

    teacher = load_generator(teacher_path)
    student = load_generator(student_path)
    record: dict = {
        "command": " ".join(["python", "benchmarks/compress.py", *sys.argv[1:]]),
        "environment": describe_machine(),
        "load_average_1_5_15_before": [round(v, 2) for v in load_before],
        "teacher": {"checkpoint": str(teacher_path), "architecture": teacher.description,
                    "macs_256": choice.teacher_cost.macs, "params": choice.teacher_cost.params,
                    "trained_seconds_this_run": round(teacher_seconds, 1),
                    "cg_train_options": teacher.meta.get("options"), "cg_train_epochs": teacher.meta.get("epoch")},
        "student": {"checkpoint": str(student_path), "architecture": student.description,
                    "macs_256": choice.cost.macs, "params": choice.cost.params, "choice": choice.describe(),
                    "distill_epochs": result.epochs_done, "distill_steps": result.global_step,
                    "distill_crop": args.image_size, "distill_seconds_this_run": round(distill_seconds, 1),
                    "final_losses": result.losses},
        "macs_ratio": round(choice.ratio, 2),
        "params_ratio": round(choice.teacher_cost.params / choice.cost.params, 2),
        "macs_512": {"teacher": count_cost(teacher.config, 512).macs, "student": count_cost(student.config, 512).macs},
        "held_out_photographs": list(HELD_OUT_PHOTOGRAPHS),
        "quality_student_vs_teacher_pytorch_fp32": {str(s): quality(teacher.model, student.model, s) for s in SIZES},
    }

    files = {}
    for label, checkpoint in (("teacher", teacher_path), ("student", student_path)):
        for precision in ("fp32", "int8"):
            # Named after the run folder too: every cg-train teacher is a G_AB.pt.
            path = work / f"{checkpoint.parent.name}_{checkpoint.stem}_{precision}.onnx"
            if not path.exists():
                export_onnx(checkpoint, path, OnnxExportOptions(
                    int8=precision == "int8", calib=work / "data" / "trainA" if precision == "int8" else None))
            files[f"{label} {precision}"] = path

    inputs = {size: to_model_input([held_out(size)[0][1]]) for size in SIZES}
    runners = {label: OnnxRuntimeRunner(path, threads=args.threads) for label, path in files.items()}
    samples: dict[tuple[str, int], list[float]] = {(label, size): [] for label in files for size in SIZES}
    parity = {}
    try:
        for runner in runners.values():
            runner.activate()
        for label, runner in runners.items():
            for size in SIZES:
                runner(inputs[size])  # warm-up (allocations, kernel choice)
            parity[label] = {str(s): onnx_psnr(runner, teacher.model, s) for s in SIZES}
        for _ in range(args.rounds):
            for size in SIZES:
                for label, runner in runners.items():
                    began = time.perf_counter()
                    runner(inputs[size])
                    samples[(label, size)].append((time.perf_counter() - began) * 1000)
    finally:
        for runner in runners.values():
            runner.deactivate()
    latency = {label: {str(s): round(statistics.median(samples[(label, s)]), 2) for s in SIZES} for label in files}
    record["onnxruntime_latency_ms_median"] = latency
    record["onnxruntime_psnr_db_vs_teacher_pytorch_fp32"] = parity
    record["speedup_student_vs_teacher"] = {
        precision: {str(s): round(latency[f"teacher {precision}"][str(s)] / latency[f"student {precision}"][str(s)], 2)
                    for s in SIZES} for precision in ("fp32", "int8")}
    record["timing"] = (f"ONNX Runtime CPU, {args.threads} intra-op thread(s), {args.rounds} interleaved rounds "
                        "(every row once per round), median; input a held-out photograph")
    record["load_average_1_5_15_after"] = [round(v, 2) for v in os.getloadavg()]
    record["notes"] = [
        "The machine was shared with other jobs during this run (see the load averages, on 2 cores): absolute "
        "latencies are contended; the ratios come from one interleaved run.",
        "The 9-block ngf-64 teacher target (>= 10x fewer MACs, >= 30 dB, >= 8x lower latency) needs a GPU to train "
        "the teacher; none was lent to this task, so it is not measured here.",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(to_markdown(record))
    print(f"written {args.output}")


def to_markdown(record: dict) -> str:
    quality = record["quality_student_vs_teacher_pytorch_fp32"]
    latency, parity = record["onnxruntime_latency_ms_median"], record["onnxruntime_psnr_db_vs_teacher_pytorch_fp32"]
    lines = [
        f"teacher: {record['teacher']['architecture']}, {record['teacher']['macs_256'] / 1e9:.2f} G MACs at 256x256, "
        f"{record['teacher']['params'] / 1e6:.3f} M params",
        f"student: {record['student']['architecture']}, {record['student']['macs_256'] / 1e9:.3f} G MACs, "
        f"{record['student']['params'] / 1e3:.1f} K params: {record['macs_ratio']}x fewer MACs, "
        f"{record['params_ratio']}x fewer params",
        f"student vs teacher (PyTorch fp32, held-out {', '.join(record['held_out_photographs'])}): "
        + "; ".join(f"{s}x{s} PSNR {q['psnr_db']} dB, SSIM {q['ssim']}" for s, q in quality.items()),
        "",
        "| ONNX Runtime | 256x256 ms | 512x512 ms | PSNR vs teacher 256 / 512 |",
        "|---|---|---|---|",
    ]
    for label in latency:
        lines.append(f"| {label} | {latency[label]['256']} | {latency[label]['512']} | "
                     f"{parity[label]['256']} / {parity[label]['512']} dB |")
    speed = record["speedup_student_vs_teacher"]
    lines.append("")
    lines.append("student speed-up: " + "; ".join(f"{p} {v['256']}x at 256, {v['512']}x at 512" for p, v in speed.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
