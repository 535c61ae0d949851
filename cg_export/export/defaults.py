"""The exporters' defaults, in a module that imports neither torch nor onnx.

The exporters use these values and the command line's help quotes them, so ``--help`` stays fast and a default
is written once.
"""

from __future__ import annotations

#: The opset the ONNX exporter writes, also the oldest it accepts: TensorRT 8.5+ (JetPack 5) parses it.
DEFAULT_OPSET = 17

#: The newest opset the exporter writes as asked (torch 2.13's dynamo exporter writes 17-23; for a larger number it
#: silently writes 18, so larger ones are refused rather than printed as one thing and written as another).
MAX_OPSET = 23

#: How many of the user's ``--verify-photos`` an export is verified on (in addition to the bundled photographs).
VERIFY_PHOTOS_LIMIT = 16

#: Largest fixed batch ``--batch`` accepts (the dynamic batch dimension's upper bound, too).
MAX_BATCH = 4096

#: How int8 calibration turns activation statistics into ranges (ONNX Runtime's calibrators).
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")

#: The calibration method of the default int8 recipe.
DEFAULT_CALIBRATION_METHOD = "percentile"

#: ``cg-export trt``'s optimization profile (NCHW) when no size is given, fitted to the model's size multiple.
DEFAULT_MIN_SHAPE = (1, 3, 128, 128)
DEFAULT_OPT_SHAPE = (1, 3, 256, 256)
DEFAULT_MAX_SHAPE = (1, 3, 1024, 1024)

#: ``cg-export deploy``'s defaults (:func:`cg_export.deploy.deploy` uses them; here so that ``--help`` quotes them
#: without importing torch): the size candidates are verified and timed at, where the deployment runs, its folder.
DEPLOY_SIZE = (256, 256)
DEPLOY_TARGET = "local"
DEPLOY_OUTPUT = "deploy"
