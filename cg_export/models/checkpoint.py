"""Loading and saving generator checkpoints: our own format and the peers' bare state dicts, auto-detected.

Accepted files (all read with ``torch.load(..., weights_only=True)``, so no pickle can run code):

* ours: ``{"format": "cg-export.generator", "version": 1, "config": {...}, "state_dict": {...}, "meta": {...}}``;
* pytorch-CycleGAN-and-pix2pix ``latest_net_G_A.pth`` / ``<epoch>_net_G_B.pth`` / ``latest_net_G.pth``:
  bare state dicts of ``ResnetGenerator`` or ``UnetGenerator`` (2018-era InstanceNorm running stats and
  DataParallel ``module.`` prefixes are cleaned up);
* PyTorch-GAN ``G_AB_<epoch>.pth``: bare state dicts of ``GeneratorResNet`` (any channel count; its
  ``ReflectionPad2d(channels)`` edge padding is reproduced);
* aitorzip PyTorch-CycleGAN ``netG_A2B.pth``: the pytorch-CycleGAN-and-pix2pix layout, taken as such;
* CUT / FastCUT ``latest_net_G.pth``: anti-aliased ResNet generators (blur-pool ``model.N.filt`` buffers);
* U-GAT-IT ``<dataset>_params_latest.pt``: a dict of state dicts; ``genA2B`` (or ``genB2A``) is taken.

* GAN Compression ``latest_net_G.pth``: bare state dicts of its mobile / sub-mobile ResNet generators.

Norms (batch with running statistics, instance, none), dropout and channel counts are read from the weights.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cg_export.errors import ArchitectureError, CheckpointError, CheckpointOptionError
from cg_export.files import atomic_output, sha256_of
from cg_export.models import safety
from cg_export.models.layers import read_norm
from cg_export.models.mobile_resnet import describe_mobile_resnet, infer_mobile_resnet_config, is_mobile_resnet_state
from cg_export.models.registry import create_generator

FORMAT = "cg-export.generator"
FORMAT_VERSION = 1

SOURCE_OURS = "cg-export"
SOURCE_JUNYANZ = "pytorch-CycleGAN-and-pix2pix"
SOURCE_PYTORCH_GAN = "PyTorch-GAN"
SOURCE_CUT = "contrastive-unpaired-translation (CUT/FastCUT)"
SOURCE_UGATIT = "U-GAT-IT"
DIRECTIONS = ("A2B", "B2A")
SOURCE_GAN_COMPRESSION = "gan-compression"

_NOT_A_CHECKPOINT = "not a PyTorch checkpoint (torch.load cannot read it); pass a .pt/.pth generator file"
_RUNNING_STAT_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


@dataclass
class LoadedGenerator:
    """A generator rebuilt from a checkpoint file.

    Attributes:
        model: The generator in eval mode, on the CPU, in float32.
        config: Architecture config; ``create_generator(**config)`` rebuilds the network.
        source_format: Which implementation wrote the file (``cg-export``, ``pytorch-CycleGAN-and-pix2pix``,
            ``PyTorch-GAN``, ``contrastive-unpaired-translation (CUT/FastCUT)``, ``U-GAT-IT``).
        path: The file it was read from.
        sha256: SHA-256 of the file's bytes.
        meta: The checkpoint's ``meta`` dict (ours) or ``{}``.
        notes: What was cleaned up on the way (dropped keys, stripped prefixes), for the user to see.
        weights_sha256: Digest of the loaded weights (:func:`cg_export.models.safety.weights_digest`): the same
            weights saved twice, or by another writer, give the same digest. Exports record it as their source.
    """

    model: nn.Module
    config: dict[str, Any]
    source_format: str
    path: Path
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    weights_sha256: str = ""

    @property
    def description(self) -> str:
        """One line naming the architecture, e.g. ``resnet_9blocks (ConvTranspose upsampling, ngf 64, 3->3)``."""
        return describe_architecture(self.config)


def describe_architecture(config: dict[str, Any]) -> str:
    """Human-readable one-line summary of an architecture config."""
    name = config.get("name")
    if name == "mobile_resnet":
        return describe_mobile_resnet(config)
    channels = f"{config.get('in_channels', 3)}->{config.get('out_channels', 3)} channels"
    extras = [f"ngf {config.get('ngf', 64)}", channels, f"{config.get('norm', 'instance')} norm"]
    if config.get("dropout"):
        extras.append("dropout")
    if name == "resnet":
        upsample = "ConvTranspose" if config.get("upsample", "transpose") == "transpose" else "nearest Upsample + conv"
        if config.get("edge_pad", 3) != 3:
            extras.append(f"edge padding {config['edge_pad']} (output {4 * (3 - config['edge_pad'])} px smaller)")
        return f"resnet_{config.get('n_blocks', 9)}blocks ({upsample} upsampling, {', '.join(extras)})"
    if name == "cut_resnet":
        halves = [half for half, key in (("down", "antialias"), ("up", "antialias_up")) if config.get(key, True)]
        sampling = f"anti-aliased {' and '.join(halves)}sampling" if halves else "plain sampling"
        return f"CUT resnet_{config.get('n_blocks', 9)}blocks ({sampling}, {', '.join(extras)})"
    if name == "ugatit":
        kind = "light, any size" if config.get("light") else f"full, {config.get('img_size', 256)}px only"
        extras = [e for e in extras if not e.endswith(" norm")] + ["AdaLIN"]
        return f"U-GAT-IT generator ({kind}, {config.get('n_blocks', 4)} blocks, {', '.join(extras)})"
    if name == "unet":
        size = 2 ** config.get("num_downs", 8)
        return f"unet_{size} ({config.get('num_downs', 8)} levels, {', '.join(extras)})"
    return f"{name} ({', '.join(extras)})"


def save_generator(model: nn.Module, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` in the toolkit's checkpoint format, atomically.

    Args:
        model: A generator built by :func:`cg_export.models.create_generator` (it must have ``config``).
        path: Output file, conventionally ``*.pt``.
        meta: Free-form JSON-like facts (a trainer stores at least ``epoch`` and ``step``).

    Returns:
        The path written.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise ArchitectureError("only generators built by cg_export.models.create_generator can be saved")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": FORMAT_VERSION, "config": dict(config), "state_dict": state,
               "meta": dict(meta or {})}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_generator(path: str | Path, arch: str | None = None, direction: str | None = None) -> LoadedGenerator:
    """Load a generator checkpoint of any supported format, detecting the format and architecture.

    Args:
        path: Checkpoint file (``.pt`` / ``.pth``).
        arch: Registry name forcing the architecture family and depth (``--arch``); channel counts and ``ngf``
            are still read from the weights. ``None`` detects everything from the file.
        direction: For files that hold both generators (U-GAT-IT's ``*_params_latest.pt``): ``"A2B"`` (the
            default) or ``"B2A"``. Files holding one generator refuse it: their direction is the file itself.

    Returns:
        The rebuilt generator and what is known about it.

    Raises:
        CheckpointError: missing, unreadable, unsafe or truncated file, or not a generator.
        ArchitectureError: the weights do not fit the (detected or forced) architecture.
    """
    path = Path(path)
    if direction is not None and direction not in DIRECTIONS:
        raise CheckpointOptionError("direction", direction, f"choose one of {', '.join(DIRECTIONS)}")
    payload = _read_checkpoint(path)
    notes: list[str] = []
    meta: dict[str, Any] = {}
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        version = payload.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: cg-export checkpoint version {version!r} is newer than this toolkit reads "
                f"({FORMAT_VERSION}); upgrade cg-export"
            )
        config, state_dict = payload.get("config"), payload.get("state_dict")
        if not isinstance(config, dict) or not _is_state_dict(state_dict):
            raise CheckpointError(f"{path}: cg-export checkpoint lacks a valid 'config' or 'state_dict'")
        meta = payload.get("meta") or {}
        source = SOURCE_OURS
        if arch is not None:
            config = _config_for_forced_arch(arch, state_dict)
        if direction is not None:
            raise CheckpointError(_ONE_GENERATOR.format(path=path, direction=direction))
    else:
        state_dict = _unwrap_state_dict(payload, path, direction, notes)
        state_dict = _clean_state_dict(state_dict, notes)
        if arch is not None:
            config = _config_for_forced_arch(arch, state_dict)
            source = _guess_source(state_dict)
        else:
            config, source = infer_config(state_dict, path)
    model = _build_and_load(config, state_dict, path, forced=arch is not None, source=source)
    return LoadedGenerator(model, config, source, path, sha256_of(path), meta, notes,
                           safety.weights_digest(model.state_dict()))


def _read_checkpoint(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; pass the generator file inside it (e.g. latest_net_G_A.pth)")
    data = path.read_bytes()
    if not data:
        raise CheckpointError(f"{path}: the file is empty")
    # torch.save writes a zip archive ("PK"); the legacy format and bare pickles start with the PROTO opcode.
    # Anything else is not a checkpoint, and is never handed to an unpickler at all.
    if not (data.startswith(b"PK\x03\x04") or data[:1] == b"\x80"):
        raise CheckpointError(f"{path}: {_NOT_A_CHECKPOINT}")
    safety.check_archive(path, data)
    try:
        with warnings.catch_warnings():
            # Files written with pickle protocol > 2 warn on every load; the safe unpickler handles them.
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here; each one means "not a loadable checkpoint"
        raise CheckpointError(f"{path}: {_explain_load_failure(exc)}") from None
    safety.check_tensors(path, payload)
    return payload


def _explain_load_failure(exc: Exception) -> str:
    text = str(exc)
    found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text)
    if found or "Weights only load failed" in text:
        what = f" ({found.group(1)})" if found else ""
        return (
            f"refused: the file holds Python objects{what} that could run code when unpickled; only plain "
            "tensors and state dicts are loaded. If you trust its origin, re-save model.state_dict() with torch.save"
        )
    if "central directory" in text or "zip archive" in text or isinstance(exc, EOFError):
        return safety.TRUNCATED
    return _NOT_A_CHECKPOINT


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


_ONE_GENERATOR = (
    "{path}: --direction {direction} applies to files holding both generators (U-GAT-IT's "
    "*_params_latest.pt); this file holds one generator, so pass the other direction's own file instead"
)


def _unwrap_state_dict(
    payload: Any, path: Path, direction: str | None = None, notes: list[str] | None = None
) -> dict[str, torch.Tensor]:
    if isinstance(payload, dict) and "genA2B" in payload:
        # U-GAT-IT's training file: {"genA2B", "genB2A", "disGA", "disGB", "disLA", "disLB"} state dicts.
        key = f"gen{direction or 'A2B'}"
        if not _is_state_dict(payload.get(key)):
            raise CheckpointError(f"{path}: U-GAT-IT training file without a '{key}' generator state dict")
        if notes is not None:
            notes.append(f"U-GAT-IT training file: exporting its {key} generator (--direction picks the other)")
        return payload[key]
    if direction is not None:
        raise CheckpointError(_ONE_GENERATOR.format(path=path, direction=direction))
    if _is_state_dict(payload):
        return payload
    if isinstance(payload, dict):
        # Lightning-style and hand-rolled wrappers keep the weights under one of these keys.
        for key in ("state_dict", "model", "generator"):
            if _is_state_dict(payload.get(key)):
                return payload[key]
        keys = ", ".join(sorted(map(str, payload))[:5])
        raise CheckpointError(
            f"{path}: not a generator checkpoint: a dict with keys {keys} but no state dict of tensors; "
            "for a full training checkpoint pass the generator's own file (e.g. latest_net_G_A.pth or G_AB.pt)"
        )
    raise CheckpointError(f"{path}: not a generator checkpoint: it holds a {type(payload).__name__}, not a state dict")


def _clean_state_dict(state_dict: dict[str, torch.Tensor], notes: list[str]) -> dict[str, torch.Tensor]:
    if all(k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
        notes.append("stripped DataParallel 'module.' prefixes")
    # Running statistics belong to BatchNorm (which also has an affine weight) or to 2018-era InstanceNorm with
    # track_running_stats=True (no weight). Upstream deletes the latter on load; so do we, or they would not fit.
    dropped = [
        k for k in state_dict
        if k.endswith(_RUNNING_STAT_SUFFIXES) and k.rsplit(".", 1)[0] + ".weight" not in state_dict
    ]
    if dropped:
        state_dict = {k: v for k, v in state_dict.items() if k not in set(dropped)}
        notes.append(f"dropped {len(dropped)} InstanceNorm running-statistics keys (2018-era checkpoint)")
    return state_dict


def _guess_source(state_dict: dict[str, torch.Tensor]) -> str:
    if "DownBlock.1.weight" in state_dict:
        return SOURCE_UGATIT
    if any(_FILTER_KEY.fullmatch(k) for k in state_dict):
        return SOURCE_CUT
    return SOURCE_PYTORCH_GAN if any(".block." in k for k in state_dict) else SOURCE_JUNYANZ


_FILTER_KEY = re.compile(r"model\.(\d+)\.filt")
_SUPPORTED = (
    "pytorch-CycleGAN-and-pix2pix ResNet/U-Net, PyTorch-GAN GeneratorResNet, CUT/FastCUT ResnetGenerator, "
    "U-GAT-IT ResnetGenerator"
)


def infer_config(state_dict: dict[str, torch.Tensor], path: Path | str = "checkpoint") -> tuple[dict[str, Any], str]:
    """Work out the architecture config and source implementation from state-dict keys and shapes.

    Args:
        state_dict: A cleaned bare state dict (no ``module.`` prefixes).
        path: Used in error messages only.

    Returns:
        ``(config, source_format)``.

    Raises:
        CheckpointError: the keys are not those of a generator we know (the message names the family where it
            is a known one that is not supported, or a network that is not a generator).
    """
    keys = set(state_dict)
    if "DownBlock.1.weight" in keys and "gap_fc.weight" in keys:
        from cg_export.models.ugatit import infer_ugatit_config

        return infer_ugatit_config(state_dict), SOURCE_UGATIT
    if "model.model.0.weight" in keys:
        return _infer_unet(state_dict), SOURCE_JUNYANZ
    if is_mobile_resnet_state(state_dict):  # GAN Compression: separable blocks, also keyed ``conv_block``
        return infer_mobile_resnet_config(state_dict), SOURCE_GAN_COMPRESSION
    _refuse_known_non_generators(state_dict, path)
    if any(".conv_block." in k for k in keys):
        if any(_FILTER_KEY.fullmatch(k) for k in keys):
            from cg_export.models.cut import infer_cut_config

            return infer_cut_config(state_dict), SOURCE_CUT
        return _infer_resnet(state_dict, "transpose", "conv_block"), SOURCE_JUNYANZ
    if any(".block." in k for k in keys):
        return _infer_resnet(state_dict, "nearest", "block"), SOURCE_PYTORCH_GAN
    if _looks_like_discriminator(state_dict):
        raise CheckpointError(
            f"{path}: this is a PatchGAN discriminator (D_A / net_D_A), not a generator; "
            "pass the generator file (latest_net_G_A.pth, G_AB_<epoch>.pth or G_AB.pt)"
        )
    sample = ", ".join(sorted(keys)[:3])
    raise CheckpointError(
        f"{path}: not a generator of a family cg-export supports (keys like {sample}); "
        f"supported: {_SUPPORTED}"
    )


def _refuse_known_non_generators(state_dict: dict[str, torch.Tensor], path: Path | str) -> None:
    """Name the files of the wild that look like generators to a key scan but are something else."""
    keys = set(state_dict)
    if any(re.fullmatch(r"mlp_\d+\.\d+\.weight", k) for k in keys):
        raise CheckpointError(
            f"{path}: CUT/FastCUT's PatchSampleF feature MLP (latest_net_F.pth), not a generator; "
            "pass the generator file latest_net_G.pth"
        )


def _conv_indices(state_dict: dict[str, torch.Tensor]) -> list[int]:
    return sorted({int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"model\.(\d+)\.weight", k))})


def _infer_resnet(state_dict: dict[str, torch.Tensor], upsample: str, block_attr: str) -> dict[str, Any]:
    first = state_dict.get("model.1.weight")
    indices = _conv_indices(state_dict)
    if first is None or first.dim() != 4 or not indices:
        raise CheckpointError("ResNet generator keys are incomplete (no model.1.weight); the file is damaged")
    blocks = {int(m.group(1)) for k in state_dict if (m := re.match(rf"model\.(\d+)\.{block_attr}\.", k))}
    # With Dropout the second block conv moves from index 5 to 6; without it, index 6 holds that conv's norm
    # (a 1-D BatchNorm weight), so only a 4-D weight there means dropout.
    dropout = any(
        v.dim() == 4 for k, v in state_dict.items() if re.fullmatch(rf"model\.\d+\.{block_attr}\.6\.weight", k)
    )
    norm = read_norm(state_dict, "model.1", "model.2")
    config: dict[str, Any] = {
        "name": "resnet",
        "in_channels": int(first.shape[1]),
        "out_channels": int(state_dict[f"model.{indices[-1]}.weight"].shape[0]),
        "ngf": int(first.shape[0]),
        "n_blocks": len(blocks),
        "dropout": dropout,
        "norm": norm,
        "upsample": upsample,
    }
    if upsample == "nearest" and config["in_channels"] != 3:
        # PyTorch-GAN pads its 7x7 convolutions by ReflectionPad2d(channels): 1 pixel for grey-scale models.
        config["edge_pad"] = min(config["in_channels"], 3)
    return config


def _infer_unet(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    first = state_dict["model.model.0.weight"]
    last = state_dict.get("model.model.3.weight")
    if last is None:
        raise CheckpointError("U-Net keys are incomplete (no model.model.3.weight); the file is damaged")
    levels, prefix = 2, "model.model.1.model."
    while f"{prefix}3.model.1.weight" in state_dict:
        levels += 1
        prefix += "3.model."
    return {
        "name": "unet",
        "in_channels": int(first.shape[1]),
        # ConvTranspose2d weights are (in, out, k, k).
        "out_channels": int(last.shape[1]),
        "ngf": int(first.shape[0]),
        "num_downs": levels,
        "dropout": False,
        "norm": read_norm(state_dict, "model.model.1.model.1", "model.model.1.model.2"),
    }


def _looks_like_discriminator(state_dict: dict[str, torch.Tensor]) -> bool:
    indices = _conv_indices(state_dict)
    if not indices:
        return False
    convs = [state_dict[f"model.{i}.weight"] for i in indices]
    return all(c.dim() == 4 and c.shape[-1] == 4 for c in convs) and convs[-1].shape[0] == 1


def _config_for_forced_arch(arch: str, state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The forced architecture's layout, with widths read from the weights.

    A name that states a depth (``resnet_9blocks``, ``unet_256``) fixes it; generic names (``resnet``,
    ``resnet_upsample``, ``unet``) take the depth from the weights too.
    """
    config = dict(create_generator(arch).config)
    try:
        if config["name"] == "unet":
            found = _infer_unet(state_dict)
        elif config["name"] == "resnet":
            attr = "conv_block" if config["upsample"] == "transpose" else "block"
            found = _infer_resnet(state_dict, config["upsample"], attr)
        else:
            found, _ = infer_config(state_dict)
            if found["name"] != config["name"]:
                return config
    except (CheckpointError, KeyError, IndexError):
        return config  # keys of another layout: the strict load below names what does not fit
    depth_key = "num_downs" if config["name"] == "unet" else "n_blocks"
    keep = {depth_key} if re.search(r"_\d+(blocks)?$", arch) else set()
    config.update({k: v for k, v in found.items() if k not in keep and k != "name"})
    return config


def _build_and_load(
    config: dict[str, Any], state_dict: dict[str, torch.Tensor], path: Path, forced: bool = False,
    source: str = SOURCE_OURS,
) -> nn.Module:
    config = dict(config)
    name = config.pop("name", None)
    if not isinstance(name, str):
        raise CheckpointError(f"{path}: the checkpoint's config names no architecture")
    # Shapes are compared with the network as planned on the meta device, before any of it is allocated.
    with torch.device("meta"):
        planned = create_generator(name, **config)
    result = _fit_report(planned, state_dict)
    if result:
        # Only a forced --arch can be wrong in a way another --arch fixes; a detected layout that does not
        # fit means a damaged file or a variant of that family that is not supported.
        advice = ("check --arch or that this is the right file" if forced else
                  f"the file is damaged, or a variant of {source}'s generator that cg-export does not support")
        raise ArchitectureError(
            f"{path}: the weights do not fit {describe_architecture(planned.config)}: {result}; {advice}"
        )
    model = create_generator(name, **config)
    model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)
    return model.eval()


def _fit_report(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> str:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong)):
        if items:
            more = f" (+{len(items) - 2} more)" if len(items) > 2 else ""
            parts.append(f"{label} {', '.join(items[:2])}{more}")
    return "; ".join(parts)
