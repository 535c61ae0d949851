"""How much the demo does: the plan of ``cg-demo`` and of ``cg-demo --quick``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Where ``cg-demo`` writes when ``-o`` is not given.
DEFAULT_OUTPUT = Path("cg-demo")
#: The seed of the demo's data and training when none is given, so two runs on one machine train the same model.
DEFAULT_SEED = 0


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
        student_batch: Photographs per distillation step (``cg-compress --batch``).
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
# checkerboard), the paper's Adam 2e-4, 512 crops per domain rather than 64, and no identity loss (the paper uses 5:
# it rewards keeping a photograph's colours, and the poster's inks follow brightness, not colour). Chosen one change
# at a time (benchmarks/demo_recipe.py; log and long runs in benchmarks/results/demo_recipes.md): at 6,144 steps 64
# crops with identity 5 ended 25.4 levels from the held-out prints, 512 crops 24.6, with identity 1 22.5 and with 0
# 23.4; trained long, identity 0 pulled ahead (see the log). The demo runs 1,024 steps; the same recipe trained much
# longer is shipped in cg_demo/pretrained (benchmarks/pretrain_demo_generator.py).
# The student (cg-compress): the quick generator (0.38 G MACs) is too small for a 1/5 student (the smallest
# mobile_resnet needs 0.10 G), so --quick asks for 1/3, for 12 steps of 8 photographs. The full plan's student sees
# each of domain A's 512 crops once, two a step (256 steps); at 64 crops it ran 5 epochs of 64 steps, which
# benchmarks/demo_student.py measured at 40 to 105 s on this shared machine, depending on its load.
FULL_PLAN = DemoPlan(data_size=72, train_per_domain=512, image_size=64, epochs=2, arch="resnet_upsample", ngf=16,
                     n_blocks=3, ndf=16, lr=2e-4, lambda_id=0.0, bench_sizes=((256, 256), (512, 512)),
                     bench_seconds=2.0, sample_side=160, student_ratio=5.0, student_epochs=1, student_batch=2)
QUICK_PLAN = DemoPlan(data_size=72, train_per_domain=96, image_size=64, epochs=2, arch="resnet_upsample", ngf=8,
                      n_blocks=2, ndf=16, lr=2e-4, lambda_id=0.0, bench_sizes=((256, 256),), bench_seconds=0.5,
                      sample_side=128, student_ratio=3.0, student_epochs=1,
                      student_batch=8)


#: Test images per domain in the demo's dataset (``testA``/``testB``; the trainer's sample grids use a few).
TEST_PER_DOMAIN = 4


def dataset_options(plan: DemoPlan, *, seed: int) -> dict[str, Any]:
    """The arguments of :func:`cg_demo.data.make_demo_dataset` for a plan (one place, like :func:`training_options`)."""
    return {"size": plan.data_size, "train_per_domain": plan.train_per_domain, "test_per_domain": TEST_PER_DOMAIN,
            "seed": seed}


def training_options(plan: DemoPlan, *, seed: int, device: str) -> dict[str, Any]:
    """The ``cg-train`` options of a plan (one place, so the demo's run and the pretrained one share the recipe)."""
    return {"epochs": plan.epochs, "image_size": plan.image_size, "arch": plan.arch, "ngf": plan.ngf,
            "n_blocks": plan.n_blocks, "ndf": plan.ndf, "lr": plan.lr, "lambda_id": plan.lambda_id, "seed": seed,
            "device": device}
