"""The TensorRT releases cg-export supports and the API changes between them (``shared/reference/tensorrt.md``).

- 8.5 (JetPack 5.1) is the oldest: its name-based tensor API (``set_tensor_address``, ``execute_async_v3``) is the
  one every release up to 11 shares, so the runner needs no per-version code.
- 8.5 / 8.6 need an explicit-batch network; from 10.0 explicit batch is implied (the flag is gone in 11).
- 8.5 runs InstanceNorm as the ``InstanceNormalization_TRT`` plugin; 8.6 parses it into its native layer only with
  ``OnnxParserFlag.NATIVE_INSTANCENORM``; 10.0 and newer do so by default.
- 8.6 adds ``builder_optimization_level`` (0-5).
- From 10.12 builder precision flags are deprecated (gone in 11): FP16 comes from an FP16 graph in a strongly typed
  network.
"""

from __future__ import annotations

from typing import Any

from cg_export.formats import format_named
from cg_export.optional import import_optional

OLDEST_SUPPORTED = (8, 5)
OLDEST_SUPPORTED_PLATFORM = "JetPack 5.1"
# Releases from which the network's batch dimension is explicit without asking for it.
EXPLICIT_BATCH_IMPLIED_FROM = (10, 0)
# 8.6 parses InstanceNormalization into its native layer when this parser flag is set; before, a plugin runs it.
NATIVE_INSTANCENORM_FLAG_FROM = (8, 6)
# ... and from this release the parser does so without the flag.
NATIVE_INSTANCENORM_DEFAULT_FROM = (10, 0)
BUILDER_OPTIMIZATION_LEVEL_FROM = (8, 6)
BUILDER_OPTIMIZATION_LEVELS = range(0, 6)
# From this release on, FP16 comes from the graph (strongly typed network) rather than from a builder flag.
STRONGLY_TYPED_FROM = (10, 12)

TENSORRT_HINT = format_named("trt").requirement.install


def import_tensorrt() -> Any:
    """Import ``tensorrt`` or raise a one-line :class:`~cg_export.errors.MissingDependencyError` saying how."""
    return import_optional("tensorrt", "to build and run TensorRT engines", TENSORRT_HINT, package="TensorRT")


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.3.0"`` / ``"8.5.2.2"`` -> ``(10, 3, 0)`` / ``(8, 5, 2, 2)``."""
    return tuple(int(part) for part in str(text).split(".") if part.isdigit())


def tensorrt_version(trt: Any) -> tuple[int, ...]:
    """The version of an imported ``tensorrt`` module, as numbers."""
    return parse_version(trt.__version__)


def major_minor(version: tuple[int, ...]) -> tuple[int, int]:
    """``(10, 3, 0)`` -> ``(10, 3)``; ``(10,)`` -> ``(10, 0)``."""
    return (tuple(version) + (0, 0))[:2]  # type: ignore[return-value]


def dotted(version: tuple[int, ...]) -> str:
    """``(8, 6)`` -> ``"8.6"``."""
    return ".".join(map(str, version))


def too_old(version: tuple[int, ...]) -> str | None:
    """Why cg-export cannot use TensorRT ``version``, or ``None`` when it is supported."""
    if major_minor(version) >= OLDEST_SUPPORTED:
        return None
    return (
        f"TensorRT {dotted(version)} is too old: cg-export needs {dotted(OLDEST_SUPPORTED)} or newer "
        f"({OLDEST_SUPPORTED_PLATFORM}+), whose name-based execution API (execute_async_v3) the runtime uses"
    )
