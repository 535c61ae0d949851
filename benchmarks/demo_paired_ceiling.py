"""How close can the demo's generator come to the poster style at all? Train it *paired* and measure.

    python benchmarks/demo_paired_ceiling.py --steps 4000 --threads 1
    python benchmarks/demo_paired_ceiling.py --steps 8000 --ngf 32 --n-blocks 6

A diagnostic for issue 18, not a recipe: CycleGAN never sees which poster print belongs to which photograph. Here the
demo's generator architecture is trained with an L1 loss from each domain-A training image of the demo's dataset to
its own true poster print (same random 64-px crops and flips on both), with Adam 2e-4 decaying linearly to zero over
the second half, and then measured exactly as the report measures the demo's generators: mean abs difference and
SSIM to the true poster prints of the held-out photographs. What the unpaired recipe leaves above this figure is the
price of learning without pairs, not a limit of the network or of the data.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cg_demo.data import make_demo_dataset, poster_style  # noqa: E402
from cg_demo.plan import FULL_PLAN, dataset_options  # noqa: E402
from cg_demo.results import REFERENCE_LABEL  # noqa: E402
from cg_demo.runner import measure_generator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4000, help="optimisation steps (one crop each)")
    parser.add_argument("--ngf", type=int, default=FULL_PLAN.ngf)
    parser.add_argument("--n-blocks", type=int, default=FULL_PLAN.n_blocks)
    parser.add_argument("--train-per-domain", type=int, default=FULL_PLAN.train_per_domain)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads")
    args = parser.parse_args()

    import torch
    from PIL import Image

    from cg_export.models import create_generator, save_generator
    from cg_export.models.init import init_weights

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    crop, lr = FULL_PLAN.image_size, FULL_PLAN.lr
    with tempfile.TemporaryDirectory() as work:
        data = make_demo_dataset(Path(work) / "data", **{**dataset_options(FULL_PLAN, seed=0),
                                                          "train_per_domain": args.train_per_domain})
        photos = [Image.open(path).convert("RGB") for path in sorted((data / "trainA").glob("*.png"))]

        def tensor(images: list[Image.Image]) -> torch.Tensor:
            return torch.from_numpy(np.stack([np.asarray(i, np.float32) / 127.5 - 1 for i in images])).permute(0, 3, 1, 2)

        inputs, targets = tensor(photos), tensor([poster_style(photo) for photo in photos])
        generator = init_weights(create_generator(FULL_PLAN.arch, ngf=args.ngf, n_blocks=args.n_blocks)).train()
        optimizer = torch.optim.Adam(generator.parameters(), lr, betas=(0.5, 0.999))
        half, margin = args.steps // 2, FULL_PLAN.data_size - crop
        started = time.perf_counter()
        for step in range(args.steps):
            index, (top, left) = rng.integers(len(inputs)), rng.integers(0, margin + 1, 2)
            photo = inputs[index : index + 1, :, top : top + crop, left : left + crop]
            target = targets[index : index + 1, :, top : top + crop, left : left + crop]
            if rng.random() < 0.5:
                photo, target = photo.flip(3), target.flip(3)
            for group in optimizer.param_groups:
                group["lr"] = lr * min(1.0, (args.steps - step) / (args.steps - half))
            loss = (generator(photo) - target).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - started
        checkpoint = save_generator(generator.eval(), Path(work) / "paired.pt")
        learned = measure_generator(checkpoint, FULL_PLAN.sample_side)
    per_photo = next(v for v in learned.versions if v.label == REFERENCE_LABEL).per_photograph
    print(f"paired {FULL_PLAN.arch} ngf {args.ngf}, {args.n_blocks} blocks, {args.train_per_domain} images: "
          f"{args.steps} steps in {seconds:.0f} s ({args.threads} thread(s)); {learned.summary}; "
          f"per photograph {per_photo}")


if __name__ == "__main__":
    main()
