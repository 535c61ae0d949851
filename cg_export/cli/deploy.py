"""``cg-export deploy``: the fastest verified artifact for this machine (or a Jetson), chosen on your photographs.

Thin: options go one-to-one to :func:`cg_export.deploy.deploy`; unset options stay ``None`` so the library owns
every default. ``register(app)`` adds the command to the ``cg-export`` app.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import typer

from cg_export.cli.common import parse_size, reports_errors


@reports_errors
def deploy_command(
    checkpoint: Path = typer.Argument(..., help="Your generator checkpoint (ours, pytorch-CycleGAN-and-pix2pix, "
                                      "PyTorch-GAN)."),
    photos: Path = typer.Option(..., "--photos", help="A folder of your own photographs: part calibrates int8, the "
                                "rest is held out to verify every candidate on."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Deployment folder (default: deploy); an "
                                       "earlier one is replaced whole, only when the new one is complete."),
    size: str | None = typer.Option(None, help="HEIGHTxWIDTH to verify and time at (default: 256x256)."),
    min_psnr: float | None = typer.Option(None, help="Lowest worst-photo PSNR against PyTorch fp32, in dB "
                                          "(default: each precision's floor: 50 fp32, 40 fp16, 30 int8)."),
    target: str | None = typer.Option(None, help="local (default: what this machine runs) or jetson (ONNX made "
                                      "and verified here, TensorRT finished on the device)."),
    student: Path | None = typer.Option(None, help="A distilled student checkpoint (cg-compress): its "
                                        "candidates too, judged against the teacher."),
    compress: float | None = typer.Option(None, help="Distil a student with 1/R of the MACs first (needs "
                                          "cg-compress)."),
    candidate: list[str] | None = typer.Option(None, "--candidate", help="Only this candidate (repeat for several), "
                                               "e.g. onnx-int8 (default: all for the target)."),
    keep_all: bool = typer.Option(False, "--keep-all", help="Keep every candidate's artifact under candidates/."),
    engine_min_size: str | None = typer.Option(None, help="HEIGHTxWIDTH: smallest input TensorRT engines take "
                                               "(default: --size; give --engine-max-size too)."),
    engine_max_size: str | None = typer.Option(None, help="HEIGHTxWIDTH: largest input TensorRT engines take "
                                               "(default: --size), for artifacts also run at other sizes."),
    json_output: bool = typer.Option(False, "--json", help="Print the decision as JSON on stdout (progress on "
                                     "stderr)."),
    warmup: int | None = typer.Option(None, help="Untimed runs per candidate (default: 3)."),
    iterations: int | None = typer.Option(None, help="Timed runs per candidate (default: as many as fit in "
                                          "--duration)."),
    duration: float | None = typer.Option(None, help="Seconds of timed runs per candidate (default: 3)."),
    threads: int | None = typer.Option(None, help="CPU threads for every runtime alike (default: each runtime's "
                                       "own, every core); 1 is the fair choice on a busy machine."),
    arch: str | None = typer.Option(None, help="Force the architecture of the checkpoints."),
) -> None:
    """Export every candidate (PyTorch, ONNX fp32/fp16/int8, OpenVINO, TensorRT where installed), verify each on
    your held-out photographs, time each, and keep the fastest that still draws the same pictures."""
    from cg_export.deploy import DeployError, deploy

    def say(label: str, text: str) -> None:
        stream = sys.stderr if json_output else sys.stdout
        print(f"{label:<10}{text}", file=stream, flush=True)

    distil = None
    if compress is not None:
        if importlib.util.find_spec("training.compress") is None:
            raise DeployError("--compress needs cg-compress (training/compress.py), which this installation does "
                              "not have; distil a student with it and pass --student PATH")

        def distil(calibration: Path, student_path: Path) -> Path:
            # Training lives above cg_export; the command line joins them, the library only calls back.
            from training.compress import compress as run_compress

            return Path(run_compress(checkpoint, calibration, output=student_path, ratio=compress, report=say).student)

    engine_sizes = None
    if engine_min_size or engine_max_size:
        if not (engine_min_size and engine_max_size):
            raise DeployError("give --engine-min-size and --engine-max-size together")
        engine_sizes = (parse_size(engine_min_size, "--engine-min-size"),
                        parse_size(engine_max_size, "--engine-max-size"))
    # A terminated run (kill, a CI timeout) cleans up like Ctrl-C through reports_errors' signal policy.
    result = deploy(
        checkpoint, photos, output, size=parse_size(size, "--size") if size else None, min_psnr_db=min_psnr,
        target=target, student=student, candidates=candidate or None, keep_all=keep_all,
        engine_sizes=engine_sizes, warmup=warmup,
        iterations=iterations, duration_s=duration, arch=arch, threads=threads, distil=distil, say=say,
    )
    if json_output:
        manifest = result.manifest
        decision = {key: manifest[key] for key in ("artifact", "candidate", "backend", "runtime", "precision", "size",
                                                    "target", "decision", "latency_ms", "psnr_per_photo_db",
                                                    "finish_on_device")}
        decision["folder"] = str(result.folder)
        typer.echo(json.dumps(decision, indent=2))
    else:
        say("decision", result.decision.why)
        for command in result.finish_on_device:
            say("on device", command)


def register(app: typer.Typer) -> None:
    """Add ``deploy`` to the ``cg-export`` app."""
    app.command("deploy")(deploy_command)
