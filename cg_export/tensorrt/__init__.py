"""What cg-export knows about TensorRT, in one place, for the builder, the runner and ``cg-export check``.

- :mod:`~cg_export.tensorrt.versions`: the releases supported, how to import TensorRT, and the API changes between
  releases that the builder adapts to (explicit batch, native InstanceNorm, strongly typed networks).
- :mod:`~cg_export.tensorrt.parser`: each ONNX parser release's support matrix (opsets, operators, Resize modes).
- :mod:`~cg_export.tensorrt.dla`: what DLA (Jetson Xavier / Orin) runs and its limits.
- :mod:`~cg_export.tensorrt.sidecar`: the ``<engine>.json`` build record, its writer and its reader.
- :mod:`~cg_export.tensorrt.check`: ``cg-export check``, the pre-flight that applies these facts to an ONNX graph
  (it reads the graph with onnx; import it only where a graph is checked).

Nothing here imports ``tensorrt`` or torch at import time: a Jetson that only runs engines can use it, and
``cg-export check`` uses it on machines without TensorRT. The builder (:mod:`cg_export.export.trt`) and the runner
(:mod:`cg_export.backends.tensorrt`) read these facts; this package imports neither (only ``files``, ``formats``,
``metadata`` and ``optional``, below both), and the runner never imports the builder.
"""
