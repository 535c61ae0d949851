"""The command line's vocabulary, declared once: every option two commands share, and every option whose help
quotes a library default.

One idea, one flag, one meaning and one default in every console script (``cg-export``, ``cg-bench``,
``cg-stylize``, ``cg-train``, ``cg-compress``, ``cg-demo``); ``tests/cg_export/cli/test_vocabulary.py`` reads every command's
options and holds them to this table:

| idea       | flag                                 | meaning (default)                                      | old spellings           |
|------------|--------------------------------------|--------------------------------------------------------|-------------------------|
| output     | -o/--output PATH                     | where the command writes, a file or a folder           | --out (cg-train,        |
|            |                                      |                                                        | cg-demo)                |
| precision  | --fp16, --int8                       | the model computes in half precision / int8 (fp32);    | --half (cg-bench)       |
|            |                                      | --amp (cg-train, cg-compress) stays: mixed-precision   |                         |
|            |                                      | *training*, a different idea                           |                         |
| size       | --size HxW (N = NxN)                 | the image size a model runs at: onnx fixes the graph   | --static (onnx),        |
|            |                                      | to it, cg-bench times it (repeatable), deploy verifies | --image-size (cg-train, |
|            |                                      | at it, trt builds for it, training crops it (square)   | cg-compress)            |
| size range | --size-range MINHxMINW:MAXHxMAXW     | the sizes a TensorRT engine takes (trt, deploy)        | --engine-min-size and   |
|            |                                      |                                                        | --engine-max-size,      |
|            |                                      |                                                        | --min/opt/max-shape     |
| batch      | --batch N                            | images per inference (or training) call: onnx fixes    | --batch-size (cg-train, |
|            |                                      | the graph's, cg-bench times it (repeatable), stylize   | cg-compress)            |
|            |                                      | runs tiles N at a time, trt fixes the profile's N,     |                         |
|            |                                      | training takes N images per domain per step            |                         |
| photos     | --photos DIR                         | a folder of your own photographs to learn or check on  | PHOTOS (cg-compress)    |
| threads    | --threads N                          | CPU threads (the cores this process may use)           | (missing in cg-compress,|
|            |                                      |                                                        | cg-demo, openvino)      |
| device     | --device auto|cpu|cuda|cuda:N        | where PyTorch runs (auto: CUDA when PyTorch sees a     | (default was cpu in     |
|            |                                      | GPU, else the CPU)                                     | cg-bench, cg-stylize)   |
| progress   | --progress/--no-progress             | progress bars (on)                                     |                         |
| JSON       | --json PATH                          | write the result as JSON (deploy: - is stdout)         | bare --json (deploy)    |
| target     | --target local|jetson                | where a deployment runs (deploy only)                  |                         |
| TensorRT   | --trt-version VERSION                | which TensorRT's parser check judges by (installed,    | --target trt=V (check)  |
| version    |                                      | else the oldest supported)                             |                         |
| version    | --version                            | the console script's name and version                  | (missing in cg-compress)|

Old flags keep working as hidden aliases (:mod:`cg_export.cli.aliases`) that print one ``deprecated:`` line.

Each function returns a fresh typer declaration for one option, so a command reads
``min_psnr: float | None = min_psnr_option()``. Help texts are formatted from the library's constants, never typed
again, and options whose default the library decides are ``None`` when unset (pass them through
:func:`cg_export.cli.common.given`), so the library owns every default. A command's parameter is named like the
library's argument it feeds (``static_size`` behind ``--size``), so a library error naming that field is reported
with the command's flag (:func:`cg_export.cli.common.reports_errors`).

Only light modules are imported here (no torch, onnx or onnxruntime): ``--help`` stays fast and ``cg-stylize`` /
``cg-bench`` run on machines without torch.
"""

from __future__ import annotations

from typing import Any

import typer

from cg_export import bench
from cg_export.devices import DEFAULT_DEVICE, DEVICE_CHOICES
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
    """``--fp16``: half precision (the only spelling; ``--half`` is an alias)."""
    return typer.Option(False, "--fp16", help=help)


def int8_option(help: str) -> Any:
    """``--int8``: int8 precision."""
    return typer.Option(False, "--int8", help=help)


def verify_option(help: str) -> Any:
    """``--verify/--no-verify``: check an artifact on real photographs before it is written (on by default)."""
    return typer.Option(True, "--verify/--no-verify", help=help)


def min_psnr_option() -> Any:
    """``--min-psnr``: the parity floor; unset is the precision's own (:data:`cg_export.parity.DEFAULT_MIN_PSNR`)."""
    return typer.Option(None, "--min-psnr", help=f"Lowest accepted PSNR in dB (default: {psnr_floors()}).")


def size_option(help: str, default: tuple[int, int] | None = None) -> Any:
    """``--size HxW``: one image size (``N`` is ``NxN``); parse it with :func:`cg_export.cli.common.parse_size`.

    Args:
        help: What the size is for; the default (when the library has one) is appended.
        default: The library's default, quoted in the help; the option itself stays ``None`` when unset.
    """
    quoted = f" (default: {_size(default)})" if default is not None else ""
    return typer.Option(None, "--size", metavar="HxW", help=f"{help}{quoted}.")


def size_range_option(help: str) -> Any:
    """``--size-range MINHxMINW:MAXHxMAXW``: the smallest and largest image sizes, written as one value."""
    return typer.Option(None, "--size-range", metavar="MINHxMINW:MAXHxMAXW", help=help)


def batch_option(help: str) -> Any:
    """``--batch N``: images per inference (or training) call."""
    return typer.Option(None, "--batch", help=help)


def photos_option(help: str, required: bool = False) -> Any:
    """``--photos DIR``: a folder of the user's own photographs."""
    return typer.Option(... if required else None, "--photos", help=help)


def device_option() -> Any:
    """``--device``: where PyTorch runs, the same default (:data:`cg_export.devices.DEFAULT_DEVICE`) everywhere."""
    return typer.Option(None, "--device", help=f"Where PyTorch runs: {_or(list(DEVICE_CHOICES))} (default: "
                                               f"{DEFAULT_DEVICE} = CUDA when PyTorch sees a GPU, else the CPU).")


def torch_device_option() -> Any:
    """``--device`` (the name the model-running commands used; the same declaration as :func:`device_option`)."""
    return device_option()


def threads_option() -> Any:
    """``--threads``: CPU threads a model runs with (ONNX Runtime intra-op threads, PyTorch threads)."""
    return typer.Option(None, "--threads", help="CPU threads the model runs with (default: the cores this process "
                                                "may use, from its CPU affinity and cgroup quota).")


def progress_option() -> Any:
    """``--progress/--no-progress`` (on by default)."""
    return typer.Option(True, "--progress/--no-progress", help="Show progress bars.")


def json_option(help: str, stdout: bool = False) -> Any:
    """``--json PATH``: write the result as JSON to PATH (``-``: stdout, where the command can keep stdout for it).

    Args:
        help: What is written.
        stdout: The command takes ``-`` and then prints everything else on stderr.
    """
    return typer.Option(None, "--json", metavar="PATH", help=f"{help}{' (- for stdout)' if stdout else ''}.")


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
    """``--batch`` of ``cg-stylize``: images (tiles) per inference call."""
    return batch_option(f"Tiles per inference call (default {StylizeOptions().batch}).")


# cg-bench.


def bench_size_option() -> Any:
    """``--size`` (repeatable)."""
    sizes = ", ".join(_size(s) for s in bench.DEFAULT_SIZES)
    return typer.Option(None, "--size", metavar="HxW", help=f"Input size; repeat for several (default: {sizes}).")


def bench_batch_option() -> Any:
    """``--batch`` of ``cg-bench`` (repeatable)."""
    batches = ", ".join(str(b) for b in bench.DEFAULT_BATCHES)
    return typer.Option(None, "--batch", help=f"Images per inference call; repeat for several "
                                              f"(default: {batches}).")


def warmup_option(per: str = "row") -> Any:
    """``--warmup``: untimed runs per ``per`` (a ``cg-bench`` row, a ``deploy`` candidate)."""
    return typer.Option(None, help=f"Untimed runs per {per} (default: {bench.DEFAULT_WARMUP}).")


def iterations_option(per: str = "row") -> Any:
    """``--iterations``."""
    return typer.Option(None, help=f"Timed runs per {per} (default: as many as fit in --duration).")


def duration_option(per: str = "row") -> Any:
    """``--duration``."""
    return typer.Option(None, "--duration", help=f"Seconds of timed runs per {per}, at least {bench.MIN_SAMPLES} runs "
                                   f"(default: {bench.DEFAULT_DURATION_S:g}; not with --iterations).")


def threshold_option() -> Any:
    """``--threshold`` of ``--compare``."""
    return typer.Option(None, "--threshold", help=f"Regression threshold for --compare, in percent "
                                   f"(default: {bench.DEFAULT_THRESHOLD_PCT:g}).")
