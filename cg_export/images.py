"""Images in and out of generators: reading, the bundled real photographs, and the [-1, 1] NCHW convention.

Generators take float32 NCHW tensors in [-1, 1] (``x / 127.5 - 1``) and return the same range; 8-bit images
come back as ``round((y + 1) * 127.5)``. Every backend and the parity checks share these two functions, so a
model is always fed exactly as it was trained.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cg_export.errors import ImageError

# Real photographs that scikit-image ships inside its wheel (public domain or CC0; see skimage/data/README.txt),
# so parity is measured on natural images without downloading anything.
PHOTOGRAPHS = (
    "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg",
    "motorcycle_right.png",
)


def sample_photographs(count: int | None = None) -> list[tuple[str, np.ndarray]]:
    """Return up to ``count`` bundled real photographs as ``(name, uint8 HxWx3 RGB array)``.

    Raises:
        ImageError: scikit-image (which carries the photographs) is not installed.
    """
    try:
        folder = resources.files("skimage") / "data"
    except ModuleNotFoundError:
        raise ImageError(
            "the reference photographs come with scikit-image, which is not installed: pip install scikit-image"
        ) from None
    names = PHOTOGRAPHS if count is None else PHOTOGRAPHS[:count]
    return [(Path(name).stem, load_image(Path(str(folder / name)))) for name in names]


#: The photograph files every tool looks for in a folder (training data, int8 calibration, cg-stylize inputs):
#: formats Pillow both reads and writes, so a stylized image can keep its input's format. ``.jpe``/``.jfif`` are
#: JPEG under the names some systems save it with.
IMAGE_SUFFIXES = frozenset({
    ".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif",
})


#: The most pixels an image may have before it is decoded (``--max-pixels`` raises it): Pillow's own
#: decompression-bomb limit (it refuses images over twice its warning threshold). A few bytes of PNG or GIF can
#: claim a picture this size; decoded, it takes 3 bytes a pixel, and stylizing it several times that.
DEFAULT_MAX_PIXELS = 2 * 89_478_485


@contextmanager
def _own_pixel_limit() -> Iterator[None]:
    # Pillow checks its global MAX_IMAGE_PIXELS on open; the caller's max_pixels is checked here instead, so a user
    # can raise it per call without changing a process-wide setting.
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def check_pixels(path: str | Path, width: int, height: int, max_pixels: int | None) -> None:
    """Refuse an image over the pixel limit before it is decoded.

    Raises:
        ImageError: ``width * height`` exceeds ``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`).
    """
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > limit:
        raise ImageError(f"{path}: {width}x{height} is {width * height:,} pixels, more than the limit of {limit:,} "
                         f"(a decompression bomb, or a very large photograph: pass --max-pixels {width * height} "
                         "to read it)")


def load_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read any image Pillow can open as uint8 RGB (see :func:`read_photo`; the alpha channel is dropped).

    Raises:
        ImageError: the file is missing, not an image, truncated, or over the pixel limit.
    """
    return read_photo(Path(path), max_pixels)[0]


def read_photo(path: str | Path, max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Read an image as uint8 RGB plus its alpha channel (or ``None``) and its format name.

    EXIF orientation is applied; 16-bit images are scaled (not clipped) to 8 bits; grey, palette and CMYK are
    converted to RGB.

    Args:
        path: The image file.
        max_pixels: Refuse images with more pixels than this before decoding them (default
            :data:`DEFAULT_MAX_PIXELS`).

    Raises:
        ImageError: not a readable image, or more pixels than ``max_pixels``.
    """
    try:
        with _own_pixel_limit(), Image.open(path) as image:
            check_pixels(path, *image.size, max_pixels)
            image = ImageOps.exif_transpose(image)
            fmt = image.format or "PNG"
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                values = np.asarray(image, dtype=np.float64)
                peak = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
                grey = np.clip(np.rint(values / peak * 255.0), 0, 255).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2), None, fmt
            alpha = None
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                alpha = np.asarray(rgba)[..., 3].copy()
                return np.asarray(rgba.convert("RGB"), dtype=np.uint8), alpha, fmt
            return np.asarray(image.convert("RGB"), dtype=np.uint8), None, fmt
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path}: refused as a decompression bomb ({exc}); pass --max-pixels to raise the limit"
                         ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from None


def fit_to_size(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (bicubic) to cover ``height`` x ``width`` and centre-crop, keeping the aspect ratio."""
    src_h, src_w = image.shape[:2]
    scale = max(height / src_h, width / src_w)
    new_h, new_w = max(height, round(src_h * scale)), max(width, round(src_w * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BICUBIC))
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return resized[top : top + height, left : left + width]


RGB_INPUT = "rgb"
GREY_INPUT = "grey"
LAB_L_INPUT = "lab-l"
INPUT_KINDS = (RGB_INPUT, GREY_INPUT, LAB_L_INPUT)


def model_input_kind(architecture: dict) -> str:
    """What a generator takes, from its architecture config's channel counts.

    * ``"rgb"``: three channels, ``x / 127.5 - 1``;
    * ``"grey"``: one channel of luminance (ITU-R 601 luma, as Pillow's ``convert("L")`` and torchvision's
      ``Grayscale`` that the peers train with compute it), ``x / 127.5 - 1``;
    * ``"lab-l"``: one channel in, two out: pix2pix's colorization model, which takes the L of CIE Lab as
      ``L / 50 - 1`` and returns ab.

    Raises:
        ImageError: any other channel count (there are no photographs to feed it).
    """
    in_channels = int(architecture.get("in_channels", 3))
    if in_channels == 3:
        return RGB_INPUT
    if in_channels == 1:
        return LAB_L_INPUT if int(architecture.get("out_channels", 1)) == 2 else GREY_INPUT
    raise ImageError(f"a generator with {in_channels} input channels takes no kind of photograph cg-export knows "
                     "(RGB: 3, grey-scale or colorization L: 1)")


def to_model_input(images: list[np.ndarray] | np.ndarray, kind: str = RGB_INPUT) -> np.ndarray:
    """uint8 RGB NHWC (or a list of HWC images of one size) -> float32 NCHW in [-1, 1], as ``kind`` needs it.

    Args:
        images: RGB images.
        kind: One of :data:`INPUT_KINDS` (see :func:`model_input_kind`): RGB, grey-scale luminance (1 channel),
            or the colorization model's Lab L (1 channel).
    """
    batch = np.stack(images) if isinstance(images, list) else images
    if batch.ndim == 3:
        batch = batch[None]
    if kind == GREY_INPUT:
        grey = np.stack([np.asarray(Image.fromarray(image).convert("L")) for image in batch])
        return np.ascontiguousarray(grey[:, None], dtype=np.float32) / 127.5 - 1.0
    if kind == LAB_L_INPUT:
        from skimage.color import rgb2lab

        lightness = np.stack([rgb2lab(image)[..., 0] for image in batch]).astype(np.float32)
        return np.ascontiguousarray(lightness[:, None]) / 50.0 - 1.0
    if kind != RGB_INPUT:
        raise ValueError(f"kind must be one of {INPUT_KINDS}, not {kind!r}")
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / 127.5 - 1.0


def from_model_output(output: np.ndarray, kind: str, model_input: np.ndarray | None = None) -> np.ndarray:
    """A generator's float NCHW output -> uint8 NHWC RGB images a viewer can see, for each kind of model.

    Args:
        output: The generator's output in [-1, 1].
        kind: The model's input kind (:func:`model_input_kind`): RGB out for ``"rgb"``; one grey channel for
            ``"grey"`` (repeated to RGB); ab (scaled by 110, as pix2pix's colorization trains it) for
            ``"lab-l"``, joined with the input's L and converted back to RGB.
        model_input: The batch the model was given (its L is needed for ``"lab-l"``).
    """
    if kind == LAB_L_INPUT:
        from skimage.color import lab2rgb

        if model_input is None:
            raise ValueError("the colorization output needs its input's L channel")
        lightness = (model_input[:, :1, : output.shape[2], : output.shape[3]] + 1.0) * 50.0
        lab = np.concatenate([lightness, output[:, :2] * 110.0], axis=1).transpose(0, 2, 3, 1).astype(np.float64)
        with warnings.catch_warnings():
            # Predicted colours outside the sRGB gamut are clipped, which is what a viewer needs; no warning.
            warnings.simplefilter("ignore", UserWarning)
            rgb = np.stack([lab2rgb(image) for image in lab])
        return np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    images = to_uint8(output)
    return np.repeat(images, 3, axis=3) if kind == GREY_INPUT else images


def to_uint8(output: np.ndarray) -> np.ndarray:
    """float NCHW in [-1, 1] -> uint8 NHWC, rounding to the nearest level."""
    scaled = np.clip((np.asarray(output, dtype=np.float32) + 1.0) * 127.5, 0, 255)
    return np.rint(scaled).astype(np.uint8).transpose(0, 2, 3, 1)
