"""``cg-export``: checkpoints to ONNX (and, as they land, TensorRT), verified against PyTorch."""

from __future__ import annotations

from pathlib import Path

import typer

from cg_export.cli.common import given, new_app, parse_size, reports_errors
from cg_export.cli.deploy import register as register_deploy_command
from cg_export.cli.openvino import register as register_openvino_commands
from cg_export.cli.options import (
    arch_option,
    calib_method_option,
    fp16_option,
    int8_option,
    min_psnr_option,
    opset_option,
    output_option,
    verify_option,
)
from cg_export.cli.printer import echo, print_parity
from cg_export.cli.trt import register as register_trt_commands

app = new_app("Export CycleGAN generators to ONNX, checked against PyTorch on real photographs.")


@app.callback()
def _main() -> None:
    """Export CycleGAN generators to ONNX, checked against PyTorch on real photographs."""


@app.command("onnx")
@reports_errors
def onnx_command(
    checkpoint: Path = typer.Argument(..., help="Generator checkpoint: ours (.pt), pytorch-CycleGAN-and-pix2pix "
                                      "(latest_net_G_A.pth), PyTorch-GAN (G_AB_<epoch>.pth), CUT/FastCUT "
                                      "(latest_net_G.pth) or U-GAT-IT (<dataset>_params_latest.pt)."),
    output: Path | None = output_option("Output .onnx (default: beside the checkpoint)."),
    opset: int | None = opset_option(),
    static: str | None = typer.Option(None, help="Fix height and width, e.g. 256x256 (default: dynamic)."),
    batch: int | None = typer.Option(None, help="Fix the batch size (default: dynamic)."),
    fp16: bool = fp16_option("Half precision, InstanceNorm kept in fp32, float32 I/O."),
    int8: bool = int8_option("Static int8 (QDQ) for ONNX Runtime CPUs and TensorRT; needs --calib."),
    calib: Path | None = typer.Option(None, help="Folder of your own photographs to calibrate --int8 on."),
    calib_method: str | None = calib_method_option(),
    uint8_io: bool = typer.Option(False, "--uint8-io", help="Take and return uint8 NHWC RGB images (camera bytes)."),
    verify: bool = verify_option("Check ONNX Runtime against PyTorch first."),
    min_psnr: float | None = min_psnr_option(),
    arch: str | None = arch_option(),
    direction: str | None = typer.Option(None, help="A2B or B2A: which generator of a file holding both "
                                         "(U-GAT-IT's *_params_latest.pt; default A2B)."),
) -> None:
    """Export a generator checkpoint to ONNX and verify it on real photographs."""
    from cg_export.export.onnx import OnnxExportOptions, export_onnx
    from cg_export.models import load_generator

    options = OnnxExportOptions(**given(
        opset=opset, static_size=parse_size(static, "--static") if static else None, batch=batch, fp16=fp16,
        int8=int8, calib=calib, calib_method=calib_method, uint8_io=uint8_io, verify=verify, min_psnr_db=min_psnr,
    ))
    generator = load_generator(checkpoint, arch=arch, direction=direction)
    echo("loaded", f"{checkpoint} ({generator.source_format}, sha256 {generator.sha256[:12]})")
    echo("detected" if arch is None else "arch", generator.description)
    for note in generator.notes:
        echo("note", note)
    result = export_onnx(generator, output, options)
    size_mb = result.path.stat().st_size / 1e6
    shape = f"{'static ' + static if static else 'dynamic'} size, {'batch ' + str(batch) if batch else 'dynamic batch'}"
    echo("exported", f"{result.path} ({result.precision}, opset {result.opset}, {shape}, {size_mb:.1f} MB) "
                     f"in {result.export_seconds:.1f} s")
    print_parity(result.parity, result.precision, "PyTorch", min_psnr)


@app.command("init")
@reports_errors
def init_command(
    arch: str = typer.Argument(..., help="Architecture name, e.g. resnet_9blocks, resnet_upsample, unet_256."),
    output: Path = output_option("Checkpoint file to write (.pt).", required=True),
    ngf: int | None = typer.Option(None, help="Width of the first layer (default: the architecture's)."),
    n_blocks: int | None = typer.Option(None, help="Residual blocks (ResNet architectures)."),
    seed: int = typer.Option(0, help="Random seed of the initialisation."),
) -> None:
    """Write an untrained generator (CycleGAN's N(0, 0.02) init): for trying the pipeline, tests and benchmarks."""
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
    """List the generator architectures that can be built or detected."""
    from cg_export.models import list_generators

    for name in list_generators():
        typer.echo(name)


register_trt_commands(app)
register_deploy_command(app)
register_openvino_commands(app)


def main() -> None:
    """Console-script entry point of ``cg-export``."""
    app()


if __name__ == "__main__":
    main()
