"""Checks that keep an untrusted checkpoint from exhausting memory or passing off broken weights.

``torch.load(..., weights_only=True)`` stops code from running, not memory from being committed: a file of a few
hundred bytes can declare a zip entry that inflates to gigabytes, a tensor with zero strides that claims a huge
shape, or a config (or shapes) from which a network with billions of parameters would be built. Each check here
runs before the step that would commit that memory:

* :func:`check_archive` reads only the zip directory, before ``torch.load``;
* :func:`check_tensors` runs on the loaded tensors, before anything reads them element by element;
* :func:`check_parameter_count` runs on a network built on the ``meta`` device (shapes only, no storage), before
  the real one is built; :func:`planned_generator` gives that network, so shapes are checked against it first.

Also here: :func:`weights_digest`, the hash of what a checkpoint *holds* (the same weights saved twice hash alike).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cg_export.errors import ArchitectureError, CheckpointError

# The largest registered generator at its defaults is U-GAT-IT's full model at 256 px (ngf 64): 279 M parameters,
# most of them in its fully connected gamma/beta MLP. About three times that (4 GB in float32) is still a real
# generator; anything beyond is a typo or a hostile file (`--ngf 65536` asks for 11.9 million M).
MAX_PARAMETERS = 1_000_000_000
# torch.save writes every entry of its zip archive uncompressed ("stored"), so the entries add up to about the
# file's own size. A little slack covers other writers that compress the small pickle entry.
ARCHIVE_SLACK_BYTES = 1 << 20
ARCHIVE_MAX_RATIO = 2
TRUNCATED = "truncated or corrupt checkpoint (the archive is incomplete); copy or download it again"


def check_archive(path: Path, data: bytes) -> None:
    """Refuse a zip checkpoint whose entries would inflate far beyond the file's size, before ``torch.load``.

    Only the zip's central directory is read (no entry is decompressed). Legacy (non-zip) files are left to the
    loader.

    Raises:
        CheckpointError: the archive is truncated, or its declared contents exceed what its size can hold.
    """
    if not data.startswith(b"PK\x03\x04"):
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise CheckpointError(f"{path}: {TRUNCATED}") from None
    declared = sum(entry.file_size for entry in entries)
    allowed = ARCHIVE_MAX_RATIO * len(data) + ARCHIVE_SLACK_BYTES
    if declared > allowed:
        raise CheckpointError(
            f"{path}: refused: its archive entries would inflate to {declared / 1e6:,.0f} MB from a "
            f"{len(data) / 1e6:,.1f} MB file (a zip bomb; torch.save never compresses); not a checkpoint to trust"
        )


def check_tensors(path: Path, payload: Any) -> None:
    """Refuse tensors whose shapes claim more bytes than their storage holds, or whose values are not finite.

    A real state dict's tensors each own (a part of) a storage read from the file. A tensor whose elements need
    more bytes than its storage has (zero strides, overlapping views) would make every later step that copies it
    (``.float()``, ``load_state_dict``) allocate its full claimed size. The finite check comes second because it
    reads every element.

    Raises:
        CheckpointError: a tensor is larger than its storage, or holds NaN or infinite values.
    """
    tensors = list(_named_tensors(payload))
    for name, tensor in tensors:
        if tensor.layout != torch.strided or tensor.device.type != "cpu":
            raise CheckpointError(f"{path}: tensor {name} is not a plain CPU tensor ({tensor.layout}, "
                                  f"{tensor.device}); not a generator checkpoint")
        needed = tensor.numel() * tensor.element_size()
        available = tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()
        if tensor.numel() and (needed > available or 0 in tensor.stride() and tensor.numel() > 1):
            raise CheckpointError(
                f"{path}: refused: tensor {name} claims shape {tuple(tensor.shape)} ({needed / 1e6:,.1f} MB) but "
                f"its data in the file is {max(available, 0) / 1e6:,.3f} MB (zero or overlapping strides); "
                "the file is damaged or hostile"
            )
    for name, tensor in tensors:
        if tensor.is_floating_point() and tensor.numel() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"{path}: weight {name} holds {bad} NaN or infinite value(s): the generator is broken (training "
                "diverged?); export an earlier checkpoint"
            )


def _named_tensors(payload: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(payload, torch.Tensor):
        yield prefix or "<tensor>", payload
    elif isinstance(payload, Mapping):
        for key, value in payload.items():
            yield from _named_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(payload, (list, tuple)):
        for index, value in enumerate(payload):
            yield from _named_tensors(value, f"{prefix}[{index}]")


def planned_generator(factory: Any, **kwargs: Any) -> nn.Module:
    """The network ``factory(**kwargs)`` would build, on the ``meta`` device: shapes without storage."""
    with torch.device("meta"):
        return factory(**kwargs)


def parameter_count(model: nn.Module) -> int:
    """Number of parameters and buffers' elements (works on ``meta`` modules)."""
    return sum(t.numel() for t in model.state_dict().values())


def check_parameter_count(name: str, model: nn.Module, kwargs: Mapping[str, Any]) -> None:
    """Refuse an architecture too large to be a real generator (e.g. ``ngf 65536``) before it is allocated.

    Args:
        name: The registry name, for the message.
        model: The planned network (usually on the ``meta`` device).
        kwargs: The arguments it was built with, for the message.

    Raises:
        ArchitectureError: more than :data:`MAX_PARAMETERS` parameters.
    """
    count = parameter_count(model)
    if count > MAX_PARAMETERS:
        args = ", ".join(f"{k} {v}" for k, v in kwargs.items() if k in ("ngf", "n_blocks", "num_downs", "in_channels",
                                                                     "out_channels"))
        raise ArchitectureError(
            f"{name}{f' ({args})' if args else ''} would have {count / 1e6:,.0f} M parameters "
            f"({count * 4 / 1e9:,.1f} GB in float32); the limit is {MAX_PARAMETERS / 1e6:,.0f} M"
        )


def weights_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's content: names (sorted), dtypes, shapes and bytes.

    Two files holding the same weights (saved twice, by another writer, in another zip layout) get the same
    digest; a file's own bytes also depend on its archive's name and layout.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()

