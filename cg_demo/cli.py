"""``cg-demo``: the whole pipeline on embedded data; a thin layer over :func:`cg_demo.runner.run_demo`."""

from __future__ import annotations

from pathlib import Path

import typer

from cg_export.cli.common import new_app, reports_errors
from cg_export.cli.version import run_app

app = new_app("Train, export, verify, benchmark and stylize on data the package makes itself; ends with a report.",
              no_args_is_help=False)


@app.command()
@reports_errors
def demo(
    out: Path = typer.Option(Path("cg-demo"), "--out", help="Folder for the data, models and report: new, empty, "
                             "or an earlier cg-demo's (replaced)."),
    quick: bool = typer.Option(False, "--quick", help="A smaller model, less training, one benchmark size: about a "
                               "minute on a 2-core CPU instead of about four."),
    device: str | None = typer.Option(None, help="Training device: auto, cpu, cuda, cuda:N (default: auto = CUDA "
                                      "when PyTorch sees a GPU)."),
    seed: int | None = typer.Option(None, help="Seed of the data and the training (default: 0)."),
    pretrained: bool = typer.Option(True, "--pretrained/--no-pretrained", help="Also show the shipped pretrained "
                                    "generator (the same recipe, trained for longer) and deploy whichever of the two "
                                    "is closer to the true poster prints."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Make the demo dataset, train a small CycleGAN, distil a smaller student from it (cg-compress), deploy it
    with cg-export deploy (ONNX fp32 / fp16 / int8, TensorRT and OpenVINO when installed, each verified, the fastest
    that passes chosen), benchmark every file against PyTorch, stylize photographs the model never saw, and write
    report.md, report.html and report.json."""
    from cg_demo.runner import run_demo

    run_demo(out, quick=quick, device=device, seed=seed, progress=progress, pretrained=pretrained)


def main() -> None:
    """Console-script entry point of ``cg-demo``."""
    run_app(app, "cg-demo")


if __name__ == "__main__":
    main()
