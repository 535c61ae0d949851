"""``cg-compress``: distil a generator into a small mobile ResNet student; a thin layer over
:func:`training.compress.compress`."""

from __future__ import annotations

from pathlib import Path

import typer

from cg_export.cli.aliases import Alias, deprecation, with_aliases
from cg_export.cli.common import new_app, reports_errors
from cg_export.cli.options import (
    batch_option,
    device_option,
    output_option,
    photos_option,
    progress_option,
    size_option,
    threads_option,
)
from cg_export.cli.version import run_app
from cg_export.errors import CgExportError
from training.cli import square_side
from training.compress import DEFAULT_RATIO, CompressOptions

#: The defaults the help quotes: the library's own (every unset option reaches it as ``None``).
DEFAULTS = CompressOptions()
#: The spellings cg-compress had before the shared vocabulary (cg_export.cli.options).
OLD_SPELLINGS = (Alias("--image-size", "--size"), Alias("--batch-size", "--batch"))

app = new_app("Distil a CycleGAN generator into a mobile ResNet student with many fewer MACs; the student is a "
              "checkpoint that cg-export, cg-bench and cg-stylize take like any other.")


@app.command(cls=with_aliases(*OLD_SPELLINGS))
@reports_errors
def compress_command(
    teacher: Path = typer.Argument(..., help="Generator checkpoint to distil (any format cg-export loads)."),
    old_photos: Path | None = typer.Argument(None, hidden=True,
                                             help="The photographs folder as a second argument (old spelling)."),
    photos: Path | None = photos_option("Folder of photographs of the teacher's input domain (required)."),
    output: Path | None = output_option("Student checkpoint to write (default: TEACHER_student.pt beside it); "
                                        "the run's log, samples and state go to OUTPUT_compress/."),
    ratio: float | None = typer.Option(None, help="Largest student with at most 1/RATIO of the teacher's MACs "
                                       f"(default: {DEFAULT_RATIO:g} unless --macs or both --ngf and --n-blocks "
                                       "are given)."),
    macs: str | None = typer.Option(None, help="Largest student with at most this many MACs, e.g. 5G or 800M."),
    ngf: int | None = typer.Option(None, help="Fix the student's width (the budget picks its depth)."),
    n_blocks: int | None = typer.Option(None, help="Fix the student's residual blocks (the budget picks its width)."),
    budget_size: int | None = typer.Option(None, help="Image side at which MACs are counted "
                                           f"(default: {DEFAULTS.budget_size})."),
    discriminator: Path | None = typer.Option(None, help="The teacher's PatchGAN discriminator (latest_net_D_B.pth): "
                                              "adds GAN Compression's adversarial loss."),
    epochs: int | None = typer.Option(None, help=f"Total epochs over the photographs (default: {DEFAULTS.epochs})."),
    decay_epoch: int | None = typer.Option(None, help="Epoch from which the learning rate decays linearly to zero "
                                           "(default: half of --epochs)."),
    image_size: str | None = size_option("Size of the square training crops, N or NxN",
                                         default=(DEFAULTS.image_size, DEFAULTS.image_size)),
    batch_size: int | None = batch_option(f"Photographs per step (default: {DEFAULTS.batch_size})."),
    lr: float | None = typer.Option(None, help=f"Adam learning rate (default: {DEFAULTS.lr:g})."),
    lambda_recon: float | None = typer.Option(None, help="L1 weight to the teacher's output "
                                              f"(default: {DEFAULTS.lambda_recon:g})."),
    lambda_distill: float | None = typer.Option(None, help="Feature distillation weight "
                                                f"(default: {DEFAULTS.lambda_distill:g})."),
    lambda_gan: float | None = typer.Option(None, help="Adversarial weight with --discriminator "
                                            f"(default: {DEFAULTS.lambda_gan:g})."),
    device: str | None = device_option(),
    amp: bool | None = typer.Option(None, "--amp/--no-amp", help="Mixed-precision training on CUDA "
                                    f"(default: {'on' if DEFAULTS.amp else 'off'})."),
    seed: int | None = typer.Option(None, help="Random seed (default: drawn, recorded, and reused on --resume)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run of OUTPUT from its last save."),
    save_every: int | None = typer.Option(None, help="Also save every this many steps (always: every epoch)."),
    log_every: int | None = typer.Option(None, help="Log averaged losses every this many steps "
                                         f"(default: {DEFAULTS.log_every})."),
    samples: int | None = typer.Option(None, help=f"Photographs in each epoch's sample grid "
                                       f"(default: {DEFAULTS.samples})."),
    progress: bool = progress_option(),
    threads: int | None = threads_option(),
) -> None:
    """Distil TEACHER into a depthwise-separable student (reconstruction + feature distillation [+ GAN])."""
    from cg_export.macs import parse_count
    from cg_export.threads import torch_threads
    from training.compress import STATE_FILE, compress, default_student_path, run_dir_for
    from training.engine import interrupted_line

    if old_photos is not None:
        deprecation("the PHOTOS argument", "--photos PHOTOS")
        if photos is not None:
            raise CgExportError("give the photographs once, with --photos")
        photos = old_photos
    if photos is None:
        raise CgExportError("--photos DIR is required: a folder of photographs of the teacher's input domain")
    try:
        with torch_threads(threads):
            compress(
                teacher, photos, output=output, discriminator=discriminator, resume=resume, progress=progress,
                ratio=ratio, macs=parse_count(macs) if macs is not None else None, ngf=ngf, n_blocks=n_blocks,
                budget_size=budget_size, epochs=epochs, decay_epoch=decay_epoch, image_size=square_side(image_size),
                batch_size=batch_size, lr=lr, lambda_recon=lambda_recon, lambda_distill=lambda_distill,
                lambda_gan=lambda_gan, device=device, amp=amp, seed=seed, save_every=save_every, log_every=log_every,
                samples=samples,
            )
    except KeyboardInterrupt as exc:
        # The state file, not the run folder: the folder exists from the start, before anything is saved in it.
        typer.echo(interrupted_line(run_dir_for(output or default_student_path(teacher)) / STATE_FILE), err=True)
        raise typer.Exit(128 + getattr(exc, "signal_number", 2)) from None  # SIGTERM 143, SIGINT 130


def main() -> None:
    """Console-script entry point of ``cg-compress`` (``--version`` included, like every other command)."""
    run_app(app, "cg-compress")


if __name__ == "__main__":
    main()
