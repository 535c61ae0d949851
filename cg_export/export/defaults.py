"""The exporters' defaults, in a module that imports neither torch nor onnx.

The exporters use these values and the command line's help quotes them, so ``--help`` stays fast and a default
is written once.
"""

from __future__ import annotations

#: The opset the ONNX exporter writes, also the oldest it accepts: TensorRT 8.5+ (JetPack 5) parses it.
DEFAULT_OPSET = 17

#: How int8 calibration turns activation statistics into ranges (ONNX Runtime's calibrators).
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")

#: The calibration method of the default int8 recipe.
DEFAULT_CALIBRATION_METHOD = "percentile"
