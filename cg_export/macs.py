"""Multiply-accumulates and parameters of a generator, counted by ptflops (never by a hand formula).

ptflops' ``aten`` backend runs the network once under a ``TorchDispatchMode`` and counts the multiply-adds of every
convolution and matrix product at the ATen level, so depthwise (grouped) and transposed convolutions are counted
from the operator's real shapes, whatever module wraps them. Normalisation, activation and padding add no MACs.

The network runs on PyTorch's ``meta`` device: shapes only, no arithmetic, no memory, so counting a 9-block
generator at 1024x1024 costs as little as at 64x64.

A note on the number everyone quotes: CycleGAN's 9-block ngf-64 generator counts 49.6 G MACs at 256x256 here.
GAN Compression (and the papers that copy its table) report 56.8 G because their profiler counts each ConvTranspose
over its zero-inserted *output* grid (4x the multiply-adds a stride-2 transposed convolution performs); ptflops and
PyTorch's own ``torch.utils.flop_counter`` both count it over its input, which is what the hardware executes.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cg_export.errors import CgExportError
from cg_export.optional import import_optional

_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


@dataclass(frozen=True)
class ModelCost:
    """What one forward pass of a generator costs.

    Attributes:
        macs: Multiply-accumulates of one image (batch 1).
        params: Trainable and frozen parameters.
        height: Input height the MACs were counted at.
        width: Input width the MACs were counted at.
    """

    macs: int
    params: int
    height: int
    width: int

    def describe(self) -> str:
        """``4.30 G MACs at 256x256, 0.21 M params``."""
        return f"{format_count(self.macs)} MACs at {self.height}x{self.width}, {format_count(self.params)} params"


def count_cost(model_or_config: nn.Module | dict[str, Any], height: int = 256, width: int | None = None) -> ModelCost:
    """Count a generator's MACs (one image of ``height`` x ``width``) and parameters with ptflops.

    Args:
        model_or_config: A generator built by :func:`cg_export.models.create_generator` (its ``config`` is rebuilt
            on the meta device; the model itself is not touched), an architecture config dict, or any other
            ``nn.Module`` (counted as it is, on its own device).
        height: Input height.
        width: Input width (default: ``height``).

    Returns:
        The counts.

    Raises:
        MissingDependencyError: ptflops is not installed.
        CgExportError: ptflops could not run the network at that size.
    """
    from cg_export.models.registry import create_generator

    width = width or height
    config = model_or_config if isinstance(model_or_config, dict) else getattr(model_or_config, "config", None)
    if isinstance(config, dict):
        arguments = dict(config)
        with torch.device("meta"):
            model = create_generator(arguments.pop("name"), **arguments)
        in_channels = int(config.get("in_channels", 3))
    else:
        model = model_or_config
        in_channels = int(getattr(model, "in_channels", 3))
    ptflops = import_optional("ptflops", "to count MACs and parameters", 'pip install "ptflops>=0.7.3"')
    output = io.StringIO()
    # ptflops prints a failure instead of raising it; capture it so it can be raised as one line.
    with contextlib.redirect_stdout(output):
        macs, params = ptflops.get_model_complexity_info(
            model, (in_channels, height, width), as_strings=False, print_per_layer_stat=False, backend="aten",
        )
    if macs is None or params is None:
        reason = next((line for line in output.getvalue().splitlines() if "Error" in line or ":" in line), "")
        raise CgExportError(f"cannot count the MACs of this network at {height}x{width}: {reason.strip()}")
    return ModelCost(int(macs), int(params), height, width)


def format_count(value: float) -> str:
    """``4300000000`` -> ``4.30 G``; ``210000`` -> ``0.21 M``."""
    for unit in ("T", "G", "M"):
        if value >= 0.1 * _UNITS[unit]:
            return f"{value / _UNITS[unit]:.2f} {unit}"
    return f"{value / 1e3:.2f} K"


def parse_count(text: str, option: str = "--macs") -> int:
    """``"5G"``, ``"2.67 G"``, ``"800M"``, ``"1.5e9"`` -> an integer count.

    Raises:
        CgExportError: the text is not a positive number with an optional K, M, G or T suffix.
    """
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)\s*(?:MACs?)?\s*", text)
    value = float(found.group(1)) * _UNITS[found.group(2).upper()] if found else 0.0
    if value < 1:
        raise CgExportError(f"{option} {text!r}: expected a positive count such as 5G, 800M or 2.5e9")
    return int(value)


def cost_of_architecture(architecture: dict[str, Any] | None, height: int, width: int) -> ModelCost | None:
    """:func:`count_cost` of a recorded architecture (``runner.info.metadata.architecture``), ``None`` when the file
    records none or ptflops cannot count it: for report columns, which show a dash rather than fail the run."""
    if not architecture or not isinstance(architecture.get("name"), str):
        return None
    try:
        return count_cost(architecture, height, width)
    except (CgExportError, TypeError, ValueError):
        return None


def cost_of_runner(runner: Any, height: int, width: int) -> ModelCost | None:
    """:func:`cost_of_architecture` of what an active runner's model file records (``None`` if it says nothing)."""
    try:
        architecture = runner.info.metadata.architecture
    except CgExportError:  # a runner that does not describe its model
        return None
    return cost_of_architecture(architecture, height, width)
