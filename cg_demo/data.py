"""A small unpaired two-domain dataset made from real photographs, with no download.

Domain A: random crops of colour photographs that scikit-image ships (CC0 or public domain; see the docstrings
in ``skimage/data/_fetchers.py``): astronaut (NASA), coffee (Rachel Michetti), chelsea (Stefan van der Walt),
hubble_deep_field (NASA). rocket and the motorcycle stereo pair are held out for parity and quality figures.
Domain B: other random crops of the same photographs, restyled procedurally as a "poster print" (smoothed,
posterised, warm palette, dark outlines). A and B crops are drawn independently, so the dataset is unpaired,
as CycleGAN expects, and the mapping A->B is visible at a glance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from cg_export.files import atomic_output
from cg_export.images import PHOTOGRAPHS, sample_photographs

DEMO_PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "hubble_deep_field")
# Photographs never used for training, calibration or demo data: held out for parity and quality figures.
HELD_OUT_PHOTOGRAPHS = tuple(Path(p).stem for p in PHOTOGRAPHS if Path(p).stem not in DEMO_PHOTOGRAPHS)


def poster_style(image: Image.Image) -> Image.Image:
    """The domain-B look: edge-preserving smoothing, 3-bit posterisation, warm palette, dark outlines."""
    smooth = image.filter(ImageFilter.MedianFilter(5))
    poster = np.asarray(ImageOps.posterize(smooth, 3), dtype=np.float32)
    warm = poster @ np.array([[1.05, 0.05, 0.0], [0.10, 0.90, 0.0], [0.0, 0.10, 0.70]], np.float32).T + [18, 8, 0]
    edges = np.asarray(image.convert("L").filter(ImageFilter.FIND_EDGES), dtype=np.float32)[..., None]
    outlined = warm * (1.0 - np.clip(edges / 96.0, 0, 0.8))
    return Image.fromarray(np.clip(outlined, 0, 255).astype(np.uint8))


def random_crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> Image.Image:
    """A square crop covering 35-100 % of the photograph's short side, resized to ``size``."""
    height, width = photo.shape[:2]
    side = int(min(height, width) * rng.uniform(0.35, 1.0))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    crop = Image.fromarray(photo[top : top + side, left : left + side])
    if rng.random() < 0.5:
        crop = ImageOps.mirror(crop)
    return crop.resize((size, size), Image.BICUBIC)


def make_demo_dataset(root: str | Path, size: int = 128, train_per_domain: int = 64, test_per_domain: int = 8,
                      seed: int = 0) -> Path:
    """Write ``root/{trainA,trainB,testA,testB}/*.png`` (the pytorch-CycleGAN-and-pix2pix layout).

    Args:
        root: Dataset folder (created).
        size: Side of the square images.
        train_per_domain: Training images per domain.
        test_per_domain: Test images per domain.
        seed: Makes the dataset reproducible.

    Returns:
        ``root``.
    """
    root = Path(root)
    photos = [image for name, image in sample_photographs() if name in DEMO_PHOTOGRAPHS]
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_domain), ("test", test_per_domain)):
        for domain in ("A", "B"):
            folder = root / f"{split}{domain}"
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                crop = random_crop(photos[index % len(photos)], size, rng)
                image = crop if domain == "A" else poster_style(crop)
                with atomic_output(folder / f"{index:04d}.png") as tmp:
                    image.save(tmp, format="PNG")
    return root
