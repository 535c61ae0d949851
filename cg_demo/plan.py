"""How much the demo does: the plan of ``cg-demo`` and of ``cg-demo --quick``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DemoPlan:
    """How much the demo does. :data:`FULL_PLAN` is ``cg-demo``, :data:`QUICK_PLAN` is ``cg-demo --quick``.

    Attributes:
        data_size: Side of the square demo images on disk.
        train_per_domain: Training images per domain.
        image_size: Side of the training crops.
        epochs: Training epochs (the learning rate decays linearly to zero over the second half).
        arch: Generator architecture (registry name).
        ngf: Width of the generator's first layer.
        n_blocks: Residual blocks of the generator.
        ndf: Width of the discriminators' first layer.
        lr: Adam learning rate.
        lambda_id: Identity loss weight.
        bench_sizes: ``(height, width)`` sizes to benchmark.
        bench_seconds: Timed seconds per benchmark row.
        sample_side: Shorter side of the photographs stylized for the sample grid.
        student_ratio: The distilled student has at most 1/this of the generator's MACs (``cg-compress --ratio``).
        student_epochs: Distillation epochs over domain A's training images (``cg-compress --epochs``).
        student_batch: Photographs per distillation step (``cg-compress --batch-size``).
        student_lr: Distillation learning rate (``cg-compress --lr``; a few hundred steps need more than 2e-4).
    """

    data_size: int
    train_per_domain: int
    image_size: int
    epochs: int
    arch: str
    ngf: int
    n_blocks: int
    ndf: int
    lr: float
    lambda_id: float
    bench_sizes: tuple[tuple[int, int], ...]
    bench_seconds: float
    sample_side: int
    student_ratio: float = 5.0
    student_epochs: int = 1
    student_batch: int = 1
    student_lr: float = 1e-3


# The recipe (issue 18): nearest-neighbour upsampling + convolution (resnet_upsample: no ConvTranspose
# checkerboard) and the paper's Adam 2e-4 and identity weight 5. At demo length (1,024 steps of 64-px crops) on a
# draft of the four-ink style it ended closest to the held-out prints (36.4 levels) of the four recipes tried, ahead
# of 1e-3 with identity 10 (44.3), 5e-4 with 5 (41.2) and the ConvTranspose generator with 1e-3 and 10 (37.9); on the
# final style a demo-length run ends about 40 levels away (the photographs: 54). The same recipe trained for 240
# epochs ends at 23 and is shipped in cg_demo/pretrained (benchmarks/pretrain_demo_generator.py; one recipe change
# at a time: benchmarks/demo_recipe.py --set NAME=VALUE).
# The student (cg-compress): the quick generator (0.38 G MACs) is too small for a 1/5 student (the smallest
# mobile_resnet needs 0.10 G), so --quick asks for 1/3, for 6 steps of 8 photographs (2.0 s). The full plan's student
# runs 64 steps an epoch: benchmarks/demo_student.py measured 2 epochs in 16 s (load average 1.9-2.4 on the 2 cores)
# and 8 epochs in 170 s (load rising from 0.5 to 4, other jobs starting), so 5 epochs take about a minute (40 s at the
# first rate, 105 s at the second); not measured on an idle machine, which this shared one never was.
FULL_PLAN = DemoPlan(data_size=72, train_per_domain=64, image_size=64, epochs=16, arch="resnet_upsample", ngf=16,
                     n_blocks=3, ndf=16, lr=2e-4, lambda_id=5.0, bench_sizes=((256, 256), (512, 512)),
                     bench_seconds=2.0, sample_side=160, student_ratio=5.0, student_epochs=5)
QUICK_PLAN = DemoPlan(data_size=72, train_per_domain=48, image_size=64, epochs=4, arch="resnet_upsample", ngf=8,
                      n_blocks=2, ndf=16, lr=2e-4, lambda_id=5.0, bench_sizes=((256, 256),), bench_seconds=0.5,
                      sample_side=128, student_ratio=3.0, student_epochs=1,
                      student_batch=8)


def training_options(plan: DemoPlan, *, seed: int, device: str) -> dict[str, Any]:
    """The ``cg-train`` options of a plan (one place, so the demo's run and the pretrained one share the recipe)."""
    return {"epochs": plan.epochs, "image_size": plan.image_size, "arch": plan.arch, "ngf": plan.ngf,
            "n_blocks": plan.n_blocks, "ndf": plan.ndf, "lr": plan.lr, "lambda_id": plan.lambda_id, "seed": seed,
            "device": device}
