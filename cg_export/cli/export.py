"""``cg-export``: checkpoints to ONNX (and, as they land, TensorRT), verified against PyTorch."""

from __future__ import annotations

from pathlib import Path

import typer

from cg_export.cli.aliases import Alias, with_aliases
from cg_export.cli.common import given, new_app, parse_size, reports_errors
from cg_export.cli.deploy import register as register_deploy_command
from cg_export.cli.info import register as register_info_command
from cg_export.cli.openvino import register as register_openvino_commands
from cg_export.cli.options import (
    arch_option,
    batch_option,
    calib_method_option,
    fp16_option,
    int8_option,
    min_psnr_option,
    opset_option,
    output_option,
    size_option,
    threads_option,
    verify_option,
)
from cg_export.cli.printer import echo, print_parity, print_written
from cg_export.cli.trt import register as register_trt_commands
from cg_export.cli.version import run_app
from cg_export.export.defaults import MAX_BATCH, VERIFY_PHOTOS_LIMIT

app = new_app("Export CycleGAN generators to ONNX, checked against PyTorch on real photographs.")


@app.callback()
def _main() -> None:
    """Export CycleGAN generators to ONNX, checked against PyTorch on real photographs."""


@app.command("onnx", cls=with_aliases(Alias("--static", "--size")))
@reports_errors
def onnx_command(
    checkpoint: Path = typer.Argument(..., help="Generator checkpoint: ours (.pt), pytorch-CycleGAN-and-pix2pix "
                                      "(latest_net_G_A.pth), PyTorch-GAN (G_AB_<epoch>.pth), CUT/FastCUT "
                                      "(latest_net_G.pth) or U-GAT-IT (<dataset>_params_latest.pt)."),
    output: Path | None = output_option("Output .onnx (default: beside the checkpoint)."),
    opset: int | None = opset_option(),
    static_size: str | None = size_option("Fix the graph's height and width to this size (default: dynamic)"),
    batch: int | None = batch_option(f"Fix the graph's batch: images per inference call, 1 to {MAX_BATCH} "
                                     "(default: dynamic)."),
    fp16: bool = fp16_option("Half precision, InstanceNorm kept in fp32, float32 I/O."),
    int8: bool = int8_option("Static int8 (QDQ) for ONNX Runtime CPUs and TensorRT; needs --calib."),
    calib: Path | None = typer.Option(None, help="Folder of your own photographs to calibrate --int8 on."),
    calib_method: str | None = calib_method_option(),
    uint8_io: bool = typer.Option(False, "--uint8-io", help="Take and return uint8 NHWC RGB images (camera bytes)."),
    verify: bool = verify_option("Check ONNX Runtime against PyTorch first."),
    verify_photos: Path | None = typer.Option(None, help="Also verify on your own photographs in this folder "
                                              f"(the first {VERIFY_PHOTOS_LIMIT})."),
    min_psnr_db: float | None = min_psnr_option(),
    threads: int | None = threads_option(),
    arch: str | None = arch_option(),
    direction: str | None = typer.Option(None, help="A2B or B2A: which generator of a file holding both "
                                         "(U-GAT-IT's *_params_latest.pt; default A2B)."),
) -> None:
    """Export a generator checkpoint to ONNX and verify it on real photographs."""
    from cg_export.export import run_export
    from cg_export.export.onnx import OnnxExportOptions
    from cg_export.models import load_generator

    # Every option is checked here, before the checkpoint is loaded.
    options = OnnxExportOptions(**given(
        opset=opset, static_size=parse_size(static_size, "--size") if static_size else None, batch=batch, fp16=fp16,
        int8=int8, calib=calib, calib_method=calib_method, uint8_io=uint8_io, verify=verify, min_psnr_db=min_psnr_db,
        verify_photos=verify_photos, threads=threads,
    ))
    generator = load_generator(checkpoint, arch=arch, direction=direction)
    echo("loaded", f"{checkpoint} ({generator.source_format}, sha256 {generator.sha256[:12]})")
    echo("detected" if arch is None else "arch", generator.description)
    for note in generator.notes:
        echo("note", note)
    outcome = run_export("onnx", generator, output, options)
    result = outcome.result
    for note in outcome.notes:
        echo("note", note)
    shape = f"{'static ' + static_size if static_size else 'dynamic'} size, {'batch ' + str(batch) if batch else 'dynamic batch'}"
    kind = result.precision + (", uint8 I/O" if options.uint8_io else "")
    echo("exported", f"{kind}, opset {result.opset}, {shape}, in {result.export_seconds:.1f} s")
    print_parity(result.parity, result.precision, "PyTorch", min_psnr_db)
    print_written(outcome)


@app.command("init")
@reports_errors
def init_command(
    arch: str = typer.Argument(..., help="Architecture name, e.g. resnet_9blocks, resnet_upsample, unet_256."),
    output: Path = output_option("Checkpoint file to write (.pt).", required=True),
    ngf: int | None = typer.Option(None, help="Width of the first layer (default: the architecture's)."),
    n_blocks: int | None = typer.Option(None, help="Residual blocks (ResNet architectures)."),
    seed: int = typer.Option(0, help="Random seed of the initialisation."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file at -o."),
) -> None:
    """Write an untrained generator (CycleGAN's N(0, 0.02) init): for trying the pipeline, tests and benchmarks."""
    from cg_export.errors import CgExportError

    if output.exists() and not force:
        raise CgExportError(f"{output} already exists; pass --force to replace it")
    if output.is_dir():
        raise CgExportError(f"-o {output}: is a folder; name the .pt file to write")
    import torch

    from cg_export.models import create_generator, describe_architecture, save_generator
    from cg_export.models.init import init_weights

    kwargs = {k: v for k, v in {"ngf": ngf, "n_blocks": n_blocks}.items() if v is not None}
    torch.manual_seed(seed)
    model = init_weights(create_generator(arch, **kwargs))
    save_generator(model, output, meta={"epoch": 0, "step": 0, "untrained": True, "seed": seed})
    echo("wrote", f"{output}: untrained {describe_architecture(model.config)}")


@app.command("list")
def list_command() -> None:
    """List the generator architectures that can be built or detected, then the model formats (what each file is,
    what runs it, its precisions, and whether this machine can make and verify it)."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from cg_export.formats import FORMATS
    from cg_export.models import create_generator, describe_architecture, list_generators
    from cg_export.models.safety import parameter_count

    names = list_generators()
    width = max(map(len, names))
    typer.echo("architectures")
    for name in names:
        with torch.device("meta"):  # shapes only: nothing is allocated to describe an architecture
            model = create_generator(name)
        typer.echo(f"{name:<{width}}  {describe_architecture(model.config)}, "
                   f"{parameter_count(model) / 1e6:.1f} M parameters")
    console = Console(highlight=False, width=120)
    formats = Table(box=None, pad_edge=False, title="\nformats (cg-export FORMAT writes one; every tool opens them)",
                    title_justify="left")
    for column in ("format", "files", "runtime", "precisions", "runs on", "made and verified here"):
        formats.add_column(column, overflow="fold")
    for row in FORMATS:
        missing = row.missing()
        formats.add_row(row.name, "/".join(row.suffixes), row.runtime, ", ".join(row.precisions), row.runs_on,
                        "yes" if missing is None else f"no: {missing}")
    console.print(formats)


register_trt_commands(app)
register_deploy_command(app)
register_openvino_commands(app)
register_info_command(app)


def main() -> None:
    """Console-script entry point of ``cg-export`` (also ``python -m cg_export``)."""
    run_app(app, "cg-export")


if __name__ == "__main__":
    main()
