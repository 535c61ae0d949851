"""``cg-train``: train CycleGAN on two folders of unpaired images; a thin layer over :func:`training.trainer.train`."""

from __future__ import annotations

from pathlib import Path

from cg_export.threads import prefer_passive_waiting

# Before training.options imports torch: libgomp reads its wait policy once, when it loads (see prefer_passive_waiting).
prefer_passive_waiting()

import typer  # noqa: E402

from cg_export.cli.aliases import Alias, with_aliases  # noqa: E402
from cg_export.cli.common import new_app, parse_size, reports_errors  # noqa: E402
from cg_export.cli.options import (  # noqa: E402
    batch_option,
    device_option,
    output_option,
    progress_option,
    size_option,
    threads_option,
)
from cg_export.cli.version import run_app  # noqa: E402
from training.errors import TrainingOptionError  # noqa: E402
from training.options import TrainOptions  # noqa: E402
from training.trainer import DEFAULT_OUT  # noqa: E402

#: The defaults the help quotes: the library's own (every unset option reaches it as ``None``).
DEFAULTS = TrainOptions()


def _on_off(value: bool) -> str:
    return "on" if value else "off"


app = new_app("Train CycleGAN on unpaired images; writes G_AB.pt and G_BA.pt that cg-export onnx takes as they are.")


#: The spellings cg-train had before the shared vocabulary (cg_export.cli.options).
OLD_SPELLINGS = (Alias("--out", "--output"), Alias("--image-size", "--size"), Alias("--batch-size", "--batch"))


@app.command(cls=with_aliases(*OLD_SPELLINGS))
@reports_errors
def train_command(
    dataroot: Path = typer.Argument(..., help="Data root holding trainA/ and trainB/ (or train/A/ and train/B/)."),
    name: str = typer.Option(..., "--name", help="Run name: outputs go to OUTPUT/NAME/."),
    out: Path | None = output_option(f"Folder of runs (default: {DEFAULT_OUT})."),
    epochs: int | None = typer.Option(None, help=f"Total epochs (default: {DEFAULTS.epochs})."),
    decay_epoch: int | None = typer.Option(None, help="Epoch from which the learning rate decays linearly to zero at "
                                           f"--epochs (default: half of --epochs, {DEFAULTS.epochs // 2})."),
    image_size: str | None = size_option("Size of the square training crops, N or NxN",
                                         default=(DEFAULTS.image_size, DEFAULTS.image_size)),
    batch_size: int | None = batch_option("Images per domain per training step, per process under torchrun "
                                          f"(default: {DEFAULTS.batch_size})."),
    arch: str | None = typer.Option(None, help=f"Generator architecture (default: {DEFAULTS.arch}; also "
                                    "resnet_upsample, resnet_6blocks, unet_256, ...; see cg-export list)."),
    n_blocks: int | None = typer.Option(None, help="Residual blocks of a ResNet generator (default: the arch's)."),
    ngf: int | None = typer.Option(None, help="Width of the generator's first layer (default: the arch's)."),
    ndf: int | None = typer.Option(None, help=f"Width of the discriminators' first layer (default: {DEFAULTS.ndf})."),
    d_layers: int | None = typer.Option(None, help="Stride-2 stages of the PatchGAN discriminators: 3 judges 70x70 "
                                        "patches, 2 34x34, 1 16x16 (default: "
                                        f"{DEFAULTS.d_layers}, the paper's)."),
    lr: float | None = typer.Option(None, help=f"Adam learning rate (default: {DEFAULTS.lr:g})."),
    lambda_cyc: float | None = typer.Option(None, help="Cycle-consistency (L1) weight "
                                            f"(default: {DEFAULTS.lambda_cyc:g})."),
    lambda_id: float | None = typer.Option(None, help="Identity (L1) weight, absolute, 0 turns it off "
                                           f"(default: {DEFAULTS.lambda_id:g})."),
    pool_size: int | None = typer.Option(None, help="Replay buffer size per direction, 0 = off "
                                         f"(default: {DEFAULTS.pool_size})."),
    device: str | None = device_option(),
    amp: bool | None = typer.Option(None, "--amp/--no-amp",
                                    help=f"Mixed precision on CUDA (default: {_on_off(DEFAULTS.amp)})."),
    channels_last: bool | None = typer.Option(None, "--channels-last/--no-channels-last",
                                              help="NHWC memory format on CUDA "
                                                   f"(default: {_on_off(DEFAULTS.channels_last)})."),
    seed: int | None = typer.Option(None, help="Random seed (default: drawn, recorded, and reused on --resume)."),
    resume: bool = typer.Option(False, "--resume", help="Continue OUT/NAME from its last save."),
    save_every: int | None = typer.Option(None, help="Also save every this many steps (always: every epoch)."),
    workers: int | None = typer.Option(None, help="Image-decoding processes (default: 0 on CPU, 4 on CUDA)."),
    log_every: int | None = typer.Option(None, help="Log averaged losses every this many steps "
                                         f"(default: {DEFAULTS.log_every})."),
    samples: int | None = typer.Option(None, help="Images per domain in each epoch's sample grid "
                                       f"(default: {DEFAULTS.samples})."),
    progress: bool = progress_option(),
    threads: int | None = threads_option(),
) -> None:
    """Train CycleGAN (LSGAN, cycle and identity L1 losses, PatchGAN (70x70), replay buffer, linear LR decay).

    On several GPUs or machines start it with torchrun: torchrun --nproc-per-node 4 -m training.cli DATA --name N
    (each process then trains on cuda:LOCAL_RANK).
    """
    from cg_export.threads import torch_threads
    from training.engine import interrupted_line
    from training.trainer import STATE_FILE, train

    try:
        # PyTorch's default (one thread per machine core) is many times slower on a shared or quota-limited machine.
        with torch_threads(threads):
            train(
                dataroot, name, out=out, resume=resume, progress=progress,
                epochs=epochs, decay_epoch=decay_epoch, image_size=square_side(image_size), batch_size=batch_size,
                arch=arch, n_blocks=n_blocks, ngf=ngf, ndf=ndf, d_layers=d_layers, lr=lr, lambda_cyc=lambda_cyc,
                lambda_id=lambda_id, pool_size=pool_size, device=device, amp=amp, channels_last=channels_last,
                seed=seed, save_every=save_every, workers=workers, log_every=log_every, samples=samples,
            )
    except KeyboardInterrupt as exc:
        typer.echo(interrupted_line((out or DEFAULT_OUT).expanduser() / name / STATE_FILE), err=True)
        raise typer.Exit(128 + getattr(exc, "signal_number", 2)) from None  # SIGTERM 143, SIGINT 130


def square_side(size: str | None) -> int | None:
    """``--size N`` or ``NxN`` -> ``N``; training crops are square.

    Raises:
        TrainingOptionError: a size that is not square.
    """
    if size is None:
        return None
    height, width = parse_size(size, "--size")
    if height != width:
        raise TrainingOptionError("image_size", size, "training crops are square: give N or NxN")
    return height


def main() -> None:
    """Console-script entry point of ``cg-train``."""
    run_app(app, "cg-train")


if __name__ == "__main__":
    main()
