"""What an ONNX file claims about its sizes, checked before a runtime believes it.

A file from elsewhere can claim anything: an initializer of 65536 x 65536 backed by four values (numpy's reshape
fails with a traceback), a static input of 1,000,000 x 1,000,000 pixels (a tool sizing its buffers from it asks
for terabytes), an ``Expand`` to hundreds of gigabytes (the runtime dies in ``bad_alloc``). Every tensor's claimed
size is compared with the bytes it holds (:func:`check_tensor_claims`, called with the external data check on every
open), and before a model runs its static shapes, as ONNX shape inference propagates them, are compared with the
pixel limit and this machine's memory (:func:`check_model_limits`). What still runs out of memory in a runtime
becomes one line (:func:`out_of_memory_error`).

A leaf module: ``onnx`` (lazily), :mod:`cg_export.errors` and the pixel limit's constant.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from cg_export.errors import BackendError

#: The default pixel limit of one image (:data:`cg_export.images.DEFAULT_MAX_PIXELS`), kept here as a number so
#: this module needs neither PIL nor numpy; tests pin the two equal.
DEFAULT_MAX_PIXELS = 2 * 89_478_485

# Element types packed several to a byte, and their bits per element.
_PACKED_BITS = {"INT4": 4, "UINT4": 4, "FLOAT4E2M1": 4, "INT2": 2, "UINT2": 2, "FLOAT6E2M3": 6, "FLOAT6E3M2": 6}


def format_bytes(size: float) -> str:
    """``"2.7 TiB"``, ``"512.0 MiB"``: a size in binary units for messages."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"


def memory_limit() -> int | None:
    """Bytes this process may use at most: the smaller of the machine's memory and a cgroup memory limit."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        pass
    for file in (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        try:
            text = file.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 writes a huge number for "no limit"
            limits.append(int(text))
    return min(limits) if limits else None


def _claimed(tensor: Any) -> tuple[int, int | None, str]:
    """Elements, bytes (``None`` for strings) and type name a tensor's dims and type claim."""
    import onnx

    if any(d < 0 for d in tensor.dims):
        raise ValueError("a negative dimension")
    count = math.prod(tensor.dims)
    name = onnx.TensorProto.DataType.Name(tensor.data_type)
    if tensor.data_type == onnx.TensorProto.STRING:
        return count, None, name
    if name in _PACKED_BITS:
        return count, (count * _PACKED_BITS[name] + 7) // 8, name
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return count, None, name
    return count, count * itemsize, name


def _shape(dims: Any) -> str:
    return " x ".join(str(d) for d in dims) or "a scalar"


def check_tensor_claims(path: Path, tensor: Any, stored_bytes: int | None = None) -> int:
    """Refuse a tensor whose dims claim more (or fewer) elements than it holds.

    Args:
        path: The model file, for the message.
        tensor: An ``onnx.TensorProto`` (an initializer or a ``Constant``'s value).
        stored_bytes: For external data, the bytes its file holds for it; ``None`` for data kept in the tensor.

    Returns:
        The bytes the tensor takes in memory (0 for strings).

    Raises:
        BackendError: the claim and the data disagree, or a dimension is negative.
    """
    import onnx

    refuse = f"{path}: refused: tensor {tensor.name!r} claims shape {_shape(tensor.dims)}"
    try:
        count, size, type_name = _claimed(tensor)
    except ValueError as exc:
        raise BackendError(f"{refuse} with {exc}; the file is corrupt or hostile") from None
    if size is None:
        return 0
    if stored_bytes is not None:
        held = stored_bytes
    elif tensor.data_location == onnx.TensorProto.EXTERNAL:
        return size
    elif tensor.raw_data:
        held = len(tensor.raw_data)
    elif type_name in _PACKED_BITS:
        return size  # packed types in typed fields: left to the runtime, which checks them itself
    else:
        fields = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")
        values = sum(len(getattr(tensor, field)) for field in fields)
        expected = count * (2 if type_name in ("COMPLEX64", "COMPLEX128") else 1)
        if values != expected:
            raise BackendError(f"{refuse} ({count:,} {type_name} values, {format_bytes(size)}) but holds {values:,} "
                               "values; the file is corrupt or hostile")
        return size
    if held != size:
        raise BackendError(f"{refuse} ({format_bytes(size)} of {type_name}) but holds {format_bytes(held)}; the file "
                           "is corrupt or hostile")
    return size


def check_model_limits(path: str | Path, model: Any = None, max_pixels: int | None = None,
                       memory: int | None = None) -> None:
    """Refuse, before a runtime loads it, a model whose static shapes cannot run here.

    Every tensor with a fully static shape after ONNX shape inference (inputs, outputs, intermediates such as an
    ``Expand``'s result) must fit in this machine's memory, and a static image input in the pixel limit; the
    initializers together must fit in memory too.

    Args:
        path: The ``.onnx`` file.
        model: Its ``onnx.ModelProto`` without external data, if already loaded.
        max_pixels: The largest image (height x width) an input may claim; ``None`` is :data:`DEFAULT_MAX_PIXELS`.
        memory: Bytes available; ``None`` is :func:`memory_limit`.

    Raises:
        BackendError: naming the tensor, its shape and the size it would take.
    """
    import onnx

    path = Path(path)
    if model is None:
        model = onnx.load(str(path), load_external_data=False)
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    memory = memory_limit() if memory is None else memory
    for value in model.graph.input:
        dims = [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
        if len(dims) == 4:
            # NCHW, or NHWC for the uint8 camera-bytes layout (channels last and small).
            height, width = (dims[1], dims[2]) if dims[3] is not None and dims[3] <= 4 and (dims[1] or 0) > 4 else (
                dims[2], dims[3])
            if height is not None and width is not None and height * width > limit:
                raise BackendError(f"{path}: refused: input {value.name!r} is a fixed {height}x{width} image "
                                   f"({height * width:,} pixels), above the pixel limit of {limit:,}; the file is "
                                   "hostile or not for this tool (raise --max-pixels if it is real)")
    initializers = sum(check_tensor_claims(path, t) for t in model.graph.initializer)
    if memory is not None and initializers > memory:
        raise BackendError(f"{path}: refused: its weights claim {format_bytes(initializers)}, more than this "
                           f"machine's {format_bytes(memory)} of memory")
    if memory is None:
        return
    try:
        typed = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # a graph inference cannot follow is judged by the runtime itself
        typed = model
    graph = typed.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        dims = tensor_type.shape.dim
        if not tensor_type.HasField("shape") or any(not d.HasField("dim_value") for d in dims):
            continue
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).itemsize
        except (KeyError, TypeError, ValueError):
            continue
        size = math.prod(d.dim_value for d in dims) * itemsize
        if size > memory:
            raise BackendError(f"{path}: refused: tensor {value.name!r} would be {_shape([d.dim_value for d in dims])} "
                               f"({format_bytes(size)}), more than this machine's {format_bytes(memory)} of memory")


_OUT_OF_MEMORY = ("bad_alloc", "failed to allocate", "out of memory", "cannot allocate memory", "std::bad_alloc")


def out_of_memory_error(path: str | Path, exc: BaseException, shape: tuple[int, ...] | None = None) -> BackendError | None:
    """The one-line error for a runtime's out-of-memory failure, or ``None`` when ``exc`` is something else.

    Args:
        path: The model file.
        exc: What the runtime raised.
        shape: The input's shape, to say what it was asked to run on.
    """
    text = f"{type(exc).__name__}: {exc}".lower()
    if not isinstance(exc, MemoryError) and not any(marker in text for marker in _OUT_OF_MEMORY):
        return None
    what = f" on a {' x '.join(map(str, shape))} input" if shape else ""
    available = memory_limit()
    room = f" (this machine has {format_bytes(available)})" if available else ""
    return BackendError(f"{path}: ran out of memory running the model{what}{room}; the model asks for more than "
                        "fits, try a smaller --tile or image")


__all__ = ["DEFAULT_MAX_PIXELS", "check_model_limits", "check_tensor_claims", "format_bytes", "memory_limit",
           "out_of_memory_error"]
