"""The command line's vocabulary, declared once: every option two commands share, and every option whose help
quotes a library default.

Each function returns a fresh typer declaration for one option, so a command reads
``min_psnr: float | None = min_psnr_option()``. Help texts are formatted from the library's constants, never typed
again, and options whose default the library decides are ``None`` when unset (pass them through
:func:`cg_export.cli.common.given`), so the library owns every default.

Only light modules are imported here (no torch, onnx or onnxruntime): ``--help`` stays fast and ``cg-stylize`` /
``cg-bench`` run on machines without torch.
"""

from __future__ import annotations

from typing import Any

import typer

from cg_export import bench
from cg_export.export.defaults import CALIBRATION_METHODS, DEFAULT_CALIBRATION_METHOD, DEFAULT_OPSET, MAX_OPSET
from cg_export.formats import model_files_text
from cg_export.images import DEFAULT_MAX_PIXELS
from cg_export.parity import DEFAULT_MIN_PSNR
from cg_export.stylize import StylizeOptions
from cg_export.tiling import DEFAULT_OVERLAP, DEFAULT_STATS_SIZE


def _or(words: list[str]) -> str:
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else "".join(words)


def _size(height_width: tuple[int, int]) -> str:
    return f"{height_width[0]}x{height_width[1]}"


def model_files() -> str:
    """The model files the formats table opens, e.g. ``.pt/.pth (PyTorch), .onnx (ONNX Runtime), ...``."""
    return model_files_text()


def psnr_floors() -> str:
    """``50 fp32, 40 fp16, 30 int8``: the default parity floors."""
    return ", ".join(f"{floor:g} {precision}" for precision, floor in DEFAULT_MIN_PSNR.items())


# Shared by several commands.


def output_option(help: str, required: bool = False) -> Any:
    """``-o/--output``: where a command writes."""
    return typer.Option(... if required else None, "-o", "--output", help=help)


def arch_option(help: str = "Force the architecture (e.g. resnet_9blocks) of an ambiguous checkpoint.") -> Any:
    """``--arch``: the generator architecture of a checkpoint whose keys do not decide it."""
    return typer.Option(None, help=help)


def fp16_option(help: str) -> Any:
    """``--fp16``: half precision."""
    return typer.Option(False, "--fp16", help=help)


def int8_option(help: str) -> Any:
    """``--int8``: int8 precision."""
    return typer.Option(False, "--int8", help=help)


def verify_option(help: str) -> Any:
    """``--verify/--no-verify``: check an artifact on real photographs before it is written (on by default)."""
    return typer.Option(True, "--verify/--no-verify", help=help)


def min_psnr_option() -> Any:
    """``--min-psnr``: the parity floor; unset is the precision's own (:data:`cg_export.parity.DEFAULT_MIN_PSNR`)."""
    return typer.Option(None, help=f"Lowest accepted PSNR in dB (default: {psnr_floors()}).")


def torch_device_option() -> Any:
    """``--device``: where PyTorch (.pt/.pth) models run."""
    return typer.Option(None, help="PyTorch device for .pt models: cpu, cuda, cuda:1 (default: cpu).")


def threads_option() -> Any:
    """``--threads``: CPU threads a model runs with (ONNX Runtime intra-op threads, PyTorch threads)."""
    return typer.Option(None, help="CPU threads the model runs with (default: the cores this process may use, "
                                   "from its CPU affinity and cgroup quota).")


def progress_option(help: str = "Show progress bars.") -> Any:
    """``--progress/--no-progress`` (on by default)."""
    return typer.Option(True, "--progress/--no-progress", help=help)


# cg-export onnx.


def opset_option() -> Any:
    """``--opset``."""
    return typer.Option(None, help=f"ONNX opset, {DEFAULT_OPSET} to {MAX_OPSET} (default: {DEFAULT_OPSET}, which "
                                   "TensorRT 8.5+ parses).")


def calib_method_option() -> Any:
    """``--calib-method``: how int8 calibration picks activation ranges."""
    return typer.Option(None, help=f"Calibration: {_or(list(CALIBRATION_METHODS))} "
                                   f"(default: {DEFAULT_CALIBRATION_METHOD}).")


# cg-stylize.


def tile_option() -> Any:
    """``--tile``."""
    return typer.Option(None, help="Tile side in pixels; 0 = whole image (default: from free memory).")


def overlap_option() -> Any:
    """``--overlap``."""
    return typer.Option(None, help=f"Context around each tile, blended (default {DEFAULT_OVERLAP}).")


def stats_size_option() -> Any:
    """``--stats-size``."""
    return typer.Option(None, help=f"Thumbnail side for whole-image InstanceNorm statistics "
                                   f"(default {DEFAULT_STATS_SIZE}).")


def max_pixels_option() -> Any:
    """``--max-pixels``: the largest image read, so a tiny file claiming a huge picture is refused."""
    return typer.Option(None, help=f"Refuse images with more pixels than this before decoding them "
                                   f"(default {DEFAULT_MAX_PIXELS:,}; raise it for very large photographs).")


def tile_batch_option() -> Any:
    """``--batch`` of ``cg-stylize``: tiles per inference call."""
    return typer.Option(None, help=f"Tiles per inference call (default {StylizeOptions().batch}).")


# cg-bench.


def bench_size_option() -> Any:
    """``--size`` (repeatable)."""
    sizes = ", ".join(_size(s) for s in bench.DEFAULT_SIZES)
    return typer.Option(None, "--size", help=f"Input HEIGHTxWIDTH; repeat for several (default: {sizes}).")


def bench_batch_option() -> Any:
    """``--batch`` of ``cg-bench`` (repeatable)."""
    batches = ", ".join(str(b) for b in bench.DEFAULT_BATCHES)
    return typer.Option(None, "--batch", help=f"Batch size; repeat for several (default: {batches}).")


def warmup_option() -> Any:
    """``--warmup``."""
    return typer.Option(None, help=f"Untimed runs per row (default: {bench.DEFAULT_WARMUP}).")


def iterations_option() -> Any:
    """``--iterations``."""
    return typer.Option(None, help="Timed runs per row (default: as many as fit in --duration).")


def duration_option() -> Any:
    """``--duration``."""
    return typer.Option(None, help=f"Seconds of timed runs per row, at least {bench.MIN_SAMPLES} runs "
                                   f"(default: {bench.DEFAULT_DURATION_S:g}; not with --iterations).")


def threshold_option() -> Any:
    """``--threshold`` of ``--compare``."""
    return typer.Option(None, help=f"Regression threshold for --compare, in percent "
                                   f"(default: {bench.DEFAULT_THRESHOLD_PCT:g}).")
