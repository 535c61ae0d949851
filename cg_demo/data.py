"""A small unpaired two-domain dataset made from real photographs, with no download.

Domain A: random crops of colour photographs that scikit-image ships (CC0 or public domain; see the docstrings
in ``skimage/data/_fetchers.py``): astronaut (NASA), coffee (Rachel Michetti), chelsea (Stefan van der Walt),
hubble_deep_field (NASA). rocket and the motorcycle stereo pair are held out for parity and quality figures.
Domain B: other random crops of the same photographs, restyled procedurally as a four-ink "poster print"
(:func:`poster_style`: flat navy, red, pale-blue and cream inks by brightness, dark outlines on strong edges). A and B
crops are drawn independently, so the dataset is unpaired,
as CycleGAN expects, and the mapping A->B is visible at a glance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from cg_export.errors import ImageError
from cg_export.files import atomic_output
from cg_export.images import IMAGE_SUFFIXES, PHOTOGRAPHS, load_image

DEMO_PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "hubble_deep_field")
# Photographs never used for training, calibration or demo data: held out for parity and quality figures.
HELD_OUT_PHOTOGRAPHS = tuple(Path(p).stem for p in PHOTOGRAPHS if Path(p).stem not in DEMO_PHOTOGRAPHS)


#: The four inks of the poster print, darkest first: navy, red, pale blue, cream (the palette of the well-known
#: four-colour screen-printed campaign posters). Each pixel gets the ink of its brightness band.
POSTER_INKS = np.array([(0, 48, 80), (217, 26, 33), (112, 150, 160), (252, 228, 168)], np.float32)
#: The colour of the outlines drawn on strong edges.
OUTLINE_INK = np.array([20, 20, 30], np.float32)
#: Where the inks change, in standard deviations of the picture's own brightness from its mean: a printer sets the
#: thresholds for each picture, so a dark photograph uses all four inks too.
INK_THRESHOLDS = (-0.75, 0.0, 0.75)
#: Width of the blend between two inks, in the same units (0 would be a hard step).
INK_SOFTNESS = 0.09
#: Brightness gradients, in standard deviations of the picture's brightness per pixel, where outlines start and
#: where they reach full strength.
OUTLINE_START, OUTLINE_FULL = 0.45, 1.0


def poster_style(image: Image.Image) -> Image.Image:
    """The domain-B look, a four-ink screen print: flat inks by brightness band and dark outlines on strong edges.

    Median smoothing (5 px) first, so the ink regions are flat and textures do not speckle; the brightness of the
    smoothed image picks one of :data:`POSTER_INKS` (with a short blend between bands); edges whose gradient exceeds
    :data:`OUTLINE_START` are drawn in :data:`OUTLINE_INK`, 2 to 3 px wide. Everything is computed at the image's
    own resolution, so a crop and a whole photograph get the same look at the same scale.

    Why this style and not the earlier 3-bit posterisation with per-pixel edge darkening: that one darkened every
    textured pixel by its own 3x3 Laplacian, so its true print could only be matched pixel for pixel: the print
    itself blurred by 1 px is 14.6 levels (mean abs difference) from it on the held-out photographs, 19 on the
    motorcycles, next to 37.1 for the photographs. This one leaves the photographs further from their prints
    (49.7) and the 1-px-blurred print 5.5 from it (``benchmarks/poster_style_oracle.py``): a function of brightness
    and edges that a small generator can learn.
    """
    smooth = image.convert("RGB").filter(ImageFilter.MedianFilter(5))
    grey = smooth.convert("L")
    brightness = np.asarray(grey, np.float32) / 255
    # Floor on the spread: a flat picture (one colour) gets one ink rather than noise amplified into all four.
    spread = max(float(brightness.std()), 0.02)
    relative = (brightness - brightness.mean()) / spread
    ink = np.zeros(brightness.shape + (3,), np.float32) + POSTER_INKS[0]
    for threshold, colour in zip(INK_THRESHOLDS, POSTER_INKS[1:]):
        share = np.clip((relative - threshold) / (INK_SOFTNESS * 2) + 0.5, 0, 1)[..., None]
        ink = ink * (1 - share) + colour * share
    soft = np.asarray(grey.filter(ImageFilter.GaussianBlur(1)), np.float32) / 255
    rows, columns = np.gradient(soft)
    strength = np.clip((np.hypot(rows, columns) / spread - OUTLINE_START) / (OUTLINE_FULL - OUTLINE_START), 0, 1)
    widened = Image.fromarray((strength * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(3))
    outline = np.asarray(widened, np.float32)[..., None] / 255
    printed = ink * (1 - outline) + OUTLINE_INK * outline
    return Image.fromarray(np.clip(printed + 0.5, 0, 255).astype(np.uint8))


def random_crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> Image.Image:
    """A square crop covering 35-100 % of the photograph's short side, resized to ``size``."""
    height, width = photo.shape[:2]
    side = int(min(height, width) * rng.uniform(0.35, 1.0))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    crop = Image.fromarray(photo[top : top + side, left : left + side])
    if rng.random() < 0.5:
        crop = ImageOps.mirror(crop)
    return crop.resize((size, size), Image.BICUBIC)


def rotate_hue(image: Image.Image, turn: float) -> Image.Image:
    """The image with every hue turned by ``turn`` of a full circle (saturation and HSV value kept).

    The brightness that picks a poster ink (luma: 0.299 R + 0.587 G + 0.114 B) changes with the hue, so a crop and
    its turned copy get different prints. Tried for issue 18 as a way to teach that the ink follows brightness, not
    colour; it made the demo's generator further from the held-out prints, not closer
    (``benchmarks/results/demo_recipes.md``), so no plan uses it; ``benchmarks/demo_recipe.py --data recolour=P``
    reruns that experiment.
    """
    hue, saturation, value = image.convert("HSV").split()
    shift = int(round(turn * 256)) % 256
    hue = hue.point(lambda level: (level + shift) % 256)
    return Image.merge("HSV", (hue, saturation, value)).convert("RGB")


def load_photographs(names: tuple[str, ...]) -> list[np.ndarray]:
    """scikit-image's bundled photographs by file stem, as uint8 RGB (grey ones repeated over three channels).

    Raises:
        ImageError: scikit-image is not installed, or it ships no image of that name.
    """
    from importlib import resources

    try:
        folder = Path(str(resources.files("skimage") / "data"))
    except ModuleNotFoundError:
        raise ImageError("the demo's photographs come with scikit-image, which is not installed: "
                         "pip install scikit-image") from None
    files = {path.stem: path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES}
    missing = [name for name in names if name not in files]
    if missing:
        raise ImageError(f"scikit-image ships no photograph named {', '.join(missing)}; "
                         f"it has: {', '.join(sorted(files))}")
    return [load_image(files[name]) for name in names]


def make_demo_dataset(root: str | Path, size: int = 128, train_per_domain: int = 64, test_per_domain: int = 8,
                      seed: int = 0, photographs: tuple[str, ...] = DEMO_PHOTOGRAPHS, recolour: float = 0.0) -> Path:
    """Write ``root/{trainA,trainB,testA,testB}/*.png`` (the pytorch-CycleGAN-and-pix2pix layout).

    Args:
        root: Dataset folder (created).
        size: Side of the square images.
        train_per_domain: Training images per domain.
        test_per_domain: Test images per domain.
        seed: Makes the dataset reproducible.
        photographs: scikit-image photographs (file stems) the crops are taken from, in turn.
        recolour: Probability that a crop's hues are turned by a random amount (:func:`rotate_hue`) before it is
            saved (domain A) or printed (domain B).

    Returns:
        ``root``.
    """
    root = Path(root)
    held_out = sorted(set(photographs) & set(HELD_OUT_PHOTOGRAPHS))
    if held_out:
        raise ValueError(f"{', '.join(held_out)}: held out for the demo's measurements, never training data")
    if not 0.0 <= recolour <= 1.0:
        raise ValueError(f"recolour {recolour}: a probability, from 0 to 1")
    photos = load_photographs(tuple(photographs))
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_domain), ("test", test_per_domain)):
        for domain in ("A", "B"):
            folder = root / f"{split}{domain}"
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                crop = random_crop(photos[index % len(photos)], size, rng)
                # Drawn only when asked for, so recolour=0 makes the same files as before it existed.
                if recolour > 0 and rng.random() < recolour:
                    crop = rotate_hue(crop, rng.random())
                image = crop if domain == "A" else poster_style(crop)
                with atomic_output(folder / f"{index:04d}.png") as tmp:
                    image.save(tmp, format="PNG")
    return root
