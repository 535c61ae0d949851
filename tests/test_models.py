"""Generator architectures and their registry."""

from __future__ import annotations

import pytest
import torch

from cg_export.errors import ArchitectureError
from cg_export.models import create_generator, describe_architecture, list_generators


def test_registry_lists_every_family():
    names = set(list_generators())
    assert {"resnet", "resnet_6blocks", "resnet_9blocks", "resnet_upsample", "unet_128", "unet_256"} <= names


@pytest.mark.parametrize(
    "name, kwargs, size",
    [
        ("resnet_9blocks", {"ngf": 4}, (20, 28)),
        ("resnet_6blocks", {"ngf": 4, "dropout": True}, (16, 16)),
        ("resnet_upsample", {"ngf": 4, "n_blocks": 1}, (24, 32)),
        ("unet_128", {"ngf": 4}, (128, 256)),
        ("unet_256", {"ngf": 4, "norm": "instance"}, (256, 256)),
    ],
)
def test_generators_keep_size_and_range(name, kwargs, size):
    model = create_generator(name, **kwargs)
    x = torch.rand(2, 3, *size) * 2 - 1
    with torch.inference_mode():
        y = model(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1.0
    assert size[0] % model.size_multiple == 0


def test_config_rebuilds_the_same_architecture():
    model = create_generator("resnet_6blocks", ngf=8, dropout=True)
    rebuilt = create_generator(**model.config)
    assert rebuilt.config == model.config
    assert [k for k in rebuilt.state_dict()] == [k for k in model.state_dict()]


def test_parameter_count_of_the_reference_generator():
    # Published figure for resnet_9blocks, ngf 64: about 11.378 M parameters.
    model = create_generator("resnet_9blocks")
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(11.378e6, rel=1e-3)


def test_dropout_shifts_the_second_block_conv():
    keys = create_generator("resnet", ngf=4, n_blocks=1, dropout=True).state_dict()
    assert "model.10.conv_block.6.weight" in keys and "model.10.conv_block.5.weight" not in keys


@pytest.mark.parametrize("bad", [{"name": "resnet_12"}, {"name": "resnet", "upsample": "bilinear"},
                                 {"name": "resnet", "norm": "group"}, {"name": "unet", "num_downs": 3}])
def test_bad_architecture_requests_are_typed_errors(bad):
    with pytest.raises(ArchitectureError):
        create_generator(**bad)


def test_description_names_depth_and_upsampling():
    assert describe_architecture(create_generator("resnet_9blocks").config).startswith("resnet_9blocks (ConvTranspose")
    assert "nearest" in describe_architecture(create_generator("resnet_upsample").config)
    assert describe_architecture(create_generator("unet_128").config).startswith("unet_128")
