"""A test double of the ``tensorrt`` module (and of the CUDA runtime bindings) that exposes EXACTLY one release's API.

TensorRT's libraries cannot be installed on the CI machines, but each release's Python API is known name by name:
``tests/data/trt_api/tensorrt-<version>.txt`` was extracted from that release's real bindings wheel by
``tests/data/trt_api/extract.py``. :class:`FakeTensorRT` builds a module from such a file:

- a name the release lacks raises ``AttributeError`` (module, class, instance and enum level), so a code path that
  uses ``BuilderFlag.FP16`` fails on the 11.x fake exactly as it fails on a machine with TensorRT 11;
- calls are checked against the release's signatures (argument count, keyword names, enum and class types) and
  recorded; read-only properties cannot be set;
- return values default by the signature's return type (an instance of the returned class, ``True`` for bool ...)
  and can be scripted per ``Class.member`` with :meth:`FakeTensorRT.on`.

:func:`simulate_gpu` scripts the few behaviours a build and a run need (the engine "runs" the ONNX model it was
parsed from with ONNX Runtime, reading and writing the buffers whose addresses it was given) so that whole code
paths, parity check included, run against the fake. :class:`FakeCudart` does the same for the CUDA runtime
bindings with host memory standing in for device memory; its names are checked against the real
``cuda.bindings.runtime`` in the tests.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

API_DIR = Path(__file__).parent / "data" / "trt_api"
API_FILES = {path.stem.removeprefix("tensorrt-"): path for path in sorted(API_DIR.glob("tensorrt-*.txt"))}


@dataclass(frozen=True)
class Entry:
    """One line of an API file: a name's kind and its detail (signature, property type, enum value)."""

    kind: str
    detail: str


def load_api(version: str) -> dict[str, list[Entry]]:
    """``{"IBuilderConfig.set_flag": [Entry("method", "(flag: BuilderFlag) -> None")], ...}``."""
    api: dict[str, list[Entry]] = {}
    for line in API_FILES[version].read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, kind, *rest = line.split(" ", 2)
        api.setdefault(name, []).append(Entry(kind, rest[0] if rest else ""))
    return api


class FakeTensorRT:
    """A ``tensorrt`` module exposing exactly the names of one release (see the module docstring).

    Args:
        version: A key of :data:`API_FILES`, e.g. ``"8.6.1"``.
        report_version: The ``__version__`` it reports (to stand for a neighbouring release such as 8.5.2 or 10.13;
            the names stay those of ``version``).
    """

    def __init__(self, version: str, report_version: str | None = None):
        self._api = load_api(version)
        self._members: dict[str, dict[str, list[Entry]]] = {}
        for name, entries in self._api.items():
            owner, _, member = name.rpartition(".")
            self._members.setdefault(owner, {})[member] = entries
        self.__version__ = report_version or version
        self.__name__ = "tensorrt"
        # importlib.util.find_spec("tensorrt") (torch.export asks it) needs a spec on a module in sys.modules.
        self.__spec__ = importlib.machinery.ModuleSpec("tensorrt", loader=None)
        self.calls: list[tuple[str, tuple, dict]] = []
        self._behaviour: dict[str, Callable[..., Any]] = {}
        self._classes: dict[str, FakeClass] = {}

    # -- module attribute access -------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._resolve("", name, f"module 'tensorrt' has no attribute {name!r}")

    def _resolve(self, owner: str, name: str, missing: str) -> Any:
        entries = self._members.get(owner, {}).get(name)
        if not entries:
            raise AttributeError(missing)
        full = f"{owner}.{name}" if owner else name
        entry = entries[0]
        if entry.kind == "class":
            target = entry.detail[2:] if entry.detail.startswith("= ") else full
            return self.cls(target)
        if entry.kind == "enum":
            return self.cls(owner).enum_value(name)
        if entry.kind == "attr":
            match = re.match(r"^(\S+) = (\w+)$", entry.detail)
            if match:  # an alias of an enum value, such as Logger.WARNING
                return self.cls(match.group(1)).enum_value(match.group(2))
            if full == "__version__":
                return self.__version__
            return SimpleNamespace(fake_attr=full)
        if entry.kind in ("function", "staticmethod"):
            return FakeMethod(self, full, entries, bound=None)
        raise AttributeError(f"{full} is a {entry.kind}; read it from an instance")

    # -- what tests use -----------------------------------------------------------------------------------------
    def cls(self, name: str) -> FakeClass:
        """The fake class ``name`` (``"IBuilderConfig"``, ``"ILogger.Severity"``)."""
        if name not in self._classes:
            if not any(e.kind == "class" for e in self._api.get(name, [])):
                raise AttributeError(f"tensorrt {self.__version__} has no class {name!r}")
            self._classes[name] = FakeClass(self, name)
        return self._classes[name]

    def has(self, qualified: str) -> bool:
        """True when ``qualified`` (``"BuilderFlag.FP16"``) exists in this release."""
        return qualified in self._api

    def on(self, qualified: str, behaviour: Callable[..., Any]) -> None:
        """Script ``Class.member``: ``behaviour(instance, *args, **kwargs)`` for methods, ``behaviour(instance)`` for
        properties. The name must exist in this release."""
        if qualified not in self._api:
            raise AttributeError(f"cannot script {qualified}: tensorrt {self.__version__} has no such name")
        self._behaviour[qualified] = behaviour

    def instance(self, class_name: str, **state: Any) -> FakeInstance:
        """A new instance of ``class_name`` whose properties start as ``state``."""
        obj = FakeInstance(self, self.cls(class_name).name)
        for key, value in state.items():
            if key.startswith("fake_"):
                object.__setattr__(obj, key, value)  # test-side data, not a TensorRT property
            else:
                obj._state[key] = value
        return obj

    def called(self, qualified: str) -> list[tuple[tuple, dict]]:
        """Arguments of every recorded call (or property set) of ``qualified``."""
        return [(args, kwargs) for name, args, kwargs in self.calls if name == qualified]

    # -- internals shared by classes and instances ----------------------------------------------------------------
    def members(self, class_name: str) -> dict[str, list[Entry]]:
        """Members of a class and of its bases."""
        found: dict[str, list[Entry]] = {}
        for name in self.mro(class_name):
            for member, entries in self._members.get(name, {}).items():
                found.setdefault(member, entries)
        return found

    def mro(self, class_name: str) -> list[str]:
        """``class_name`` and its bases, nearest first."""
        order, pending = [], [class_name]
        while pending:
            name = pending.pop(0)
            if name in order:
                continue
            order.append(name)
            detail = next((e.detail for e in self._api.get(name, []) if e.kind == "class"), "")
            if not detail.startswith("="):
                pending.extend(base for base in detail.split() if base in self._api)
        return order

    def resolve_type(self, text: str) -> str | None:
        """A signature's type text -> the fake class name it denotes (``IParserError`` -> ``ParserError``)."""
        text = text.strip()
        for candidate in (text, text[1:] if text.startswith("I") else None, f"I{text}"):
            if candidate and any(e.kind == "class" for e in self._api.get(candidate, [])):
                return candidate
        return None

    def default_return(self, type_text: str) -> Any:
        type_text = type_text.strip()
        if type_text in ("None", "object", ""):
            return None
        if type_text == "bool":
            return True
        if type_text == "int":
            return 0
        if type_text == "str":
            return ""
        if type_text.startswith(("List", "list")):
            return []
        cls = self.resolve_type(type_text)
        return FakeInstance(self, cls) if cls else None


class FakeClass:
    """A class of the fake module: constructor, enum values, nested classes and static methods."""

    def __init__(self, module: FakeTensorRT, name: str):
        self._module = module
        self.name = name
        self.__name__ = name.rpartition(".")[2]
        self._enum_values: dict[str, FakeEnumValue] = {}

    def __repr__(self) -> str:
        return f"<fake tensorrt {self._module.__version__} class {self.name}>"

    def __getattr__(self, member: str) -> Any:
        if member.startswith("__"):
            raise AttributeError(member)
        entries = self._module.members(self.name).get(member)
        if not entries:
            raise AttributeError(f"type object 'tensorrt.{self.name}' has no attribute {member!r}")
        owner = next(n for n in self._module.mro(self.name) if member in self._module._members.get(n, {}))
        return self._module._resolve(owner, member, member)

    def enum_value(self, member: str) -> FakeEnumValue:
        entries = self._module._members.get(self.name, {}).get(member)
        if not entries or entries[0].kind != "enum":
            raise AttributeError(f"type object 'tensorrt.{self.name}' has no attribute {member!r}")
        if member not in self._enum_values:
            self._enum_values[member] = FakeEnumValue(self.name, member, int(entries[0].detail))
        return self._enum_values[member]

    def __call__(self, *args: Any, **kwargs: Any) -> FakeInstance:
        init = self._module.members(self.name).get("__init__")
        if not init or all("(args, kwargs)" in e.detail for e in init):
            raise TypeError(f"tensorrt.{self.name}: No constructor defined!")
        check_call(self._module, f"{self.name}.__init__", init, args, kwargs)
        self._module.calls.append((f"{self.name}.__init__", args, kwargs))
        return FakeInstance(self._module, self.name)


@dataclass(frozen=True)
class FakeEnumValue:
    """A pybind11 enum value: compares by identity of (enum, name), converts to its real integer value."""

    enum: str
    name: str
    value: int

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"<{self.enum}.{self.name}: {self.value}>"


class FakeInstance:
    """An object of a fake class: methods checked and recorded, properties typed and access-controlled."""

    def __init__(self, module: FakeTensorRT, class_name: str):
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_class", class_name)
        object.__setattr__(self, "_state", {})

    def __repr__(self) -> str:
        return f"<fake tensorrt {self._module.__version__} {self._class} object>"

    def __getattr__(self, member: str) -> Any:
        if member.startswith("__"):
            raise AttributeError(member)
        module = self._module
        entries = module.members(self._class).get(member)
        if not entries:
            raise AttributeError(f"'tensorrt.{self._class}' object has no attribute {member!r}")
        entry, owner = entries[0], self._owner(member)
        if entry.kind in ("method", "staticmethod"):
            return FakeMethod(module, f"{owner}.{member}", entries, bound=self)
        if entry.kind == "property":
            if member in self._state:
                return self._state[member]
            behaviour = module._behaviour.get(f"{owner}.{member}") or module._behaviour.get(f"{self._class}.{member}")
            if behaviour:
                return behaviour(self)
            return module.default_return(entry.detail.partition("-> ")[2])
        return module._resolve(owner, member, member)

    def __setattr__(self, member: str, value: Any) -> None:
        entries = self._module.members(self._class).get(member)
        if not entries or entries[0].kind != "property":
            raise AttributeError(f"'tensorrt.{self._class}' object has no attribute {member!r}")
        if not entries[0].detail.startswith("rw"):
            raise AttributeError(f"property {member!r} of 'tensorrt.{self._class}' object has no setter")
        type_text = entries[0].detail.partition("-> ")[2]
        if type_text and not _accepts(self._module, type_text, value):
            raise TypeError(f"{self._class}.{member}: incompatible value {value!r} for a {type_text} property")
        self._module.calls.append((f"{self._owner(member)}.{member}", (value,), {}))
        self._state[member] = value

    def _owner(self, member: str) -> str:
        return next(n for n in self._module.mro(self._class) if member in self._module._members.get(n, {}))

    def __bytes__(self) -> bytes:
        # IHostMemory (a serialized engine or timing cache) is a buffer in the real bindings.
        if self._class != "IHostMemory":
            raise TypeError(f"cannot convert 'tensorrt.{self._class}' object to bytes")
        return bytes(self.__dict__.get("fake_payload", b""))

    def fake_is(self, class_name: str) -> bool:
        """True when this instance is a ``class_name`` (or derives from it)."""
        return class_name in self._module.mro(self._class)


class FakeMethod:
    """A method (or function) of the fake module: signature-checked, recorded, scriptable."""

    def __init__(self, module: FakeTensorRT, qualified: str, entries: list[Entry], bound: FakeInstance | None):
        self._module = module
        self._qualified = qualified
        self._entries = entries
        self._bound = bound

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module = self._module
        entry = check_call(module, self._qualified, self._entries, args, kwargs)
        module.calls.append((self._qualified, args, kwargs))
        names = [self._qualified]
        if self._bound is not None:
            names.insert(0, f"{self._bound._class}.{self._qualified.rpartition('.')[2]}")
        for name in names:
            if name in module._behaviour:
                return module._behaviour[name](self._bound, *args, **kwargs)
        return module.default_return(entry.detail.rpartition("-> ")[2])


def _parameters(signature: str) -> list[tuple[str, str, bool]]:
    """``"(flag: BuilderFlag, x: int = 0) -> None"`` -> ``[("flag", "BuilderFlag", False), ("x", "int", True)]``."""
    inner = signature[signature.index("(") + 1: signature.rindex(") ->")]
    params, depth, current = [], 0, ""
    for char in inner:
        depth += char in "[(<{"
        depth -= char in "])>}"
        if char == "," and depth == 0:
            params.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        params.append(current.strip())
    parsed = []
    for param in params:
        if param in ("/", "*"):
            continue
        head, _, default = param.partition(" = ")
        name, _, type_text = head.partition(": ")
        parsed.append((name.strip().lstrip("*"), type_text.strip(), bool(default)))
    return parsed


def _accepts(module: FakeTensorRT, type_text: str, value: Any) -> bool:
    simple = type_text.replace("typing.", "")
    if simple in ("int", "SupportsInt"):
        return isinstance(value, int) and not isinstance(value, FakeEnumValue)
    if simple == "str":
        return isinstance(value, str)
    if simple == "bool":
        return isinstance(value, bool)
    if simple in ("buffer", "typing_extensions.Buffer", "Buffer"):
        return isinstance(value, (bytes, bytearray, memoryview))
    if simple == "Dims":
        return isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value)
    cls = module.resolve_type(simple)
    if cls is None:
        return True  # a type the fake does not model (numpy arrays, capsules, callbacks): accept
    if any(entries[0].kind == "enum" for entries in module._members.get(cls, {}).values()):
        return isinstance(value, FakeEnumValue) and value.enum == cls
    return isinstance(value, FakeInstance) and value.fake_is(cls)


def check_call(module: FakeTensorRT, qualified: str, entries: list[Entry], args: tuple, kwargs: dict) -> Entry:
    """Match a call against a name's overloads as pybind11 does; raise TypeError when none fits."""
    for entry in entries:
        params = _parameters(entry.detail)
        if len(args) > len(params):
            continue
        bound = dict(zip((p[0] for p in params), args))
        if set(kwargs) - {p[0] for p in params} or set(kwargs) & set(bound):
            continue
        bound.update(kwargs)
        if any(name not in bound and not has_default for name, _, has_default in params):
            continue
        if all(_accepts(module, type_text, bound[name]) for name, type_text, _ in params if name in bound):
            return entry
    raise TypeError(
        f"{qualified}(): incompatible function arguments for tensorrt {module.__version__}. Supported signatures: "
        + " | ".join(e.detail for e in entries) + f"; invoked with args={args!r} kwargs={kwargs!r}"
    )


# --- a CUDA runtime whose device memory is host memory --------------------------------------------------------------


class _CudaEnum:
    def __init__(self, **members: int):
        for name, value in members.items():
            setattr(self, name, SimpleNamespace(name=name, value=value))


class FakeCudart:
    """The CUDA runtime bindings' calls the runner uses, with host memory standing in for device memory.

    Every public name here also exists in ``cuda.bindings.runtime`` (a test checks it). Calls return
    ``(cudaError_t, value)`` tuples like the real bindings; ``devices=0`` mimics a machine without a GPU.
    """

    def __init__(self, devices: int = 1, name: str = "NVIDIA Orin", capability: tuple[int, int] = (8, 7)):
        self.cudaError_t = _CudaEnum(cudaSuccess=0, cudaErrorNoDevice=100, cudaErrorInvalidValue=1)
        self.cudaMemcpyKind = _CudaEnum(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
        self._devices = devices
        self._props = SimpleNamespace(name=name.encode() + b"\x00" * 8, major=capability[0], minor=capability[1])
        self.blocks: dict[int, ctypes.Array] = {}
        self.pinned: set[int] = set()
        self.streams: set[int] = set()
        self.events: dict[int, float | None] = {}
        self.copies: list[tuple[str, int]] = []
        self._stream_ids = itertools.count(0x5000)

    def _ok(self, *values: Any) -> tuple:
        return (self.cudaError_t.cudaSuccess, *values)

    def cudaGetDeviceCount(self) -> tuple:
        if not self._devices:
            return (self.cudaError_t.cudaErrorNoDevice, 0)
        return self._ok(self._devices)

    def cudaSetDevice(self, device: int) -> tuple:
        return self._ok()

    def cudaGetDeviceProperties(self, device: int) -> tuple:
        return self._ok(self._props)

    def cudaGetErrorString(self, error: Any) -> tuple:
        return self._ok(f"fake {error.name}".encode())

    def _alloc(self, nbytes: int) -> int:
        block = (ctypes.c_byte * nbytes)()
        address = ctypes.addressof(block)
        self.blocks[address] = block
        return address

    def cudaMalloc(self, nbytes: int) -> tuple:
        return self._ok(self._alloc(nbytes))

    def cudaMallocHost(self, nbytes: int) -> tuple:
        address = self._alloc(nbytes)
        self.pinned.add(address)
        return self._ok(address)

    def cudaFree(self, address: int) -> tuple:
        if address not in self.blocks or address in self.pinned:
            return (self.cudaError_t.cudaErrorInvalidValue,)
        del self.blocks[address]
        return self._ok()

    def cudaFreeHost(self, address: int) -> tuple:
        if address not in self.pinned:
            return (self.cudaError_t.cudaErrorInvalidValue,)
        self.pinned.discard(address)
        del self.blocks[address]
        return self._ok()

    def cudaStreamCreate(self) -> tuple:
        stream = next(self._stream_ids)
        self.streams.add(stream)
        return self._ok(stream)

    def cudaStreamDestroy(self, stream: int) -> tuple:
        self.streams.discard(stream)
        return self._ok()

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: Any, stream: int) -> tuple:
        # The device side must be an allocation; the host side may be any host memory, as with real CUDA.
        device = dst if kind.name == "cudaMemcpyHostToDevice" else src
        if stream not in self.streams or not self._inside(device, nbytes):
            return (self.cudaError_t.cudaErrorInvalidValue,)
        ctypes.memmove(dst, src, nbytes)
        self.copies.append((kind.name, nbytes))
        return self._ok()

    def cudaStreamSynchronize(self, stream: int) -> tuple:
        return self._ok()

    def cudaEventCreate(self) -> tuple:
        event = next(self._stream_ids)
        self.events[event] = None
        return self._ok(event)

    def cudaEventDestroy(self, event: int) -> tuple:
        if event not in self.events:
            return (self.cudaError_t.cudaErrorInvalidValue,)
        del self.events[event]
        return self._ok()

    def cudaEventRecord(self, event: int, stream: int) -> tuple:
        if event not in self.events or stream not in self.streams:
            return (self.cudaError_t.cudaErrorInvalidValue,)
        self.events[event] = time.perf_counter()
        return self._ok()

    def cudaEventSynchronize(self, event: int) -> tuple:
        return self._ok() if self.events.get(event) is not None else (self.cudaError_t.cudaErrorInvalidValue,)

    def cudaEventElapsedTime(self, start: int, end: int) -> tuple:
        if self.events.get(start) is None or self.events.get(end) is None:
            return (self.cudaError_t.cudaErrorInvalidValue, 0.0)
        return self._ok((self.events[end] - self.events[start]) * 1000.0)

    def _inside(self, address: int, nbytes: int) -> bool:
        return any(start <= address and address + nbytes <= start + ctypes.sizeof(block)
                   for start, block in self.blocks.items())

    def read(self, address: int, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        """Copy out of fake device memory."""
        count = int(np.prod(shape))
        raw = (ctypes.c_byte * (count * np.dtype(dtype).itemsize)).from_address(address)
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape).copy()

    def write(self, address: int, values: np.ndarray) -> None:
        """Copy into fake device memory."""
        data = np.ascontiguousarray(values)
        ctypes.memmove(address, data.ctypes.data, data.nbytes)


FAKE_CUDART_NAMES = (
    "cudaError_t", "cudaMemcpyKind", "cudaGetDeviceCount", "cudaSetDevice", "cudaGetDeviceProperties",
    "cudaGetErrorString", "cudaMalloc", "cudaMallocHost", "cudaFree", "cudaFreeHost", "cudaStreamCreate",
    "cudaStreamDestroy", "cudaMemcpyAsync", "cudaStreamSynchronize", "cudaEventCreate", "cudaEventDestroy",
    "cudaEventRecord", "cudaEventSynchronize", "cudaEventElapsedTime",
)


# --- scripted GPU behaviour -------------------------------------------------------------------------------------------


def inspector_json(version: tuple[int, ...], layer_types: list[str]) -> str:
    """Engine-inspector JSON in the schema of ``version`` (``Format/Datatype`` up to 10.x, ``DataType`` in 11)."""
    layers = []
    for index, kind in enumerate(layer_types):
        words = {"fp32": ("Row major linear FP32", "Float"), "fp16": ("Channel major FP16 format", "Half"),
                 "int8": ("Thirty-two wide channel vectorized row major Int8 format", "Int8")}[kind]
        tensor = {"Name": f"t{index}", "Location": "Device", "Dimensions": [1, 8, 64, 64]}
        if version[0] >= 11:
            tensor.update({"DataType": words[1], "Format": "kLINEAR"})
        else:
            tensor["Format/Datatype"] = words[0]
        layers.append({"Name": f"layer{index}", "LayerType": "CaskConvolution", "Inputs": [tensor],
                       "Outputs": [tensor]})
    key = "I/O Tensors" if version[0] >= 11 else "Bindings"
    return json.dumps({"Layers": layers, key: ["input", "output"]})


def simulate_gpu(trt: FakeTensorRT, cuda: FakeCudart, *, engine_layers: Callable[[Any], list[str]] | None = None,
                 corrupt_output: bool = False) -> dict[str, Any]:
    """Script a build and a run on ``trt``: the engine runs the parsed ONNX model with ONNX Runtime.

    Args:
        trt: The fake module.
        cuda: The fake CUDA runtime whose memory the engine reads and writes.
        engine_layers: ``f(build_state) -> ["fp16", "fp32", ...]``, the layer types the inspector reports;
            default: FP16 when the build asked for it (flag or fp16 graph), else FP32.
        corrupt_output: The engine writes wrong numbers (to exercise a failed parity check).

    Returns:
        The build state (parsed ONNX bytes, flags), for assertions.
    """
    import onnx
    import onnxruntime as ort

    state: dict[str, Any] = {"onnx": None, "builder_flags": set(), "network_flags": set()}
    version = tuple(int(p) for p in trt.__version__.split("."))

    def create_network(builder: Any, flags: int = 0) -> FakeInstance:
        names = {v for v in (trt.cls("NetworkDefinitionCreationFlag").enum_value(m)
                             for m, e in trt._members["NetworkDefinitionCreationFlag"].items() if e[0].kind == "enum")
                 if flags & (1 << v.value)}
        state["network_flags"] = {v.name for v in names}
        return trt.instance("INetworkDefinition")

    def parse(parser: Any, model: bytes, path: str | None = None) -> bool:
        state["onnx"] = bytes(model)
        return True

    def get_input(network: Any, index: int) -> FakeInstance:
        return trt.instance("ITensor", name="input")

    def set_flag(config: Any, flag: FakeEnumValue) -> None:
        state["builder_flags"].add(flag.name)

    def build(builder: Any, network: Any, config: Any) -> FakeInstance:
        return trt.instance("IHostMemory", fake_payload=b"ENGINE" + state["onnx"])

    def deserialize(runtime: Any, data: Any) -> FakeInstance | None:
        payload = bytes(data)
        if not payload.startswith(b"ENGINE"):
            return None
        engine = trt.instance("ICudaEngine")
        session = ort.InferenceSession(payload[6:], providers=["CPUExecutionProvider"])
        object.__setattr__(engine, "fake_session", session)
        return engine

    def is_fp16_graph() -> bool:
        model = onnx.load_from_string(state["onnx"])
        return any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)

    def default_layers(build_state: dict) -> list[str]:
        low = "FP16" in build_state["builder_flags"] or is_fp16_graph()
        return ["fp16"] * 6 + ["fp32"] * 2 if low else ["fp32"] * 8

    def engine_information(inspector: Any, fmt: FakeEnumValue) -> str:
        return inspector_json(version, (engine_layers or default_layers)(state))

    io_names = ["input", "output"]
    trt.on("Builder.create_network", create_network)
    trt.on("OnnxParser.parse", parse)
    trt.on("INetworkDefinition.get_input", get_input)
    trt.on("IBuilderConfig.set_flag", set_flag)
    trt.on("Builder.build_serialized_network", build)
    trt.on("Builder.num_DLA_cores", lambda builder: 2)
    trt.on("Runtime.deserialize_cuda_engine", deserialize)
    trt.on("EngineInspector.get_engine_information", engine_information)
    trt.on("ICudaEngine.num_io_tensors", lambda engine: 2)
    trt.on("ICudaEngine.get_tensor_name", lambda engine, index: io_names[index])
    trt.on("ICudaEngine.get_tensor_mode", lambda engine, name: trt.TensorIOMode.INPUT if name == "input"
           else trt.TensorIOMode.OUTPUT)
    trt.on("ICudaEngine.get_tensor_dtype", lambda engine, name: trt.DataType.FLOAT)
    def set_shape(profile: Any, name: str, low: tuple, opt: tuple, high: tuple) -> None:
        state["profile"] = [tuple(low), tuple(opt), tuple(high)]

    trt.on("IOptimizationProfile.set_shape", set_shape)
    trt.on("ICudaEngine.get_tensor_profile_shape",
           lambda engine, name, index: state.get("profile", [(1, 3, 32, 32), (2, 3, 256, 256), (4, 3, 1024, 1024)]))
    trt.on("ITimingCache.serialize", lambda cache: trt.instance("IHostMemory", fake_payload=b"TIMINGCACHE"))

    def create_context(engine: Any, *args: Any) -> FakeInstance:
        context = trt.instance("IExecutionContext")
        object.__setattr__(context, "fake_engine", engine)
        object.__setattr__(context, "fake_shapes", {})
        object.__setattr__(context, "fake_addresses", {})
        return context

    def set_input_shape(context: Any, name: str, shape: Any) -> bool:
        context.fake_shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(context: Any, name: str) -> tuple:
        return context.fake_shapes["input"]  # generators keep the input's shape

    def set_tensor_address(context: Any, name: str, address: int) -> bool:
        context.fake_addresses[name] = address
        return True

    def execute(context: Any, stream: int) -> bool:
        shape = context.fake_shapes["input"]
        batch = cuda.read(context.fake_addresses["input"], shape)
        session = context.fake_engine.fake_session
        result = session.run(None, {session.get_inputs()[0].name: batch})[0].astype(np.float32)
        if corrupt_output:
            result = -result
        cuda.write(context.fake_addresses["output"], result)
        state.setdefault("executions", []).append(shape)
        return True

    trt.on("ICudaEngine.create_execution_context", create_context)
    trt.on("IExecutionContext.set_input_shape", set_input_shape)
    trt.on("IExecutionContext.get_tensor_shape", get_tensor_shape)
    trt.on("IExecutionContext.set_tensor_address", set_tensor_address)
    trt.on("IExecutionContext.execute_async_v3", execute)
    return state
