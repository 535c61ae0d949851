"""THE table of model formats: what each file is, which runtime runs it, how it is made, and what it needs.

One row per format (Ultralytics' export-formats table is the model). Every tool reads this table and nothing else
to answer a question about a kind of file:

- :func:`cg_export.backends.runner_for` opens a file with its row's runner (:attr:`Format.runner`);
- the exporters are reached through :func:`cg_export.export.run_export` (:attr:`Format.exporter`), which gives
  every format the same verification, timing and size line;
- ``cg-export deploy``'s candidates are the table's precision matrix (:attr:`Format.conversions`), with their shell
  commands made from each row's command-line verb;
- ``cg-bench``, ``cg-stylize``, ``cg-export info`` and ``cg-export list`` name files, runtimes and install hints
  from it.

Adding a format is one row here, one exporter module under :mod:`cg_export.export` and one runner module under
:mod:`cg_export.backends`; the tests are parametrised over :data:`FORMATS`, so a new row is tested by the tests
that exist.

A leaf module: the standard library and :mod:`cg_export.errors` only, so every layer (and ``--help``) can read it
without importing a runtime.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from cg_export.errors import BackendError, CgExportError

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
"""Every precision a row may list, from the most to the least precise (ties in speed go to the earlier one)."""

TARGETS: tuple[str, ...] = ("local", "jetson")
"""Where a deployment runs. ``local``: this machine (the default). ``jetson``: TensorRT on a Jetson; the ONNX files
are made and verified here and the engines finished on the device with the commands deploy writes."""


def extra_hint(extra: str) -> str:
    """``pip install "cg-export[EXTRA]"``: the install hint for one of the project's extras."""
    return f'pip install "cg-export[{extra}]"'


@dataclass(frozen=True)
class Requirement:
    """What a format needs installed to be made and run here.

    Attributes:
        imports: Import names that must be found (checked with :func:`importlib.util.find_spec`, never imported).
        package: The name to show the user (``"ONNX Runtime"``).
        install: How to install it: a pip extra's command, or the platform's way (JetPack for TensorRT).
        device: ``"cpu"`` (runs on this machine's CPU) or ``"cuda"`` (needs an NVIDIA GPU).
    """

    imports: tuple[str, ...]
    package: str
    install: str
    device: str = "cpu"

    def missing(self) -> str | None:
        """Why the format cannot be used here (``"ONNX Runtime not installed (pip install ...)"``), else ``None``."""
        for module in self.imports:
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:  # the parent package of a dotted name is missing
                found = False
            except ValueError:  # imported already without a spec (a stand-in module): it is there
                found = True
            if not found:
                # A pip command is short enough for a report's row; a platform's own way is given in full when the
                # runtime is needed (MissingDependencyError).
                how = f" ({self.install})" if self.install.startswith("pip install") else ""
                return f"{self.package} not installed{how}"
        return None


@dataclass(frozen=True)
class Conversion:
    """One cell of a format's precision matrix: a precision it can be made in, and from what.

    Attributes:
        precision: ``fp32``, ``fp16`` or ``int8``.
        made_from: The precision of the :attr:`Format.converts_from` file this one is converted from (a TensorRT
            fp16 engine is built from the fp32 ONNX file); ``None`` for formats made from the checkpoint.
        deploy: Whether ``cg-export deploy`` makes it as a candidate.
    """

    precision: str
    made_from: str | None = None
    deploy: bool = True


@dataclass(frozen=True)
class Format:
    """One row of the table.

    Attributes:
        name: The format's short name: the ``cg-export`` verb that writes it and the prefix of its deploy
            candidates (``onnx`` -> ``cg-export onnx``, ``onnx-int8``).
        title: Its name for people (``"ONNX"``).
        backend: The name of the runtime that runs it in reports, ``deploy.json`` and ``--backend``
            (``onnxruntime``).
        runtime: The runtime's name for people (``"ONNX Runtime"``).
        suffixes: The file suffixes it is (lower case, with the dot); the first is what its exporter writes.
        companions: Names of the files written beside the model that travel with it, as templates of the model's
            ``{stem}`` and ``{name}`` (an IR's ``{stem}.bin``, an engine's ``{name}.json`` sidecar); counted in its
            size.
        runner: ``"module:Class"`` of its :class:`~cg_export.backends.base.Runner`; imported only when a runner is
            made.
        runner_options: The keyword options its runner takes; :func:`~cg_export.backends.runner_for` passes only
            these.
        requirement: What must be installed to make and run it.
        exporter: ``"module:function"`` writing it, with the one exporter signature ``(source, output, options)``;
            ``None`` for the checkpoint itself (deploy copies it).
        options: ``"module:Class"`` of that exporter's options; the class makes itself from an
            :class:`~cg_export.export.ExportRequest` (``from_request``).
        conversions: The precision matrix: what it can be made in; a combination not listed is refused before any
            work (:func:`check_precision`).
        converts_from: The format its exporter reads (``"onnx"``); ``None``: a checkpoint.
        targets: The deploy targets it is a candidate for.
        runs_on: Where it runs, for people (the README's and ``cg-export list``'s column).
        metadata_reader: ``"module:function"`` reading a file's :class:`~cg_export.metadata.ArtifactMetadata`
            without the runtime; ``None`` for checkpoints, which the checkpoint loader describes.
        also_opens: Suffixes its runner opens only when asked by name (``--backend openvino`` on an ``.onnx``).
        folder_suffix: A folder holding exactly one file with this suffix is that model (an OpenVINO IR folder).
        deploy_runner_options: Runner options deploy verifies and times its candidates with.
    """

    name: str
    title: str
    backend: str
    runtime: str
    suffixes: tuple[str, ...]
    runner: str
    runner_options: frozenset[str]
    requirement: Requirement
    exporter: str | None
    options: str | None
    conversions: tuple[Conversion, ...]
    runs_on: str
    converts_from: str | None = None
    targets: frozenset[str] = frozenset(TARGETS)
    companions: tuple[str, ...] = ()
    metadata_reader: str | None = None
    also_opens: tuple[str, ...] = ()
    folder_suffix: str | None = None
    deploy_runner_options: tuple[tuple[str, object], ...] = ()

    @property
    def suffix(self) -> str:
        """The suffix its exporter writes."""
        return self.suffixes[0]

    @property
    def precisions(self) -> tuple[str, ...]:
        """The precisions it can be made in, most precise first."""
        return tuple(cell.precision for cell in self.conversions)

    def conversion(self, precision: str) -> Conversion:
        """The precision matrix's cell for ``precision``.

        Raises:
            PrecisionError: the format cannot be made in that precision.
        """
        for cell in self.conversions:
            if cell.precision == precision:
                return cell
        raise PrecisionError(self, precision)

    def missing(self) -> str | None:
        """Why this format cannot be made and run here, or ``None`` when it can (nothing is imported)."""
        return self.requirement.missing()

    def files(self, path: str | Path) -> list[Path]:
        """The model file and the companions beside it that exist (what its size and a copy of it include)."""
        path = Path(path)
        beside = (path.with_name(template.format(stem=path.stem, name=path.name)) for template in self.companions)
        return [path] + [companion for companion in beside if companion.is_file()]


class PrecisionError(CgExportError, ValueError):
    """A precision the format cannot be made in: refused before anything is loaded or written.

    Attributes:
        format: The row.
        precision: The precision asked for.
    """

    def __init__(self, format: Format, precision: str):
        self.format = format
        self.precision = precision
        super().__init__(f"{format.title} cannot be made in {precision}; it takes {', '.join(format.precisions)}")


_ONNXRUNTIME = Requirement(("onnxruntime",), "ONNX Runtime",
                           f'{extra_hint("cpu")} (onnxruntime) or {extra_hint("gpu")} (onnxruntime-gpu), not both')
_OPENVINO = Requirement(("openvino",), "OpenVINO", extra_hint("openvino"))
_TENSORRT = Requirement(
    ("tensorrt",), "TensorRT",
    "on Jetson it comes with JetPack (sudo apt install nvidia-jetpack, then use the system python3 or a venv made "
    "with --system-site-packages); on x86 pip install tensorrt-cu12 (or tensorrt-cu13) from NVIDIA's index, "
    "--extra-index-url https://pypi.nvidia.com",
    device="cuda")
_TORCH = Requirement(("torch",), "PyTorch", "pip install torch (or your platform's build: JetPack's on a Jetson)")

FORMATS: tuple[Format, ...] = (
    Format(
        "torch", "PyTorch checkpoint", "torch", "PyTorch", (".pt", ".pth"),
        "cg_export.backends.torch:TorchRunner", frozenset({"device", "half", "channels_last", "arch", "threads"}),
        _TORCH, exporter=None, options=None, conversions=(Conversion("fp32"),),
        runs_on="anywhere PyTorch runs (the reference of every check)",
        targets=frozenset({"local"}), deploy_runner_options=(("device", "cpu"),)),
    Format(
        "onnx", "ONNX", "onnxruntime", "ONNX Runtime", (".onnx",),
        "cg_export.backends.onnxruntime:OnnxRuntimeRunner", frozenset({"providers", "threads"}),
        _ONNXRUNTIME, exporter="cg_export.export.onnx:export_onnx", options="cg_export.export.onnx:OnnxExportOptions",
        conversions=(Conversion("fp32"), Conversion("fp16"), Conversion("int8")),
        runs_on="x86 and ARM CPUs, NVIDIA GPUs",
        metadata_reader="cg_export.metadata:read_onnx_metadata"),
    Format(
        "openvino", "OpenVINO IR", "openvino", "OpenVINO", (".xml",),
        "cg_export.backends.openvino:OpenVinoRunner", frozenset({"device", "threads", "inference_precision"}),
        _OPENVINO, exporter="cg_export.export.openvino:export_openvino",
        options="cg_export.export.openvino:OpenVinoExportOptions",
        conversions=(Conversion("fp32", made_from="fp32"), Conversion("fp16", made_from="fp32", deploy=False),
                     Conversion("int8", made_from="int8")),
        runs_on="x86 CPUs, Intel GPUs and NPUs",
        converts_from="onnx", targets=frozenset({"local"}), companions=("{stem}.bin",),
        metadata_reader="cg_export.backends.openvino:read_ir_metadata", also_opens=(".onnx",), folder_suffix=".xml"),
    Format(
        "trt", "TensorRT engine", "tensorrt", "TensorRT", (".engine", ".plan"),
        "cg_export.backends.tensorrt:TensorRTRunner", frozenset({"device_index"}),
        _TENSORRT, exporter="cg_export.export.trt:build_engine", options="cg_export.export.trt:EngineOptions",
        conversions=(Conversion("fp32", made_from="fp32", deploy=False), Conversion("fp16", made_from="fp32"),
                     Conversion("int8", made_from="int8")),
        runs_on="NVIDIA GPUs and Jetson (the GPU and TensorRT it was built on)",
        converts_from="onnx", companions=("{name}.json",),
        metadata_reader="cg_export.tensorrt.sidecar:read_engine_metadata"),
)

MODEL_SUFFIXES: tuple[str, ...] = tuple(s for row in FORMATS for s in row.suffixes)
"""Every suffix a model file can have."""

DEPLOY_MANIFEST = "deploy.json"
"""The manifest ``cg-export deploy`` writes into a deployment folder; its ``artifact`` names the chosen model file."""


def format_named(name: str) -> Format:
    """The row called ``name`` (``onnx``), or whose runtime is called ``name`` (``onnxruntime``).

    Raises:
        BackendError: no row has that name.
    """
    for row in FORMATS:
        if name in (row.name, row.backend):
            return row
    raise BackendError(f"unknown format {name!r}; choose one of: {', '.join(row.name for row in FORMATS)}")


def format_of_suffix(suffix: str) -> Format | None:
    """The row whose files have ``suffix`` (``".onnx"``), or ``None``."""
    suffix = suffix.lower()
    return next((row for row in FORMATS if suffix in row.suffixes), None)


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a PyTorch checkpoint by its name (the kind of file that can be a parity reference)."""
    return Path(path).suffix.lower() in format_named("torch").suffixes


def check_precision(name: str, precision: str) -> Conversion:
    """The cell of format ``name`` for ``precision``: an impossible combination is refused before any work.

    Raises:
        BackendError: no such format.
        PrecisionError: the format cannot be made in that precision.
    """
    if precision not in PRECISIONS:
        raise PrecisionError(format_named(name), precision)
    return format_named(name).conversion(precision)


def load_reference(reference: str) -> object:
    """``"module:name"`` -> the object it names: the table names code by string so that reading it imports nothing;
    this imports the module when the code is needed."""
    module, name = reference.split(":")
    return getattr(importlib.import_module(module), name)


def model_files_text() -> str:
    """``.pt/.pth (PyTorch), .onnx (ONNX Runtime), ...``: the files the tools open, for help texts and errors."""
    return ", ".join(f"{'/'.join(row.suffixes)} ({row.runtime})" for row in FORMATS)


__all__ = ["DEPLOY_MANIFEST", "FORMATS", "MODEL_SUFFIXES", "PRECISIONS", "TARGETS", "Conversion", "Format",
           "PrecisionError", "Requirement", "check_precision", "extra_hint", "format_named", "format_of_suffix",
           "is_checkpoint", "load_reference", "model_files_text"]
