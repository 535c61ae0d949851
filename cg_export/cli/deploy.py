"""``cg-export deploy``: the fastest verified artifact for this machine (or a Jetson), chosen on your photographs.

Thin: options go one-to-one to :func:`cg_export.deploy.deploy`; unset options stay ``None`` so the library owns
every default. ``register(app)`` adds the command to the ``cg-export`` app.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from cg_export.cli.aliases import Alias, deprecation, with_aliases
from cg_export.cli.common import parse_size, parse_size_range, reports_errors
from cg_export.cli.options import (
    arch_option,
    duration_option,
    iterations_option,
    json_option,
    min_psnr_option,
    output_option,
    photos_option,
    size_option,
    size_range_option,
    threads_option,
    warmup_option,
)
from cg_export.errors import CgExportError
from cg_export.export.defaults import DEPLOY_OUTPUT, DEPLOY_SIZE, DEPLOY_TARGET


@reports_errors
def deploy_command(
    checkpoint: Path = typer.Argument(..., help="Your generator checkpoint (ours, pytorch-CycleGAN-and-pix2pix, "
                                      "PyTorch-GAN)."),
    photos: Path = photos_option("A folder of your own photographs: part calibrates int8, the rest is held out to "
                                 "verify every candidate on.", required=True),
    output: Path | None = output_option(f"Deployment folder (default: {DEPLOY_OUTPUT}); an earlier one is replaced "
                                        "whole, only when the new one is complete."),
    size: str | None = size_option("Size to verify and time at", default=DEPLOY_SIZE),
    min_psnr_db: float | None = min_psnr_option(),
    target: str | None = typer.Option(None, help=f"Where the deployment runs: local (what this machine runs) or "
                                      "jetson (ONNX made and verified here, TensorRT finished on the device) "
                                      f"(default: {DEPLOY_TARGET})."),
    student: Path | None = typer.Option(None, help="A distilled student checkpoint (cg-compress): its "
                                        "candidates too, judged against the teacher."),
    compress: float | None = typer.Option(None, help="Distil a student with 1/R of the MACs first (needs "
                                          "cg-compress)."),
    candidates: list[str] | None = typer.Option(None, "--candidate", help="Only this candidate (repeat for "
                                                "several), e.g. onnx-int8 (default: all for the target)."),
    keep_all: bool = typer.Option(False, "--keep-all", help="Keep every candidate's artifact under candidates/."),
    engine_sizes: str | None = size_range_option("Smallest and largest input TensorRT engines take, for artifacts "
                                                 "also run at other sizes (default: --size only)."),
    engine_min_size: str | None = typer.Option(None, "--engine-min-size", hidden=True),
    engine_max_size: str | None = typer.Option(None, "--engine-max-size", hidden=True),
    json_path: Path | None = json_option("Write the decision as JSON; with -, the rest goes to stderr", stdout=True),
    warmup: int | None = warmup_option("candidate"),
    iterations: int | None = iterations_option("candidate"),
    duration_s: float | None = duration_option("candidate"),
    threads: int | None = threads_option(),
    arch: str | None = arch_option("Force the architecture of the checkpoints."),
) -> None:
    """Export every candidate (PyTorch, ONNX fp32/fp16/int8, OpenVINO, TensorRT where installed), verify each on
    your held-out photographs, time each, and keep the fastest that still draws the same pictures."""
    from cg_export.deploy import deploy
    from cg_export.files import InputFiles, atomic_output, check_output_file

    to_stdout = str(json_path) == "-"

    def say(label: str, text: str) -> None:
        stream = sys.stderr if to_stdout else sys.stdout
        print(f"{label:<10}{text}", file=stream, flush=True)

    if json_path is not None and not to_stdout:
        check_output_file(json_path, "--json")
        InputFiles([checkpoint, *([student] if student else [])]).refuse(json_path, "--json")
    sizes = _engine_sizes(engine_sizes, engine_min_size, engine_max_size)
    # A terminated run (kill, a CI timeout) cleans up like Ctrl-C through reports_errors' signal policy.
    result = deploy(
        checkpoint, photos, output, size=parse_size(size, "--size") if size else None, min_psnr_db=min_psnr_db,
        target=target, student=student, candidates=candidates or None, keep_all=keep_all,
        engine_sizes=sizes, warmup=warmup,
        iterations=iterations, duration_s=duration_s, arch=arch, threads=threads, compress=compress, say=say,
    )
    if json_path is not None:
        manifest = result.manifest
        decision = {key: manifest[key] for key in ("artifact", "candidate", "backend", "runtime", "precision", "size",
                                                    "target", "decision", "latency_ms", "psnr_per_photo_db",
                                                    "finish_on_device")}
        decision["folder"] = str(result.folder)
        text = json.dumps(decision, indent=2)
        if to_stdout:
            typer.echo(text)
        else:
            with atomic_output(json_path) as partial:
                partial.write_text(text + "\n")
            say("wrote", str(json_path))
    if not to_stdout:
        say("decision", result.decision.why)
        for command in result.finish_on_device:
            say("on device", command)


def _engine_sizes(size_range: str | None, old_min: str | None, old_max: str | None
                  ) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """``--size-range`` parsed, or the deprecated ``--engine-min-size`` / ``--engine-max-size`` pair it replaced."""
    if old_min is None and old_max is None:
        return parse_size_range(size_range, "--size-range") if size_range else None
    deprecation("--engine-min-size/--engine-max-size", "--size-range MINHxMINW:MAXHxMAXW")
    if size_range is not None or old_min is None or old_max is None:
        raise CgExportError("give --size-range MINHxMINW:MAXHxMAXW (or the old --engine-min-size and "
                            "--engine-max-size together)")
    return parse_size(old_min, "--engine-min-size"), parse_size(old_max, "--engine-max-size")


def register(app: typer.Typer) -> None:
    """Add ``deploy`` to the ``cg-export`` app."""
    # deploy's bare --json printed the decision on stdout: now --json PATH, where - is stdout.
    app.command("deploy", cls=with_aliases(Alias("--json", "--json", bare="-")))(deploy_command)
