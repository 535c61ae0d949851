"""Extract the exact Python API of a TensorRT release from its bindings wheel, without TensorRT's libraries.

NVIDIA's ``tensorrt-bindings`` / ``tensorrt-cu1x-bindings`` wheels are real (the libraries wheels are not
reachable from this project's machines). Their extension module needs ``libnvinfer.so.N`` and friends only for
the handful of factory functions it calls (``createInferBuilder_INTERNAL`` ...); pybind11 registers every
class, method, property and enum value at import time without calling into them. So this script compiles tiny
stand-in libraries that define exactly the undefined symbols the extension asks for (each aborts if it is ever
called), imports the real bindings against them in a subprocess, and walks the module. The result is the
version's real API surface, one ``Name kind [signature]`` line per name::

    IExecutionContext.execute_async_v3 method (stream_handle: int) -> bool
    IBuilderConfig.max_workspace_size property rw -> int
    BuilderFlag.FP16 enum
    Logger class ILogger

``tests/fake_tensorrt.py`` builds a fake ``tensorrt`` module from such a file, so a code path that touches a name
its version lacks fails with AttributeError, exactly as it would on a device with that TensorRT.

Usage (needs pip, gcc and nm; run with the Python the wheels were built for, 3.11 here)::

    python tests/data/trt_api/extract.py tensorrt-bindings==8.6.1 tensorrt-cu12-bindings==10.3.0 \\
        tensorrt-cu13-bindings==11.4.0.106

writes ``tests/data/trt_api/tensorrt-<version>.txt`` for each.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Protocol methods a caller uses through syntax (engine[i], len(x), with ...), kept besides public names.
PROTOCOL_DUNDERS = ("__init__", "__getitem__", "__setitem__", "__len__", "__iter__", "__enter__", "__exit__",
                    "__call__", "__int__", "__index__")

# Runs inside the subprocess that imports the real bindings: prints the API as JSON lines.
WALKER = r'''
import inspect, json, re, sys
import tensorrt_bindings as trt

PROTOCOL_DUNDERS = %(dunders)r
QUALIFIER = re.compile(r"\b(?:tensorrt_bindings\.)?tensorrt\.(?:tensorrt\.)?|nvinfer1::(?:v_1_0::)?|nvonnxparser::")
BASES = {"object", "pybind11_object"}


def clean(text):
    return QUALIFIER.sub("", text)


def signatures(name, doc):
    """pybind11 writes each overload's signature as a docstring line 'name(self: X, a: int) -> R'."""
    found = []
    for line in (doc or "").splitlines():
        match = re.match(r"^\s*(?:\d+\. )?" + re.escape(name) + r"\((.*)\) -> (.+?)\s*$", line)
        if match:
            params = drop_self(split_params(match.group(1)))
            found.append("(" + ", ".join(clean(p) for p in params) + ") -> " + clean(match.group(2)))
    return found


def drop_self(params):
    return params[1:] if params and re.match(r"^(self)(: |$)", params[0]) else params


def split_params(text):
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "[(<{":
            depth += 1
        elif char in "])>}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def python_signature(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return ["(*args, **kwargs) -> object"]
    params = [p for p in sig.parameters.values() if p.name != "self"]
    text = ", ".join(p.name + (" = " + repr(p.default) if p.default is not p.empty else "") for p in params)
    return ["(" + text + ") -> object"]


def routine_signatures(name, obj):
    found = signatures(name, getattr(obj, "__doc__", None))
    return found or python_signature(obj)


def describe_value(value):
    """``ILogger.Severity = WARNING`` for an enum value (aliases such as Logger.WARNING), else the value's type."""
    kind = type(value)
    if hasattr(kind, "__members__") and hasattr(value, "name"):
        return kind.__qualname__ + " = " + value.name
    return kind.__name__


def emit(name, kind, detail=""):
    print(json.dumps([name, kind, detail]))


def walk_class(prefix, cls, seen):
    seen[id(cls)] = prefix
    is_enum = hasattr(cls, "__members__")
    members = set()
    for klass in cls.__mro__:
        if klass.__name__ in BASES:
            continue
        members.update(klass.__dict__)
    if is_enum:
        members.update(cls.__members__)
    for member in sorted(members):
        if member.startswith("_") and member not in PROTOCOL_DUNDERS:
            continue
        if is_enum and member in cls.__members__:
            emit(prefix + "." + member, "enum", str(int(cls.__members__[member])))
            continue
        raw = None
        for klass in cls.__mro__:
            if member in klass.__dict__:
                raw = klass.__dict__[member]
                break
        full = prefix + "." + member
        if isinstance(raw, property):
            access = "rw" if raw.fset is not None else "ro"
            doc = (raw.fget.__doc__ or "") if raw.fget is not None else ""
            match = re.search(r"-> (.+?)\s*$", doc.splitlines()[0]) if doc.strip() else None
            emit(full, "property", access + (" -> " + clean(match.group(1)) if match else ""))
        elif isinstance(raw, staticmethod):
            for sig in routine_signatures(member, raw.__func__):
                emit(full, "staticmethod", sig)
        elif inspect.isclass(raw):
            if id(raw) in seen:
                emit(full, "class", "= " + seen[id(raw)])
            else:
                emit(full, "class", " ".join(b.__name__ for b in raw.__bases__ if b.__name__ not in BASES))
                walk_class(full, raw, seen)
        elif callable(raw):
            for sig in routine_signatures(member, raw):
                emit(full, "method", sig)
        else:
            emit(full, "attr", describe_value(raw))


def main():
    emit("__version__", "attr", trt.__version__)
    seen = {}
    for name in sorted(dir(trt)):
        if name.startswith("_"):
            continue
        obj = getattr(trt, name)
        if inspect.ismodule(obj):
            continue
        if inspect.isclass(obj):
            emit(name, "class", " ".join(b.__name__ for b in obj.__bases__ if b.__name__ not in BASES))
            if id(obj) not in seen:
                walk_class(name, obj, seen)
        elif callable(obj):
            for sig in routine_signatures(name, obj):
                emit(name, "function", sig)
        else:
            emit(name, "attr", describe_value(obj))


main()
'''


def download(spec: str, folder: Path) -> Path:
    """``pip download --no-deps`` one wheel for this interpreter into ``folder``."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", version,
         "-d", str(folder), spec],
        check=True, capture_output=True,
    )
    name = re.split(r"[=<>]", spec)[0].replace("-", "_")
    wheels = sorted(folder.glob(f"{name}-*.whl"))
    if not wheels:
        raise SystemExit(f"{spec}: pip downloaded no wheel")
    return wheels[-1]


def stand_in_libraries(extension: Path, folder: Path) -> None:
    """Compile ``lib<name>.so.<N>`` for every TensorRT library the extension needs, defining its undefined symbols."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(lib[^\]]+)\]", _run(["readelf", "-d", str(extension)]))
    ours = [lib for lib in needed if lib.startswith("libnv")]
    undefined = []
    for line in _run(["nm", "-D", "--undefined-only", str(extension)]).splitlines():
        kind, _, symbol = line.strip().partition(" ")
        # Weak symbols and versioned ones (glibc, libstdc++) are satisfied elsewhere; Python's come from the host.
        if kind != "U" or "@" in symbol or symbol.startswith(("Py", "_Py")) or symbol in _LIBC_SYMBOLS:
            continue
        undefined.append(symbol)
    source = folder / "stand_in.c"
    source.write_text(
        "#include <stdio.h>\n#include <stdlib.h>\n"
        + "".join(
            f'void* {symbol}(void) {{ fputs("stand-in TensorRT library: {symbol} called\\n", stderr); abort(); }}\n'
            for symbol in undefined
        )
    )
    for lib in ours:
        _run(["gcc", "-shared", "-fPIC", "-o", str(folder / lib), str(source)])


_LIBC_SYMBOLS = {"dlopen", "dlsym", "dlclose", "dlerror", "pthread_once"}


def _run(command: list[str]) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def extract(wheel: Path, work: Path) -> tuple[str, list[str]]:
    """Import the wheel's bindings against stand-in libraries and return (version, API lines)."""
    unpacked = work / wheel.stem
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    extension = next(unpacked.glob("tensorrt_bindings/tensorrt*.so"))
    libs = work / f"{wheel.stem}-libs"
    libs.mkdir()
    stand_in_libraries(extension, libs)
    result = subprocess.run(
        [sys.executable, "-c", WALKER % {"dunders": PROTOCOL_DUNDERS}],
        capture_output=True, text=True,
        env={"LD_LIBRARY_PATH": str(libs), "PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
    )
    if result.returncode != 0:
        raise SystemExit(f"{wheel.name}: importing the bindings failed:\n{result.stderr}")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    version = rows[0][2]
    lines = sorted({" ".join(part for part in row if part) for row in rows[1:]})
    return version, lines


# Names every generation's extraction must agree with (tensorrt.md); a wrong walk fails here, not in a test.
EXPECTED = {
    "8.": {"present": ["IExecutionContext.execute_async_v3", "IExecutionContext.execute_async_v2",
                       "BuilderFlag.FP16", "NetworkDefinitionCreationFlag.EXPLICIT_BATCH", "IInt8EntropyCalibrator2",
                       "OnnxParserFlag.NATIVE_INSTANCENORM", "IBuilderConfig.max_workspace_size"],
           "absent": ["NetworkDefinitionCreationFlag.STRONGLY_TYPED"]},
    "10.": {"present": ["IExecutionContext.execute_async_v3", "BuilderFlag.FP16", "OnnxParserFlag.NATIVE_INSTANCENORM",
                        "NetworkDefinitionCreationFlag.STRONGLY_TYPED"],
            "absent": ["IExecutionContext.execute_async_v2", "IBuilderConfig.max_workspace_size"]},
    "11.": {"present": ["IExecutionContext.execute_async_v3", "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
                        "OnnxParserFlag.NATIVE_INSTANCENORM"],
            "absent": ["BuilderFlag.FP16", "BuilderFlag.INT8", "IInt8EntropyCalibrator2",
                       "NetworkDefinitionCreationFlag.EXPLICIT_BATCH", "IExecutionContext.execute_async_v2"]},
}


def check(version: str, lines: list[str]) -> None:
    """Fail when the extraction disagrees with the documented differences between generations."""
    names = {line.split(" ", 1)[0] for line in lines}
    for prefix, expected in EXPECTED.items():
        if version.startswith(prefix):
            missing = [n for n in expected["present"] if n not in names]
            extra = [n for n in expected["absent"] if n in names]
            if missing or extra:
                raise SystemExit(f"TensorRT {version}: extraction missed {missing} or wrongly found {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="+", help="pip requirement of a bindings wheel, e.g. tensorrt-bindings==8.6.1")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for tensorrt-<version>.txt")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for spec in args.specs:
            version, lines = extract(download(spec, work), work)
            check(version, lines)
            target = args.out / f"tensorrt-{version}.txt"
            header = f"# TensorRT {version} Python API, extracted from {spec} by tests/data/trt_api/extract.py\n"
            target.write_text(header + "\n".join(lines) + "\n")
            print(f"{target}: {len(lines)} names")


if __name__ == "__main__":
    main()
