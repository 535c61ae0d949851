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

from cg_export.errors import CgExportError, ImageError, OptionError
from cg_export.export.defaults import CALIBRATION_METHODS, DEFAULT_CALIBRATION_METHOD
from cg_export.graph_edit import prune_unused
from cg_export.images import IMAGE_SUFFIXES, RGB_INPUT, fit_to_size, load_image, to_model_input
from cg_export.threads import ThreadSettings


@dataclass(frozen=True)
class Int8Recipe:
    """Which parts of a generator are quantized.

    Attributes:
        op_types: Operator types that get Q/DQ on their inputs (and outputs where ORT fuses them). The default
            leaves the two ConvTranspose upsampling layers float: ONNX Runtime's CPU provider has no fused integer
            ConvTranspose (it would only add Q/DQ work), and they are the layers most sensitive to int8
            (43.3 dB instead of 29.8 dB on held-out photographs; benchmarks/int8_experiments.md).
        keep_first_and_last_conv: Leave the 7x7 convolutions touching the image in float: they are ~2 % of the
            compute but set the colours of every pixel, so their error is the most visible.
        calibration_method: ``minmax``, ``entropy`` or ``percentile``.
        percentile: Kept fraction of the activation histogram for ``percentile``.
        exclude_nodes: Further node names to keep in float.
        equalize_pre_norm: Rescale and re-centre, per channel, every convolution that feeds an InstanceNorm so
            its output channels share one range (see :func:`equalize_pre_norm_convs`).
    """

    op_types: tuple[str, ...] = ("Conv",)
    keep_first_and_last_conv: bool = True
    calibration_method: str = DEFAULT_CALIBRATION_METHOD
    percentile: float = 99.99
    exclude_nodes: tuple[str, ...] = field(default=())
    equalize_pre_norm: bool = True


DEFAULT_RECIPE = Int8Recipe()


def int8_next_step(method: str, photographs: int) -> str:
    """What to try after an int8 export missed its floor, given what this one tried: the calibration methods not
    yet used (never the one just used), more photographs than the ``photographs`` it was calibrated on, or fp16.

    Mixed precision (some layers fp16) is not offered: no exporter here makes it yet.
    """
    others = [name for name in CALIBRATION_METHODS if name != method]
    steps = [f"calibrate on more (and more typical) photographs of your own than the {photographs} it was "
             "calibrated on (--calib)"]
    if others:
        steps.append("try " + " or ".join(f"--calib-method {name}" for name in others) + f" (this was {method})")
    steps.append("ship fp16 (--fp16)")
    return ", ".join(steps[:-1]) + ", or " + steps[-1]


def find_calibration_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted.

    Raises:
        OptionError: (field ``calib``) the folder is missing or holds no image files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise OptionError("calib", folder, "no such folder; point it at a folder of your own photographs")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise OptionError("calib", folder, f"no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def calibration_batches(
    folder: str | Path, size: int = 256, limit: int | None = None, kind: str = RGB_INPUT,
    skipped: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Yield calibration inputs from the photographs in ``folder`` (as ``kind``: RGB, grey-scale or Lab L).

    Each photograph is resized to cover ``size`` x ``size`` and centre-cropped (CycleGAN's own training crops,
    so activations are those the generator was trained on), then normalised exactly as at inference
    (:func:`cg_export.images.to_model_input`). One size for all: ONNX Runtime's histogram calibrators need it.
    Unreadable files are skipped (each one's ``name (reason)`` appended to ``skipped``, so the caller can say
    so); if none is readable the error says so. Images are read one at a time, as they are consumed.

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
            if skipped is not None:
                skipped.append(f"{path.name} ({str(exc).removeprefix(str(path)).lstrip(': ')})")
            continue
        yielded += 1
        yield to_model_input([fit_to_size(image, size, size)], kind)
    if not yielded:
        raise OptionError("calib", folder, f"none of the {len(files)} images could be read ({failures[0]})")


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
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if recipe.calibration_method not in CALIBRATION_METHODS:
        raise CgExportError(
            f"calibration method {recipe.calibration_method!r}: choose one of {', '.join(CALIBRATION_METHODS)}"
        )
    if not calibration:
        raise CgExportError("no calibration images: int8 needs photographs, never random noise")
    input_name = model.graph.input[0].name
    batches = list(calibration)
    if recipe.equalize_pre_norm:
        model = equalize_pre_norm_convs(model, batches)

    class _Reader(CalibrationDataReader):
        """Hands ONNX Runtime the batches a chunk at a time (``set_range``): after each chunk its calibrator folds
        the activations into its ranges or histograms and drops them, instead of keeping every activation of
        every photograph until the end (gigabytes for a few hundred photographs)."""

        def __init__(self) -> None:
            self._bar = None
            if progress:
                from tqdm import tqdm

                self._bar = tqdm(total=len(batches), desc="calibrating", unit="img")
            self._iterator = iter(batches)

        def __len__(self) -> int:
            return len(batches)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._iterator = iter(batches[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._iterator, None)
            if batch is not None and self._bar is not None:
                self._bar.update(1)
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
        # Biases are quantized to int32 (scale = input scale x weight scale): ONNX Runtime fuses DQ-Conv-Q into
        # its integer convolution only with such a bias. TensorRT dequantizes int8 only, so the TensorRT builder
        # folds these constant int32 DequantizeLinear nodes back into float biases (fold_bias_dequantization).
        "QuantizeBias": True,
        "CalibPercentile": recipe.percentile,
        # Despite its name, ONNX Runtime applies this chunking to every calibrator: collect_data runs once per
        # chunk of this many batches (a divisor of their number, as it requires), so memory stays bounded.
        "CalibStridedMinMax": calibration_chunk(len(batches)),
    }
    with tempfile.TemporaryDirectory(prefix="cg-export-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        # ONNX Runtime logs advice (on the root logger) to run its pre-processing, which is for graphs without shape
        # information; ours are fully shape-inferred. The copy it reads says so with the quantizer's own tag,
        # instead of a filter on the root logger that would hide other programs' records too.
        tagged = onnx.ModelProto.FromString(model.SerializeToString())
        onnx.helper.set_model_props(tagged, {**{p.key: p.value for p in tagged.metadata_props}, **_PREPROCESSED})
        onnx.save(tagged, str(source))
        # The quantizer prints its calibration steps (the progress bar already tells the user).
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
    kept = [(p.key, p.value) for p in quantized.metadata_props if p.key not in _PREPROCESSED]
    del quantized.metadata_props[:]
    onnx.helper.set_model_props(quantized, dict(kept))
    # The quantizer keeps the metadata of its input only partially; the caller re-adds provenance.
    return quantized


#: ONNX Runtime's mark of a graph its quantization pre-processing has seen (``add_pre_process_metadata``).
_PREPROCESSED = {"onnx.quant.pre_process": "onnxruntime.quant"}


CALIBRATION_CHUNK = 8


def calibration_chunk(count: int, largest: int = CALIBRATION_CHUNK) -> int:
    """The largest chunk size up to ``largest`` that divides ``count`` (ONNX Runtime's chunking needs a divisor)."""
    return next(size for size in range(min(largest, count), 0, -1) if count % size == 0)


def image_facing_convs(model: onnx.ModelProto) -> list[str]:
    """Names of the first and the last convolution of the graph (the ones reading and writing pixels)."""
    convs = [node.name for node in model.graph.node if node.op_type in ("Conv", "ConvTranspose")]
    return [convs[0], convs[-1]] if len(convs) >= 2 else convs


def equalize_pre_norm_convs(model: onnx.ModelProto, calibration: Sequence[np.ndarray]) -> onnx.ModelProto:
    """Give every output channel of each convolution that feeds an InstanceNorm zero mean and unit spread.

    Why: ONNX Runtime fuses a quantized convolution only with a per-tensor quantized *output*, and these outputs
    are the InstanceNorm inputs. Their channels differ in offset and spread by orders of magnitude, so one scale
    for the whole tensor leaves the quiet channels with a handful of levels, and InstanceNorm then amplifies
    exactly that noise (about 20 dB on a trained 9-block generator). InstanceNorm removes each channel's mean
    and divides by its spread, so rescaling a channel's weights by ``1/std`` and replacing its bias by
    ``-mean/std`` (both measured on the calibration images) leaves the generator's output unchanged, up to the
    relative weight of the norm's epsilon, while every channel now fits the same int8 grid.

    Returns:
        A copy of ``model`` with rescaled Conv / ConvTranspose weights and biases.
    """
    from onnx import numpy_helper

    from cg_export.backends.onnxruntime import import_onnxruntime

    model = onnx.ModelProto.FromString(model.SerializeToString())
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    targets = [
        node for node in model.graph.node
        if node.op_type in ("Conv", "ConvTranspose")
        and [c.op_type for c in consumers.get(node.output[0], [])] == ["InstanceNormalization"]
        and _attribute(node, "group", 1) == 1
    ]
    if not targets:
        return model
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    for node in targets:
        probe.graph.output.add(name=node.output[0])
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    ThreadSettings.resolve().apply_to_onnxruntime(options)  # the usable cores, waiting passively (cg_export.threads)
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [node.output[0] for node in targets]
    sums: dict[str, np.ndarray] = {}
    squares: dict[str, np.ndarray] = {}
    count = 0
    for batch in calibration:
        values = dict(zip(names, session.run(names, {model.graph.input[0].name: batch})))
        count += values[names[0]].shape[0] * values[names[0]].shape[2] * values[names[0]].shape[3]
        for name, value in values.items():
            value = value.astype(np.float64)
            sums[name] = sums.get(name, 0) + value.sum(axis=(0, 2, 3))
            squares[name] = squares.get(name, 0) + (value * value).sum(axis=(0, 2, 3))
    initializers = {init.name: init for init in model.graph.initializer}
    for node in targets:
        name = node.output[0]
        mean = sums[name] / count
        std = np.sqrt(np.maximum(squares[name] / count - mean * mean, 0.0))
        # Dead channels (no spread on any calibration image) are left as they are.
        scale = np.where(std > 1e-6, 1.0 / np.maximum(std, 1e-6), 1.0)
        weight_init = initializers[node.input[1]]
        weight = numpy_helper.to_array(weight_init).astype(np.float64)
        axis = 0 if node.op_type == "Conv" else 1  # ConvTranspose weights are (in, out, kH, kW)
        shape = [1] * weight.ndim
        shape[axis] = -1
        weight_init.CopyFrom(numpy_helper.from_array((weight * scale.reshape(shape)).astype(np.float32), weight_init.name))
        bias = numpy_helper.to_array(initializers[node.input[2]]).astype(np.float64) if len(node.input) > 2 and node.input[2] else 0.0
        new_bias = ((bias - mean) * scale).astype(np.float32)
        bias_name = f"{node.name}_equalized_bias"
        model.graph.initializer.append(numpy_helper.from_array(new_bias, bias_name))
        if len(node.input) > 2:
            node.input[2] = bias_name
        else:
            node.input.append(bias_name)
    prune_unused(model)
    return model


def _attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    for attribute in node.attribute:
        if attribute.name == name:
            return attribute.i
    return default


def fold_bias_dequantization(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every DequantizeLinear of a constant int32 tensor (a quantized bias) by its float value.

    The same QDQ file then serves both runtimes: ONNX Runtime needs int32 biases to fuse integer convolutions,
    TensorRT's explicit quantization takes int8 Q/DQ only and wants float biases.

    Returns:
        A copy of ``model``; unchanged if it has no such nodes.
    """
    from onnx import numpy_helper

    initializers = {init.name: init for init in model.graph.initializer}
    folds = {}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in initializers:
            continue
        values = numpy_helper.to_array(initializers[node.input[0]])
        if values.dtype != np.int32:
            continue
        scale = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float64)
        zero = numpy_helper.to_array(initializers[node.input[2]]) if len(node.input) > 2 and node.input[2] else 0
        folds[node.output[0]] = ((values.astype(np.float64) - zero) * scale).astype(np.float32)
    if not folds:
        return model
    folded = onnx.ModelProto.FromString(model.SerializeToString())
    kept = [n for n in folded.graph.node if not (n.op_type == "DequantizeLinear" and n.output[0] in folds)]
    del folded.graph.node[:]
    folded.graph.node.extend(kept)
    folded.graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in folds.items())
    prune_unused(folded)
    return folded
