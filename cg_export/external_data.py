"""ONNX external data, accepted only from inside the model's own folder.

An ONNX file may keep its weights in other files, named in each tensor's ``external_data`` ``location``. A file
from elsewhere can name any path (``../../etc/shadow``, ``/dev/zero``, a symlink out of its folder) and a
runtime would read it. Every command that opens an ONNX file calls :func:`check_external_data` first: only
relative locations that resolve (symlinks followed) to regular files inside the model's folder are accepted, and
each tensor's ``offset + length`` must lie within its file. Locations are resolved against the model's folder,
never the working directory, so a legitimate model works from anywhere.

Each tensor's claimed shape is checked against the bytes it holds too (:func:`cg_export.model_limits.check_tensor_claims`).

A leaf module: it imports only ``onnx`` (lazily), the errors and :mod:`cg_export.model_limits`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cg_export.errors import BackendError
from cg_export.model_limits import check_tensor_claims


def external_data_files(path: str | Path, model: Any = None) -> list[Path]:
    """The external data files an ONNX model uses, each checked to lie inside the model's folder.

    Args:
        path: The ``.onnx`` file.
        model: The file's ``onnx.ModelProto`` if already loaded (without its external data); read otherwise.

    Returns:
        The resolved data files (empty for a self-contained model).

    Raises:
        BackendError: the file is not ONNX, or a location is absolute, escapes the folder (``..`` or a symlink),
            is missing, or a tensor's bytes lie outside its file.
    """
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    path = Path(path)
    if model is None:
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf's DecodeError, OSError ...: the file is not ONNX
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise BackendError(f"{path}: not a readable ONNX model ({first})") from None
    folder = path.resolve().parent
    files: dict[Path, int] = {}
    for tensor in _get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            check_tensor_claims(path, tensor)  # a shape its data does not fill is refused before numpy sees it
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        location = entries.get("location", "")
        refuse = f"{path}: refused: tensor {tensor.name!r} keeps its data in {location!r}"
        if not location or os.path.isabs(location) or Path(location).drive:
            raise BackendError(f"{refuse}, an absolute path; external data must sit in the model's own folder")
        target = (folder / location).resolve()
        if not target.is_relative_to(folder):
            raise BackendError(f"{refuse}, outside the model's folder {folder}; external data must sit beside "
                               "the model (no '..', no symlinks out of the folder)")
        if not target.is_file():
            raise BackendError(f"{refuse}, which does not exist beside the model; copy it with the .onnx file")
        size = files.setdefault(target, target.stat().st_size)
        try:
            offset, length = int(entries.get("offset", 0)), int(entries.get("length", size))
        except ValueError:
            raise BackendError(f"{refuse} with a malformed offset or length") from None
        if offset < 0 or length < 0 or offset + length > size:
            raise BackendError(f"{refuse} at bytes {offset}..{offset + length}, beyond its {size} bytes; "
                               "the data file is truncated or not this model's")
        check_tensor_claims(path, tensor, stored_bytes=length)
    return list(files)


def check_external_data(path: str | Path, model: Any = None) -> None:
    """Refuse an ONNX file whose external data is not inside its own folder (see :func:`external_data_files`)."""
    external_data_files(path, model)
