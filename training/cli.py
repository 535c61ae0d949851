"""``cg-train``: train CycleGAN on two folders of unpaired images; a thin layer over :func:`training.trainer.train`."""

from __future__ import annotations

from pathlib import Path

from cg_export.threads import prefer_passive_waiting

# Before training.options imports torch: libgomp reads its wait policy once, when it loads (see prefer_passive_waiting).
prefer_passive_waiting()

import typer  # noqa: E402

from cg_export.cli.common import new_app, reports_errors  # noqa: E402
from cg_export.cli.options import threads_option  # noqa: E402
from cg_export.cli.version import run_app  # noqa: E402
from training.options import TrainOptions  # noqa: E402

#: The defaults the help quotes: the library's own (every unset option reaches it as ``None``).
DEFAULTS = TrainOptions()


def _on_off(value: bool) -> str:
    return "on" if value else "off"


app = new_app("Train CycleGAN on unpaired images; writes G_AB.pt and G_BA.pt that cg-export onnx takes as they are.")


@app.command()
@reports_errors
def train_command(
    dataroot: Path = typer.Argument(..., help="Data root holding trainA/ and trainB/ (or train/A/ and train/B/)."),
    name: str = typer.Option(..., "--name", help="Run name: outputs go to OUT/NAME/."),
    out: Path | None = typer.Option(None, "--out", help="Folder of runs (default: runs)."),
    epochs: int | None = typer.Option(None, help=f"Total epochs (default: {DEFAULTS.epochs})."),
    decay_epoch: int | None = typer.Option(None, help="Epoch from which the learning rate decays linearly to zero at "
                                           f"--epochs (default: half of --epochs, {DEFAULTS.epochs // 2})."),
    image_size: int | None = typer.Option(None, help="Side of the square training crops "
                                          f"(default: {DEFAULTS.image_size})."),
    batch_size: int | None = typer.Option(None, help="Images per domain per step, per process under "
                                          f"torchrun (default: {DEFAULTS.batch_size})."),
    arch: str | None = typer.Option(None, help=f"Generator architecture (default: {DEFAULTS.arch}; also "
                                    "resnet_upsample, resnet_6blocks, unet_256, ...; see cg-export list)."),
    n_blocks: int | None = typer.Option(None, help="Residual blocks of a ResNet generator (default: the arch's)."),
    ngf: int | None = typer.Option(None, help="Width of the generator's first layer (default: 64)."),
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
    device: str | None = typer.Option(None, help=f"auto, cpu, cuda or cuda:N (default: {DEFAULTS.device} = CUDA if "
                                      "available; under torchrun each process takes cuda:LOCAL_RANK)."),
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
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar per epoch."),
    threads: int | None = threads_option(),
) -> None:
    """Train CycleGAN (LSGAN, cycle and identity L1 losses, PatchGAN (70x70), replay buffer, linear LR decay).

    On several GPUs or machines start it with torchrun: torchrun --nproc-per-node 4 -m training.cli DATA --name N
    """
    from cg_export.errors import CgExportError
    from cg_export.threads import threads as thread_settings
    from training.trainer import DEFAULT_OUT, STATE_FILE, train

    if threads is not None and threads < 1:
        raise CgExportError(f"--threads {threads}: expected 1 or more")
    # PyTorch's default (one thread per machine core) is many times slower on a shared or quota-limited machine.
    try:
        with thread_settings(threads):
            train(
                dataroot, name, out=out, resume=resume, progress=progress,
                epochs=epochs, decay_epoch=decay_epoch, image_size=image_size, batch_size=batch_size, arch=arch,
                n_blocks=n_blocks, ngf=ngf, ndf=ndf, d_layers=d_layers, lr=lr, lambda_cyc=lambda_cyc, lambda_id=lambda_id,
                pool_size=pool_size, device=device, amp=amp, channels_last=channels_last, seed=seed,
                save_every=save_every, workers=workers, log_every=log_every, samples=samples,
            )
    except KeyboardInterrupt as exc:
        saved = (out or DEFAULT_OUT).expanduser() / name / STATE_FILE
        hint = "the last save is intact: continue with the same command and --resume" if saved.exists() else (
            "nothing was saved yet: start it again without --resume")
        typer.echo(f"interrupted; {hint}", err=True)
        raise typer.Exit(128 + getattr(exc, "signal_number", 2)) from None  # SIGTERM 143, SIGINT 130


def main() -> None:
    """Console-script entry point of ``cg-train``."""
    run_app(app, "cg-train")


if __name__ == "__main__":
    main()
