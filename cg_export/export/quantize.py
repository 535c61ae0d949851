"""INT8: static quantization calibrated on the user's photographs, as one QDQ model for ONNX Runtime and TensorRT.

The format is what TensorRT's explicit quantization requires and what ONNX Runtime's CPU provider runs on
integer kernels: QuantizeLinear/DequantizeLinear pairs, int8 activations with zero point 0 (symmetric), int8
weights quantized per output channel, symmetric. Which nodes stay float is :class:`Int8Recipe`; the choice of
the default recipe and its measured effect are recorded in ``benchmarks/int8_experiments.md``.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from cg_export.errors import CgExportError, ImageError
from cg_export.images import fit_to_size, load_image, to_model_input

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".gif"}


@dataclass(frozen=True)
class Int8Recipe:
    """Which parts of a generator are quantized.

    Attributes:
        op_types: Operator types that get Q/DQ on their inputs (and outputs where ORT fuses them).
        keep_first_and_last_conv: Leave the 7x7 convolutions touching the image in float: they are ~2 % of the
            compute but set the colours of every pixel, so their error is the most visible.
        calibration_method: ``minmax``, ``entropy`` or ``percentile``.
        percentile: Kept fraction of the activation histogram for ``percentile``.
    """

    op_types: tuple[str, ...] = ("Conv", "ConvTranspose")
    keep_first_and_last_conv: bool = True
    calibration_method: str = "percentile"
    percentile: float = 99.999
    exclude_nodes: tuple[str, ...] = field(default=())


DEFAULT_RECIPE = Int8Recipe()


def find_calibration_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted.

    Raises:
        CgExportError: the folder is missing or holds no image files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CgExportError(f"--calib {folder}: no such folder; point it at a folder of your own photographs")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CgExportError(f"--calib {folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def calibration_batches(folder: str | Path, size: int = 256, limit: int | None = None) -> Iterator[np.ndarray]:
    """Yield calibration inputs from the photographs in ``folder``.

    Each photograph is resized to cover ``size`` x ``size`` and centre-cropped (CycleGAN's own training crops,
    so activations are those the generator was trained on), then normalised exactly as at inference
    (:func:`cg_export.images.to_model_input`). One size for all: ONNX Runtime's histogram calibrators need it.
    Unreadable files are skipped; if none is readable the error says so.

    Raises:
        CgExportError: missing folder, no images, or no readable image.
    """
    files = find_calibration_images(folder)[:limit]
    yielded = 0
    failures: list[str] = []
    for path in files:
        try:
            image = load_image(path)
        except ImageError as exc:
            failures.append(str(exc))
            continue
        yielded += 1
        yield to_model_input([fit_to_size(image, size, size)])
    if not yielded:
        raise CgExportError(f"--calib {folder}: none of the {len(files)} images could be read ({failures[0]})")


def quantize_int8(
    model: onnx.ModelProto,
    calibration: Sequence[np.ndarray],
    recipe: Int8Recipe = DEFAULT_RECIPE,
    progress: bool = False,
) -> onnx.ModelProto:
    """Quantize an fp32 generator graph to a QDQ int8 graph calibrated on ``calibration`` inputs.

    Args:
        model: The float32 graph from :func:`cg_export.export.onnx.to_onnx_graph`.
        calibration: Model inputs (float32 NCHW in [-1, 1]), e.g. from :func:`calibration_batches`.
        recipe: What to quantize and how to calibrate.
        progress: Show a progress bar over the calibration images.

    Returns:
        The quantized model (input and output stay float32).
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static

    if recipe.calibration_method not in CALIBRATION_METHODS:
        raise CgExportError(
            f"calibration method {recipe.calibration_method!r}: choose one of {', '.join(CALIBRATION_METHODS)}"
        )
    if not calibration:
        raise CgExportError("no calibration images: int8 needs photographs, never random noise")
    input_name = model.graph.input[0].name
    batches = list(calibration)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            iterator = iter(batches)
            if progress:
                from tqdm import tqdm

                iterator = iter(tqdm(batches, desc="calibrating", unit="img"))
            self._iterator = iterator

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._iterator, None)
            return None if batch is None else {input_name: batch}

    exclude = list(recipe.exclude_nodes)
    if recipe.keep_first_and_last_conv:
        exclude += image_facing_convs(model)
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[recipe.calibration_method]
    extra = {
        "ActivationSymmetric": True,  # zero point 0: TensorRT's explicit quantization requires it
        "WeightSymmetric": True,
        "CalibPercentile": recipe.percentile,
    }
    with tempfile.TemporaryDirectory(prefix="cg-export-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(source))
        # The quantizer prints its calibration steps; the progress bar (stderr) already tells the user.
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(source),
                str(target),
                _Reader(),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(recipe.op_types),
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
                calibrate_method=method,
                extra_options=extra,
            )
        quantized = onnx.load(str(target))
    # The quantizer keeps the metadata of its input only partially; the caller re-adds provenance.
    return quantized


def image_facing_convs(model: onnx.ModelProto) -> list[str]:
    """Names of the first and the last convolution of the graph (the ones reading and writing pixels)."""
    convs = [node.name for node in model.graph.node if node.op_type in ("Conv", "ConvTranspose")]
    return [convs[0], convs[-1]] if len(convs) >= 2 else convs
