"""``cg-compress``: distil a generator into a small mobile ResNet student; a thin layer over
:func:`training.compress.compress`."""

from __future__ import annotations

from pathlib import Path

import typer

from cg_export.cli.common import new_app, reports_errors
from cg_export.cli.version import run_app

app = new_app("Distil a CycleGAN generator into a mobile ResNet student with many fewer MACs; the student is a "
              "checkpoint that cg-export, cg-bench and cg-stylize take like any other.")


@app.command()
@reports_errors
def compress_command(
    teacher: Path = typer.Argument(..., help="Generator checkpoint to distil (any format cg-export loads)."),
    photos: Path = typer.Argument(..., help="Folder of photographs of the teacher's input domain."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Student checkpoint to write (default: TEACHER_student.pt beside it); "
                                            "the run's log, samples and state go to OUTPUT_compress/."),
    ratio: float | None = typer.Option(None, help="Largest student with at most 1/RATIO of the teacher's MACs "
                                       "(default: 10 unless --macs or both --ngf and --n-blocks are given)."),
    macs: str | None = typer.Option(None, help="Largest student with at most this many MACs, e.g. 5G or 800M."),
    ngf: int | None = typer.Option(None, help="Fix the student's width (the budget picks its depth)."),
    n_blocks: int | None = typer.Option(None, help="Fix the student's residual blocks (the budget picks its width)."),
    budget_size: int | None = typer.Option(None, help="Image side at which MACs are counted (default: 256)."),
    discriminator: Path | None = typer.Option(None, help="The teacher's PatchGAN discriminator (latest_net_D_B.pth): "
                                              "adds GAN Compression's adversarial loss."),
    epochs: int | None = typer.Option(None, help="Total epochs over the photographs (default: 200)."),
    decay_epoch: int | None = typer.Option(None, help="Epoch from which the learning rate decays linearly to zero "
                                           "(default: half of --epochs)."),
    image_size: int | None = typer.Option(None, help="Side of the square training crops (default: 256)."),
    batch_size: int | None = typer.Option(None, help="Photographs per step (default: 1)."),
    lr: float | None = typer.Option(None, help="Adam learning rate (default: 2e-4)."),
    lambda_recon: float | None = typer.Option(None, help="L1 weight to the teacher's output (default: 10)."),
    lambda_distill: float | None = typer.Option(None, help="Feature distillation weight (default: 0.01)."),
    lambda_gan: float | None = typer.Option(None, help="Adversarial weight with --discriminator (default: 1)."),
    device: str | None = typer.Option(None, help="auto, cpu, cuda or cuda:N (default: auto = CUDA if available)."),
    amp: bool | None = typer.Option(None, "--amp/--no-amp", help="Mixed precision on CUDA (default: off)."),
    seed: int | None = typer.Option(None, help="Random seed (default: drawn, recorded, and reused on --resume)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run of OUTPUT from its last save."),
    save_every: int | None = typer.Option(None, help="Also save every this many steps (always: every epoch)."),
    log_every: int | None = typer.Option(None, help="Log averaged losses every this many steps (default: 100)."),
    samples: int | None = typer.Option(None, help="Photographs in each epoch's sample grid (default: 3)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar per epoch."),
) -> None:
    """Distil TEACHER into a depthwise-separable student (reconstruction + feature distillation [+ GAN])."""
    from cg_export.macs import parse_count
    from training.compress import compress, default_student_path, run_dir_for

    try:
        compress(
            teacher, photos, output=output, discriminator=discriminator, resume=resume, progress=progress,
            ratio=ratio, macs=parse_count(macs) if macs is not None else None, ngf=ngf, n_blocks=n_blocks,
            budget_size=budget_size, epochs=epochs, decay_epoch=decay_epoch, image_size=image_size,
            batch_size=batch_size, lr=lr, lambda_recon=lambda_recon, lambda_distill=lambda_distill,
            lambda_gan=lambda_gan, device=device, amp=amp, seed=seed, save_every=save_every, log_every=log_every,
            samples=samples,
        )
    except KeyboardInterrupt as exc:
        run_dir = run_dir_for(output or default_student_path(teacher))
        hint = "the last save is intact: continue with the same command and --resume" if run_dir.exists() else (
            "nothing was saved yet: start it again without --resume")
        typer.echo(f"interrupted; {hint}", err=True)
        raise typer.Exit(128 + getattr(exc, "signal_number", 2)) from None  # SIGTERM 143, SIGINT 130


def main() -> None:
    """Console-script entry point of ``cg-compress``."""
    run_app(app, "cg-compress")


if __name__ == "__main__":
    main()
