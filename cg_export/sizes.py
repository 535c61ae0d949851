"""Image sizes a generator accepts: rounding to its size multiple, and the sizes an export is verified on.

At the bottom of the import chain (no torch, numpy or runtime), so the exporters, the TensorRT builder and tiling
share one definition.
"""

from __future__ import annotations

# The working size the toolkit verifies exports at when nothing else decides it.
VERIFICATION_SIDE = 256


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


def round_down(value: int, multiple: int) -> int:
    """Largest multiple of ``multiple`` that is <= ``value``, but never less than ``multiple`` (a size is never 0)."""
    return max(multiple, value // multiple * multiple)


def verification_sizes(
    multiple: int,
    around: tuple[int, int] | None = None,
    width_range: tuple[int, int] | None = None,
) -> list[tuple[int, int]]:
    """``(height, width)`` sizes to compare an export with its reference on: one size and a wider, non-square one.

    The wider size is 3/2 the width rounded up to ``multiple`` (256x256 and 256x384 for a ResNet, whose multiple is
    4), so a model that silently assumes square inputs fails verification.

    Args:
        multiple: Height and width must be multiples of this.
        around: The first size; default ``VERIFICATION_SIDE`` squared, rounded up to ``multiple``.
        width_range: ``(min, max)`` widths the model takes (an engine's profile): the wider size is clipped to the
            max and left out when it is not wider or falls below the min.
    """
    if around is None:
        side = round_up(VERIFICATION_SIDE, multiple)
        around = (side, side)
    height, width = around
    wider = round_up(width * 3 // 2, multiple)
    if width_range is not None:
        wider = min(wider, width_range[1])
        if wider < width_range[0]:
            return [around]
    return [around] if wider == width else [around, (height, wider)]
