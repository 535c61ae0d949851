"""The one table of backends: which runtime opens which file, with which options, from which pip extra.

Every tool opens models through :func:`runner_for`; nothing else in the toolkit looks at a model file's suffix to
decide how to run it. Adding a runtime is one row here plus one runner module.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cg_export.backends.base import Runner
from cg_export.errors import BackendError, MissingDependencyError
from cg_export.metadata import ArtifactMetadata
from cg_export.tensorrt.versions import TENSORRT_HINT

ONNXRUNTIME_HINT = 'pip install "cg-export[cpu]" (onnxruntime) or "cg-export[gpu]" (onnxruntime-gpu), not both'
OPENVINO_HINT = 'pip install "cg-export[openvino]"'


@dataclass(frozen=True)
class Backend:
    """One row of the table.

    Attributes:
        name: The backend's name in reports and on the command line (``--backend``).
        runtime: The runtime's name for people (``"ONNX Runtime"``).
        suffixes: File suffixes it opens by default (lower case, with the dot).
        module: The module holding the runner; imported only when a runner is made.
        runner_class: The :class:`Runner` subclass in ``module``.
        options: The keyword options its runner takes; :func:`runner_for` passes it only these.
        requires: The import name of the runtime itself.
        install_hint: How to install the runtime.
        metadata_reader: ``"module:function"`` reading a file's :class:`~cg_export.metadata.ArtifactMetadata`
            cheaply, without the runtime (``None``: the backend's files are sources, not exports).
        also_opens: Suffixes it opens only when asked by name (``--backend openvino`` on an ``.onnx``).
        folder_suffix: A folder holding exactly one file with this suffix is opened as that file (an OpenVINO IR
            folder holds its ``.xml`` and ``.bin``); ``None``: the backend's models are single files.
    """

    name: str
    runtime: str
    suffixes: tuple[str, ...]
    module: str
    runner_class: str
    options: frozenset[str]
    requires: str
    install_hint: str
    metadata_reader: str | None = None
    also_opens: tuple[str, ...] = ()
    folder_suffix: str | None = None


BACKENDS: tuple[Backend, ...] = (
    Backend("torch", "PyTorch", (".pt", ".pth"), "cg_export.backends.torch", "TorchRunner",
            frozenset({"device", "half", "channels_last", "arch", "threads"}), "torch", "pip install torch"),
    Backend("onnxruntime", "ONNX Runtime", (".onnx",), "cg_export.backends.onnxruntime", "OnnxRuntimeRunner",
            frozenset({"providers", "threads"}), "onnxruntime", ONNXRUNTIME_HINT,
            "cg_export.metadata:read_onnx_metadata"),
    Backend("tensorrt", "TensorRT", (".engine", ".plan"), "cg_export.backends.tensorrt", "TensorRTRunner",
            frozenset({"device_index"}), "tensorrt", TENSORRT_HINT,
            "cg_export.tensorrt.sidecar:read_engine_metadata"),
    Backend("openvino", "OpenVINO", (".xml",), "cg_export.backends.openvino", "OpenVinoRunner",
            frozenset({"device", "threads", "inference_precision"}), "openvino", OPENVINO_HINT,
            "cg_export.backends.openvino:read_ir_metadata", also_opens=(".onnx",), folder_suffix=".xml"),
)

MODEL_SUFFIXES: tuple[str, ...] = tuple(s for backend in BACKENDS for s in backend.suffixes)


def backend_named(name: str) -> Backend:
    """The table row called ``name``.

    Raises:
        BackendError: no backend has that name.
    """
    for backend in BACKENDS:
        if backend.name == name:
            return backend
    raise BackendError(f"unknown backend {name!r}; choose one of: {', '.join(b.name for b in BACKENDS)}")


#: The manifest ``cg-export deploy`` writes into a deployment folder; ``artifact`` names the chosen model file.
DEPLOY_MANIFEST = "deploy.json"


def deployment_artifact(path: str | Path) -> Path:
    """The chosen model file of a deployment folder (a folder holding ``deploy.json``); any other path unchanged.

    This is what lets every tool take the folder ``cg-export deploy`` wrote in place of a model file.

    Raises:
        BackendError: the manifest is unreadable, or names no file inside the folder.
    """
    path = Path(path)
    manifest = path / DEPLOY_MANIFEST
    if not path.is_dir() or not manifest.is_file():
        return path
    try:
        artifact = json.loads(manifest.read_text()).get("artifact")
    except (OSError, ValueError, AttributeError) as exc:
        raise BackendError(f"{manifest}: not a readable deployment manifest ({exc})") from None
    chosen = path / artifact if isinstance(artifact, str) and artifact else None
    # Only a file inside the folder: a manifest must not send a tool to run a model from elsewhere.
    if chosen is None or Path(artifact).is_absolute() or ".." in Path(artifact).parts or not chosen.exists():
        raise BackendError(f"{manifest}: its artifact {artifact!r} is not a file in {path}; run cg-export deploy again")
    return chosen


def model_file(path: str | Path) -> Path:
    """The model file ``path`` stands for: itself; a deployment folder's chosen artifact
    (:func:`deployment_artifact`); or, for a folder holding one model of a folder-shaped backend (an OpenVINO IR),
    that file.

    Raises:
        BackendError: a deployment manifest is broken, or the folder holds no such model, or several.
    """
    path = deployment_artifact(path)
    if not path.is_dir():
        return path
    kinds = [row.folder_suffix for row in BACKENDS if row.folder_suffix]
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in kinds)
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise BackendError(f"{path}: a model folder must hold exactly one {' or '.join(kinds)} model; it holds {what}"
                           + (f" ({', '.join(p.name for p in found)}): name the file" if found else ""))
    return found[0]


def backend_for(path: str | Path, backend: str | None = None) -> Backend:
    """The backend that opens ``path`` (a file, or a folder :func:`model_file` resolves): the one named, or the
    default for its suffix.

    A deployment folder stands for its chosen artifact (:func:`deployment_artifact`).

    Raises:
        BackendError: the suffix belongs to no backend, or the named backend does not open such files.
    """
    suffix = model_file(path).suffix.lower()
    if backend is not None:
        row = backend_named(backend)
        if suffix not in row.suffixes + row.also_opens:
            opens = ", ".join(row.suffixes + row.also_opens)
            raise BackendError(f"{path}: the {row.name} backend opens {opens} files, not {suffix!r}")
        return row
    for row in BACKENDS:
        if suffix in row.suffixes:
            return row
    raise BackendError(f"{path}: unknown model type {suffix!r}; expected one of {', '.join(MODEL_SUFFIXES)}")


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a PyTorch checkpoint by its name (the kind of file that can be a parity reference)."""
    return Path(path).suffix.lower() in backend_named("torch").suffixes


def read_artifact_metadata(path: str | Path) -> ArtifactMetadata | None:
    """What an exported file records about itself (precision, source checkpoint ...), read without a runtime.

    Returns ``None`` for files that are not exports (PyTorch checkpoints) or record nothing (an engine without its
    sidecar).

    Raises:
        BackendError: no backend opens the file, or its metadata is unreadable or broken.
    """
    path = model_file(path)
    row = backend_for(path)
    if row.metadata_reader is None:
        return None
    module, function = row.metadata_reader.split(":")
    return getattr(importlib.import_module(module), function)(path)


def runner_for(path: str | Path, backend: str | None = None, **options: Any) -> Runner:
    """An inactive runner for a model file, from the backend table.

    Args:
        path: The model file, a deployment folder (its chosen artifact) or a folder holding one OpenVINO IR.
        backend: A backend name to use instead of the suffix's default.
        **options: Runner options; the ones the chosen backend does not take, and ``None`` values, are dropped, so
            a caller can pass one set of options for files of every kind.

    Raises:
        BackendError: no backend opens the file.
        MissingDependencyError: the runtime the backend needs is not installed.
    """
    path = model_file(path)
    row = backend_for(path, backend)
    try:
        module = importlib.import_module(row.module)
    except ModuleNotFoundError as exc:
        if exc.name == row.module:
            raise BackendError(f"{path}: this cg-export installation has no {row.runtime} backend ({row.module}); "
                               "reinstall cg-export") from None
        if exc.name is None or exc.name.split(".")[0] != row.requires:
            raise
        raise MissingDependencyError(row.requires, f"to run {row.runtime} models", row.install_hint) from None
    runner_class: type[Runner] = getattr(module, row.runner_class)
    accepted = {k: v for k, v in options.items() if k in row.options and v is not None}
    return runner_class.from_file(path, **accepted)


__all__ = ["BACKENDS", "DEPLOY_MANIFEST", "MODEL_SUFFIXES", "Backend", "backend_for", "backend_named",
           "deployment_artifact", "is_checkpoint", "model_file", "read_artifact_metadata", "runner_for"]
