"""Generator architectures and their registry."""

from __future__ import annotations

import pytest
import torch

from cg_export.errors import ArchitectureError
from cg_export.models import create_generator, describe_architecture, list_generators


def test_registry_lists_every_family():
    names = set(list_generators())
    assert {"resnet", "resnet_6blocks", "resnet_9blocks", "resnet_upsample", "unet_128", "unet_256", "cut_resnet",
            "ugatit", "ugatit_light"} <= names


@pytest.mark.parametrize(
    "name, kwargs, size",
    [
        ("resnet_9blocks", {"ngf": 4}, (20, 28)),
        ("resnet_6blocks", {"ngf": 4, "dropout": True}, (16, 16)),
        ("resnet_upsample", {"ngf": 4, "n_blocks": 1}, (24, 32)),
        ("unet_128", {"ngf": 4}, (128, 256)),
        ("unet_256", {"ngf": 4, "norm": "instance"}, (256, 256)),
        ("resnet", {"ngf": 4, "n_blocks": 1, "norm": "none"}, (16, 24)),
        ("resnet", {"ngf": 4, "n_blocks": 1, "norm": "batch", "in_channels": 1, "out_channels": 1}, (16, 24)),
        ("cut_resnet", {"ngf": 4, "n_blocks": 1}, (20, 28)),
        ("cut_resnet", {"ngf": 4, "n_blocks": 1, "antialias": False}, (16, 16)),
        ("ugatit_light", {"ngf": 4, "n_blocks": 1}, (16, 24)),
        ("ugatit", {"ngf": 4, "n_blocks": 1, "img_size": 32}, (32, 32)),
    ],
)
def test_generators_keep_size_and_range(name, kwargs, size):
    model = create_generator(name, **kwargs)
    x = torch.rand(2, kwargs.get("in_channels", 3), *size) * 2 - 1
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


def test_grey_scale_edge_padding_shrinks_the_output_like_pytorch_gan():
    model = create_generator("resnet_upsample", ngf=4, n_blocks=1, in_channels=1, out_channels=1, edge_pad=1)
    with torch.inference_mode():
        assert model(torch.zeros(1, 1, 256, 256)).shape == (1, 1, 248, 248)
    assert model.config["edge_pad"] == 1
    assert "edge_pad" not in create_generator("resnet_upsample").config  # older configs stay as they were


def test_norm_none_has_no_norm_keys_and_no_conv_bias():
    keys = create_generator("resnet", ngf=4, n_blocks=1, norm="none").state_dict()
    assert "model.2.weight" not in keys and "model.1.bias" not in keys
    assert "model.1.weight" in keys and "model.18.bias" in keys  # the last conv keeps its bias, as upstream


def test_cut_blur_filters_are_the_binomial_ones():
    from cg_export.models.cut import binomial_filter

    assert torch.allclose(binomial_filter(3), torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16.0)
    assert torch.allclose(binomial_filter(4)[0], torch.tensor([1, 3, 3, 1]) / 64.0)


def test_cut_blur_upsampling_is_bilinear_upsampling():
    """CUT's [1, 3, 3, 1] transposed filter with replicated edges is exactly 2x bilinear (half-pixel) upsampling."""
    from cg_export.models.cut import BlurUpsample

    x = torch.randn(1, 2, 5, 7)
    expected = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(BlurUpsample(2)(x), expected, atol=1e-6)


def test_descriptions_name_the_new_families():
    assert describe_architecture(create_generator("cut_resnet").config).startswith(
        "CUT resnet_9blocks (anti-aliased down and upsampling")
    assert "256px only" in describe_architecture(create_generator("ugatit").config)
    assert "8 px smaller" in describe_architecture(create_generator("resnet_upsample", in_channels=1, edge_pad=1).config)
