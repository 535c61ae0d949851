"""Whole images of any size through a generator: padding to the size multiple, and overlapping tiles that share
whole-image InstanceNorm statistics so their output matches the untiled image.

The statistics come from a downscaled copy of the whole image (a "thumbnail pass", as in URST, AAAI 2022):
``stats_size`` bounds its longer side. Overlapping tiles are blended with linear ramps across the overlap, so
no tile border shows.
"""

from __future__ import annotations

import os
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


def pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Reflect-pad an HxWxC image at the bottom and right to multiples of ``multiple`` (edge-pad when too small)."""
    height, width = image.shape[:2]
    pad = ((0, round_up(height, multiple) - height), (0, round_up(width, multiple) - width), (0, 0))
    if pad[0][1] == 0 and pad[1][1] == 0:
        return image
    reflectable = pad[0][1] < height and pad[1][1] < width
    return np.pad(image, pad, mode="reflect" if reflectable else "edge")


def plan_windows(height: int, width: int, tile: int, overlap: int) -> list[Window]:
    """Windows of ``tile`` + ``overlap`` on each side (clipped at the image border), covering the image."""
    return [
        Window(max(top - overlap, 0), max(left - overlap, 0), min(top + tile + overlap, height),
               min(left + tile + overlap, width))
        for top in range(0, height, tile)
        for left in range(0, width, tile)
    ]


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


def thumbnail(image: np.ndarray, max_side: int, multiple: int) -> np.ndarray:
    """The image downscaled so its longer side is at most ``max_side``, padded to ``multiple``."""
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
                      kind: str = RGB_INPUT) -> np.ndarray:
    """InstanceNorm statistics (1, 2, S) of ``image`` from its thumbnail (exact when the image fits ``stats_size``)."""
    return runner.norm_stats(to_model_input([thumbnail(image, stats_size, multiple)], kind))


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
    kind: str = RGB_INPUT,
) -> np.ndarray:
    """Run one uint8 HxWx3 image through an active runner; returns uint8 HxWx3 of the same size.

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
        kind: What the model takes (:func:`cg_export.images.model_input_kind`): the image is fed as RGB,
            luminance or Lab L, and a grey or colorization output comes back as RGB.
    """
    height, width = image.shape[:2]
    padded = pad_to_multiple(image, multiple)
    ph, pw = padded.shape[:2]
    if not tile or (tile >= ph and tile >= pw):
        x = to_model_input([padded], kind)
        output = runner(x) if stats is None else runner.infer_with_norm_stats(x, stats)
        return from_model_output(output, kind, x)[0, :height, :width]
    if tile % multiple or overlap % multiple:
        raise ValueError(f"tile ({tile}) and overlap ({overlap}) must be multiples of {multiple}")
    if stats is None and not naive:
        stats = whole_image_stats(runner, image, multiple, stats_size, kind)
    accumulated: np.ndarray | None = None
    weight_sum = np.zeros((ph, pw), np.float32)
    windows = plan_windows(ph, pw, tile, overlap)
    by_shape: dict[tuple[int, int], list[Window]] = {}
    for window in windows:
        by_shape.setdefault(window.shape, []).append(window)
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
    blended = accumulated / weight_sum
    return from_model_output(blended[None], kind, to_model_input([padded], kind))[0, :height, :width]
