"""Whole images of any size through a generator: padding to the size multiple, and overlapping tiles that share
whole-image InstanceNorm statistics so their output matches the untiled image.

The statistics come from a downscaled copy of the whole image (a "thumbnail pass", as in URST, AAAI 2022):
``stats_size`` bounds its longer side. Overlapping tiles are blended with linear ramps across the overlap, so
no tile border shows.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from cg_export.backends.base import Runner
from cg_export.images import RGB_INPUT, from_model_output, to_model_input
from cg_export.sizes import round_up

DEFAULT_OVERLAP = 32
DEFAULT_STATS_SIZE = 512
# Peak working memory of a 9-block, ngf-64 generator under ONNX Runtime on a CPU, per input pixel (measured:
# about 770 MB at 512x512 in benchmarks/results/cpu_matrix.md); it scales with the width ngf.
BYTES_PER_PIXEL_NGF64 = 3000
MEMORY_SHARE = 0.25


@dataclass(frozen=True)
class Window:
    """One tile's input window ``[top:bottom, left:right]`` in the padded image."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the window."""
        return (self.bottom - self.top, self.right - self.left)


# A ResNet generator (size multiple 4) reflection-pads by 1 at a quarter of the input's resolution, which needs
# at least 2 pixels there: 8 at the input. U-Nets (multiple 2**depth) run at their multiple.
SMALLEST_RESNET_SIDE = 8


def min_side(multiple: int) -> int:
    """The smallest height or width a generator is run at; smaller images are padded up to it and cropped back."""
    return max(SMALLEST_RESNET_SIDE, multiple)


def pad_to_size(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad an HxWxC image at the bottom and right to ``height`` x ``width``: reflected as far as the image reaches
    (which keeps the model's statistics natural), then the edge repeated (a 1x1 image has nothing to reflect)."""
    pad_h, pad_w = max(0, height - image.shape[0]), max(0, width - image.shape[1])
    if not pad_h and not pad_w:
        return image
    reflect_h, reflect_w = min(pad_h, image.shape[0] - 1), min(pad_w, image.shape[1] - 1)
    if reflect_h or reflect_w:
        image = np.pad(image, ((0, reflect_h), (0, reflect_w), (0, 0)), mode="reflect")
    if pad_h > reflect_h or pad_w > reflect_w:
        image = np.pad(image, ((0, pad_h - reflect_h), (0, pad_w - reflect_w), (0, 0)), mode="edge")
    return image


def pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Pad an HxWxC image at the bottom and right to multiples of ``multiple``, and to at least
    :func:`min_side` (see :func:`pad_to_size`)."""
    height, width = image.shape[:2]
    smallest = min_side(multiple)
    return pad_to_size(image, round_up(max(height, smallest), multiple), round_up(max(width, smallest), multiple))


def plan_windows(height: int, width: int, tile: int, overlap: int, smallest: int = 1) -> list[Window]:
    """Windows of ``tile`` + ``overlap`` on each side (clipped at the image border), covering the image.

    A window clipped to less than ``smallest`` pixels at the bottom or right border reaches further back instead,
    so every window is one the model can run.
    """
    def spans(length: int) -> list[tuple[int, int]]:
        found = []
        for start in range(0, length, tile):
            first, last = max(start - overlap, 0), min(start + tile + overlap, length)
            found.append((min(first, max(last - smallest, 0)), last))
        return found

    return [Window(top, left, bottom, right) for top, bottom in spans(height) for left, right in spans(width)]


def plan_static_windows(height: int, width: int, size: tuple[int, int], overlap: int) -> list[Window]:
    """Windows of exactly ``size`` (a static model's input) covering an image at least that large, neighbours
    sharing ``2 * overlap`` pixels (more where the last window is moved back to end at the border)."""
    def starts(length: int, side: int) -> list[int]:
        step = max(side - 2 * overlap, side // 2)
        found = list(range(0, max(length - side, 0) + 1, step))
        if found[-1] + side < length:
            found.append(length - side)
        return found

    sh, sw = size
    return [Window(top, left, top + sh, left + sw) for top in starts(height, sh) for left in starts(width, sw)]


def _ramp(length: int, start_overlap: int, end_overlap: int) -> np.ndarray:
    # A window clipped at the image border can be shorter than two overlaps; its ramps shrink to fit. Blending
    # divides by the summed weights, so only positivity matters there.
    weights = np.ones(length, np.float32)
    start, end = min(2 * start_overlap, length // 2), min(2 * end_overlap, length // 2)
    if start:
        weights[:start] = np.linspace(0, 1, start + 2, dtype=np.float32)[1:-1]
    if end:
        weights[length - end :] = np.minimum(weights[length - end :], np.linspace(1, 0, end + 2, dtype=np.float32)[1:-1])
    return weights


def blend_weights(window: Window, height: int, width: int, overlap: int) -> np.ndarray:
    """Per-pixel weights of a window: 1 inside, ramping to 0 across each side shared with a neighbour."""
    wy = _ramp(window.bottom - window.top, overlap if window.top > 0 else 0, overlap if window.bottom < height else 0)
    wx = _ramp(window.right - window.left, overlap if window.left > 0 else 0, overlap if window.right < width else 0)
    return wy[:, None] * wx[None, :]


def thumbnail(image: np.ndarray, max_side: int, multiple: int, static_size: tuple[int, int] | None = None
              ) -> np.ndarray:
    """The image downscaled so its longer side is at most ``max_side``, padded to ``multiple``; for a static model,
    resized to exactly its ``static_size`` (InstanceNorm statistics are spatial means and variances, which a
    resize changes far less than padding would)."""
    if static_size is not None:
        if image.shape[:2] == tuple(static_size):
            return image
        return np.asarray(Image.fromarray(image).resize((static_size[1], static_size[0]), Image.BICUBIC))
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(multiple, round(width * scale)), max(multiple, round(height * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
    return pad_to_multiple(image, multiple)


def default_tile(multiple: int, ngf: int = 64, available_bytes: int | None = None) -> int:
    """A tile side that keeps the generator's working memory within a quarter of the available memory."""
    if available_bytes is None:
        available_bytes = _available_memory()
    pixels = available_bytes * MEMORY_SHARE / (BYTES_PER_PIXEL_NGF64 * max(ngf, 1) / 64)
    side = int(pixels**0.5) - 2 * DEFAULT_OVERLAP
    return max(multiple, min(2048, side) // multiple * multiple)


def _available_memory() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def whole_image_stats(runner: Runner, image: np.ndarray, multiple: int, stats_size: int = DEFAULT_STATS_SIZE,
                      static_size: tuple[int, int] | None = None, kind: str = RGB_INPUT) -> np.ndarray:
    """InstanceNorm statistics (1, 2, S) of ``image`` from its thumbnail (exact when the image fits ``stats_size``)."""
    return runner.norm_stats(to_model_input([thumbnail(image, stats_size, multiple, static_size)], kind))


def describe_plan(height: int, width: int, multiple: int, tile: int = 0, overlap: int = DEFAULT_OVERLAP,
                  static_size: tuple[int, int] | None = None) -> str:
    """How :func:`stylize_array` will run an image of this size: ``whole image`` or ``N tiles of T px``."""
    ph = round_up(max(height, min_side(multiple)), multiple)
    pw = round_up(max(width, min_side(multiple)), multiple)
    if static_size is not None:
        sh, sw = static_size
        if ph <= sh and pw <= sw:
            return f"whole image (padded to the model's static {sh}x{sw})" if (height, width) != (sh, sw) else \
                "whole image"
        count = len(plan_static_windows(max(ph, sh), max(pw, sw), static_size, overlap))
        return f"{count} tiles of {sh}x{sw} (the model's static size)"
    if not tile or (tile >= ph and tile >= pw):
        return "whole image"
    return f"{len(plan_windows(ph, pw, tile, overlap))} tiles of {tile} px"


def stylize_array(
    runner: Runner,
    image: np.ndarray,
    multiple: int,
    tile: int = 0,
    overlap: int = DEFAULT_OVERLAP,
    stats: np.ndarray | None = None,
    stats_size: int = DEFAULT_STATS_SIZE,
    batch: int = 1,
    naive: bool = False,
    static_size: tuple[int, int] | None = None,
    kind: str = RGB_INPUT,
    on_tiles: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Run one uint8 HxWx3 image through an active runner; returns uint8 HxWx3 of the same size.

    Images smaller than :func:`min_side` are padded up to it and cropped back.

    Args:
        runner: An active :class:`Runner`.
        image: The RGB image.
        multiple: The architecture's size multiple (4 for ResNets).
        tile: Tile side (a multiple of ``multiple``); 0 runs the whole image at once.
        overlap: Context added on each side of a tile and blended with its neighbours.
        stats: Whole-image InstanceNorm statistics (1, 2, S) to use (video smoothing passes them); ``None``
            computes them from a thumbnail when tiling, or uses the image's own when not.
        stats_size: Longer side of the thumbnail the statistics come from.
        batch: Tiles per inference call.
        naive: Normalise each tile with its own statistics (for comparison only: it shows seams).
        static_size: A static model's ``(height, width)``: the image is padded to at least that size and run in
            tiles of exactly that size (``tile`` is then ignored).
        kind: What the model takes (:func:`cg_export.images.model_input_kind`): the image is fed as RGB,
            luminance or Lab L, and a grey or colorization output comes back as RGB.
        on_tiles: Told ``(tiles done, tiles in all)`` before the first tile and after each inference call, when
            the image is tiled (a progress bar; a whole image is one call and is not reported).
    """
    height, width = image.shape[:2]
    if tile < 0 or overlap < 0 or batch < 1 or stats_size < 1:
        raise ValueError(f"tile ({tile}) and overlap ({overlap}) must be >= 0, batch ({batch}) and stats_size "
                         f"({stats_size}) >= 1")
    padded = pad_to_multiple(image, multiple)
    if static_size is not None:
        padded = pad_to_size(padded, *static_size)
    ph, pw = padded.shape[:2]
    if static_size is not None:
        whole = (ph, pw) == tuple(static_size)
    else:
        whole = not tile or (tile >= ph and tile >= pw)
    if whole:
        x = to_model_input([padded], kind)
        output = runner(x) if stats is None else runner.infer_with_norm_stats(x, stats)
        return from_model_output(output, kind, x)[0, :height, :width]
    if static_size is None and (tile % multiple or overlap % multiple):
        raise ValueError(f"tile ({tile}) and overlap ({overlap}) must be multiples of {multiple}")
    if stats is None and not naive:
        stats = whole_image_stats(runner, image, multiple, stats_size, static_size, kind)
    accumulated: np.ndarray | None = None
    weight_sum = np.zeros((ph, pw), np.float32)
    if static_size is not None:
        windows = plan_static_windows(ph, pw, static_size, overlap)
    else:
        windows = plan_windows(ph, pw, tile, overlap, min_side(multiple))
    by_shape: dict[tuple[int, int], list[Window]] = {}
    for window in windows:
        by_shape.setdefault(window.shape, []).append(window)
    done = 0
    if on_tiles is not None:
        on_tiles(done, len(windows))
    for group in by_shape.values():
        for start in range(0, len(group), batch):
            chunk = group[start : start + batch]
            x = to_model_input([padded[w.top : w.bottom, w.left : w.right] for w in chunk], kind)
            output = runner(x) if naive else runner.infer_with_norm_stats(x, np.repeat(stats, len(chunk), axis=0))
            if accumulated is None:
                accumulated = np.zeros((output.shape[1], ph, pw), np.float32)
            for w, y in zip(chunk, output):
                weights = blend_weights(w, ph, pw, overlap)
                accumulated[:, w.top : w.bottom, w.left : w.right] += y * weights
                weight_sum[w.top : w.bottom, w.left : w.right] += weights
            done += len(chunk)
            if on_tiles is not None:
                on_tiles(done, len(windows))
    blended = accumulated / weight_sum
    return from_model_output(blended[None], kind, to_model_input([padded], kind))[0, :height, :width]
