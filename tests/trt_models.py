"""Tiny real ONNX generators for the TensorRT tests, made once per test session (the exporter takes seconds)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx

from tests.conftest import make_generator


@functools.cache
def _folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="cg-export-trt-tests-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.cache
def generator_onnx() -> Path:
    """A resnet_tiny generator (ngf 8, 2 blocks) exported by ``export_onnx``: fp32, dynamic, opset 17."""
    from cg_export.export.onnx import OnnxExportOptions, export_onnx
    from cg_export.models import save_generator

    checkpoint = save_generator(make_generator("resnet_tiny"), _folder() / "g.pt")
    return export_onnx(checkpoint, _folder() / "g.onnx", OnnxExportOptions(verify=False)).path


@functools.cache
def generator_onnx_fp16() -> Path:
    """The same generator as an fp16 graph (normalisation kept in fp32), as ``cg-export onnx --fp16`` writes it."""
    from cg_export.export.precision import convert_to_fp16

    model = convert_to_fp16(onnx.load(str(generator_onnx())))
    for prop in model.metadata_props:
        if prop.key == "cg_export.precision":
            prop.value = "fp16"
    path = _folder() / "g_fp16.onnx"
    onnx.save(model, str(path))
    return path


def quantize(path: Path, output: Path, *, symmetric: bool, signed: bool = True) -> Path:
    """A QDQ model made by ONNX Runtime's static quantizer, calibrated on one real photograph."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from cg_export.images import fit_to_size, sample_photographs, to_model_input

    _, photo = sample_photographs(1)[0]
    batch = to_model_input([fit_to_size(photo, 64, 64)]).astype(np.float32)

    class OnePhoto(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": batch}])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    kind = QuantType.QInt8 if signed else QuantType.QUInt8
    quantize_static(
        str(path), str(output), OnePhoto(), quant_format=QuantFormat.QDQ, activation_type=kind, weight_type=kind,
        per_channel=signed, op_types_to_quantize=["Conv", "ConvTranspose"],
        # TensorRT dequantizes int8 only: biases stay float (the default would add int32 bias Q/DQ).
        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": symmetric, "QuantizeBias": False},
    )
    return output


@functools.cache
def generator_onnx_int8() -> Path:
    """The generator quantized the way TensorRT wants: QDQ, int8, symmetric (zero point 0), per-channel weights."""
    return quantize(generator_onnx(), _folder() / "g_int8.onnx", symmetric=True)


@functools.cache
def generator_onnx_uint8_asymmetric() -> Path:
    """A QDQ model TensorRT refuses: uint8 with non-zero zero points."""
    return quantize(generator_onnx(), _folder() / "g_uint8.onnx", symmetric=False, signed=False)
