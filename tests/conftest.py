"""Shared fixtures: tiny real generators written in every checkpoint format the toolkit reads.

The tests mirror the packages (``tests/cg_export/<subpackage>/``, ``tests/training/``, ``tests/cg_demo/``); the
helpers every folder shares (this module, ``fake_tensorrt.py``, ``trt_models.py``) and ``data/`` stay here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from cg_export.models import create_generator, save_generator
from cg_export.models.init import init_weights

#: The checkout's root (README.md, pyproject.toml), wherever a test module sits below tests/.
REPO = Path(__file__).resolve().parent.parent
#: Files the tests ship (peer checkpoint keys, TensorRT API names).
DATA = Path(__file__).resolve().parent / "data"

TINY = {"ngf": 4, "n_blocks": 2}


def make_generator(name: str, seed: int = 0, **kwargs) -> nn.Module:
    """A real generator with CycleGAN's random init (deterministic by seed)."""
    torch.manual_seed(seed)
    return init_weights(create_generator(name, **kwargs))


def with_legacy_instance_norm_stats(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict a 2018-era pytorch-CycleGAN-and-pix2pix run wrote (InstanceNorm with running stats)."""
    state = dict(model.state_dict())
    for name, module in model.named_modules():
        if isinstance(module, nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.zeros(module.num_features)
            state[f"{name}.running_var"] = torch.ones(module.num_features)
            state[f"{name}.num_batches_tracked"] = torch.tensor(100)
    return state


def assert_same_state(a, b, where: str = "state") -> None:
    """``a`` and ``b`` hold the same keys and values, tensors bit for bit (dtype included)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), f"{where} differs"
        for index, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{index}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny checkpoints: ours, pytorch-CycleGAN-and-pix2pix bare state dicts, PyTorch-GAN bare state dicts."""
    folder = tmp_path_factory.mktemp("checkpoints")
    files: dict[str, Path] = {}

    def bare(name: str, state: dict[str, torch.Tensor]) -> None:
        files[name] = folder / name
        torch.save(state, files[name])

    ours = make_generator("resnet_tiny")
    files["ours.pt"] = save_generator(ours, folder / "ours.pt", meta={"epoch": 3, "step": 42})
    bare("latest_net_G_A.pth", make_generator("resnet", **TINY).state_dict())
    bare("5_net_G_B.pth", make_generator("resnet", dropout=True, **TINY).state_dict())
    bare("legacy_net_G_A.pth", with_legacy_instance_norm_stats(make_generator("resnet", **TINY)))
    bare("dataparallel_net_G.pth", {f"module.{k}": v for k, v in make_generator("resnet", **TINY).state_dict().items()})
    bare("G_AB_7.pth", make_generator("resnet_upsample", **TINY).state_dict())
    bare("unet128_net_G.pth", make_generator("unet_128", ngf=4, norm="instance").state_dict())
    bare("unet256_net_G.pth", make_generator("unet_256", ngf=4).state_dict())
    return files


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    # The CI machine has two cores; more threads than that only adds contention.
    torch.set_num_threads(min(2, os.cpu_count() or 1))
