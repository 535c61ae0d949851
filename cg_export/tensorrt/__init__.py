"""What cg-export knows about TensorRT, in one place, for the builder, the runner and ``cg-export check``.

- :mod:`~cg_export.tensorrt.versions`: the releases supported, how to import TensorRT, and the API changes between
  releases that the builder adapts to (explicit batch, native InstanceNorm, strongly typed networks).
- :mod:`~cg_export.tensorrt.parser`: each ONNX parser release's support matrix (opsets, operators, Resize modes).
- :mod:`~cg_export.tensorrt.dla`: what DLA (Jetson Xavier / Orin) runs and its limits.
- :mod:`~cg_export.tensorrt.sidecar`: the ``<engine>.json`` build record, its writer and its reader.

Nothing here imports ``tensorrt``, torch or onnx at import time: a Jetson that only runs engines can use it, and
``cg-export check`` uses it on machines without TensorRT. The builder (:mod:`cg_export.export.trt`), the runner
(:mod:`cg_export.backends.tensorrt`) and :mod:`cg_export.check` read these facts; this package imports none of
them (only ``files``, ``metadata`` and ``optional``, below all three), and the runner never imports the builder.
"""
