"""``cg-demo``: the whole pipeline on embedded data; a thin layer over :func:`cg_demo.runner.run_demo`."""

from __future__ import annotations

from pathlib import Path

import typer

from cg_demo.plan import DEFAULT_OUTPUT, DEFAULT_SEED
from cg_export.cli.aliases import Alias, with_aliases
from cg_export.cli.common import new_app, reports_errors
from cg_export.cli.options import device_option, output_option, progress_option, threads_option
from cg_export.cli.version import run_app

app = new_app("Train, export, verify, benchmark and stylize on data the package makes itself; ends with a report.",
              no_args_is_help=False)


@app.command(cls=with_aliases(Alias("--out", "--output")))
@reports_errors
def demo(
    out: Path | None = output_option(f"Folder for the data, models and report: new, empty, or an earlier cg-demo's "
                                     f"(replaced) (default: {DEFAULT_OUTPUT})."),
    quick: bool = typer.Option(False, "--quick", help="A smaller model, less training, one benchmark size: about a "
                               "minute on a 2-core CPU instead of about four."),
    device: str | None = device_option(),
    seed: int | None = typer.Option(None, help=f"Seed of the data and the training (default: {DEFAULT_SEED})."),
    pretrained: bool = typer.Option(True, "--pretrained/--no-pretrained", help="Also show the shipped pretrained "
                                    "generator (the same recipe, trained for longer) and deploy whichever of the two "
                                    "is closer to the true poster prints."),
    progress: bool = progress_option(),
    threads: int | None = threads_option(),
) -> None:
    """Make the demo dataset, train a small CycleGAN, distil a smaller student from it (cg-compress), deploy it
    with cg-export deploy (ONNX fp32 / fp16 / int8, TensorRT and OpenVINO when installed, each verified, the fastest
    that passes chosen), benchmark every file against PyTorch, stylize photographs the model never saw, and write
    report.md, report.html and report.json."""
    from cg_demo.runner import run_demo

    run_demo(DEFAULT_OUTPUT if out is None else out, quick=quick, device=device, seed=seed, progress=progress,
             pretrained=pretrained, threads=threads)


def main() -> None:
    """Console-script entry point of ``cg-demo``."""
    run_app(app, "cg-demo")


if __name__ == "__main__":
    main()
