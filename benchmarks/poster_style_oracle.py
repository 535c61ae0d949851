"""How learnable is domain B's poster style? Distances an almost-perfect generator would still have.

    python benchmarks/poster_style_oracle.py

For each held-out photograph (at the demo's sample size) and for each style, prints the mean abs difference
(8-bit levels) and SSIM to its true poster print of: the photograph itself (where training starts), and the true
print blurred by a Gaussian of 1 px (what a generator that got every colour and edge right, only 1 px soft, would
score). ``speckle`` is the style the demo used before issue 18 (3-bit posterisation, warm palette, every pixel
darkened by its own 3x3 edge response); ``four-ink`` is :func:`cg_demo.data.poster_style` now.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cg_demo.data import poster_style  # noqa: E402
from cg_demo.plan import FULL_PLAN  # noqa: E402
from cg_demo.runner import sample_inputs  # noqa: E402


def speckle_style(image: Image.Image) -> Image.Image:
    """The demo's domain-B style before issue 18, kept here for the comparison."""
    smooth = image.filter(ImageFilter.MedianFilter(5))
    poster = np.asarray(ImageOps.posterize(smooth, 3), dtype=np.float32)
    warm = poster @ np.array([[1.05, 0.05, 0.0], [0.10, 0.90, 0.0], [0.0, 0.10, 0.70]], np.float32).T + [18, 8, 0]
    edges = np.asarray(image.convert("L").filter(ImageFilter.FIND_EDGES), dtype=np.float32)[..., None]
    outlined = warm * (1.0 - np.clip(edges / 96.0, 0, 0.8))
    return Image.fromarray(np.clip(outlined, 0, 255).astype(np.uint8))


def distance(image: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    mae = float(np.abs(image.astype(np.float32) - target.astype(np.float32)).mean())
    return mae, float(structural_similarity(image, target, channel_axis=2, data_range=255))


def main() -> None:
    print(f"{'style':9} {'photograph':17} {'photograph':>12} {'print blurred 1 px':>20}")
    means: dict[str, list[tuple[float, float]]] = {}
    for style_name, style in (("speckle", speckle_style), ("four-ink", poster_style)):
        for name, photo in sample_inputs(FULL_PLAN.sample_side):
            target = np.asarray(style(Image.fromarray(photo)))
            blurred = np.asarray(Image.fromarray(target).filter(ImageFilter.GaussianBlur(1)))
            (p_mae, p_ssim), (b_mae, b_ssim) = distance(photo, target), distance(blurred, target)
            means.setdefault(style_name, []).append((p_mae, b_mae))
            print(f"{style_name:9} {name:17} {p_mae:6.1f} ({p_ssim:.2f}) {b_mae:12.1f} ({b_ssim:.2f})")
    for style_name, rows in means.items():
        photo_mean, blurred_mean = np.mean(rows, axis=0)
        print(f"{style_name:9} {'mean':17} {photo_mean:6.1f}        {blurred_mean:12.1f}")


if __name__ == "__main__":
    main()
