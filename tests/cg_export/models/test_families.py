"""Every CycleGAN-family checkpoint of the wild: detected with no flags, exported, and equal to the peer's forward.

The reference networks below are written here from the peers' published architecture descriptions (see
/work/shared/reference/checkpoints.md and each project's documentation), independently of cg_export.models, with
the peers' exact module names, so their ``state_dict()`` is the file the peer writes. Each family is exported with
no flags, and ONNX Runtime's output on photographs (in the C-channel form the model takes) is compared with the
reference module's forward at a square and a non-square size.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cg_export.backends.onnxruntime import OnnxRuntimeRunner
from cg_export.errors import ArchitectureError, CgExportError, CheckpointError
from cg_export.export.onnx import OnnxExportOptions, export_onnx
from cg_export.images import fit_to_size, model_input_kind, sample_photographs, to_model_input
from cg_export.models import load_generator
from cg_export.models.checkpoint import SOURCE_CUT, SOURCE_JUNYANZ, SOURCE_PYTORCH_GAN, SOURCE_UGATIT
from cg_export.parity import photograph_batches

SIZES = [(64, 64), (64, 96)]
TOLERANCE = 1e-3


# ---------------------------------------------------------------------------------------------------------------
# Reference networks, after the peers' descriptions.
# ---------------------------------------------------------------------------------------------------------------

def junyanz_norm(kind: str):
    """pytorch-CycleGAN-and-pix2pix's ``get_norm_layer``: a partial for batch/instance, a function for none."""
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)

    def no_norm(channels: int) -> nn.Module:
        return nn.Identity()

    return no_norm


def junyanz_uses_bias(norm_layer) -> bool:
    # The peer's rule: bias only where the norm is InstanceNorm (a plain function for 'none' is not).
    if isinstance(norm_layer, functools.partial):
        return norm_layer.func == nn.InstanceNorm2d
    return norm_layer == nn.InstanceNorm2d


class RefResnetBlock(nn.Module):
    def __init__(self, dim, norm_layer, use_dropout, use_bias):
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), norm_layer(dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), norm_layer(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class RefJunyanzResnet(nn.Module):
    """pytorch-CycleGAN-and-pix2pix ``ResnetGenerator`` (reflect padding in the blocks)."""

    def __init__(self, input_nc, output_nc, ngf, norm="instance", use_dropout=False, n_blocks=2):
        super().__init__()
        norm_layer = junyanz_norm(norm)
        bias = junyanz_uses_bias(norm_layer)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias), norm_layer(ngf), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                       norm_layer(ngf * mult * 2), nn.ReLU(True)]
        layers += [RefResnetBlock(ngf * 4, norm_layer, use_dropout, bias) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1,
                                          bias=bias), norm_layer(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class RefAitorzipResidual(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(features, features, 3), nn.InstanceNorm2d(features), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(features, features, 3), nn.InstanceNorm2d(features))

    def forward(self, x):
        return x + self.conv_block(x)


class RefAitorzipGenerator(nn.Module):
    """aitorzip/PyTorch-CycleGAN ``Generator`` (64 filters fixed there; narrower here to stay fast)."""

    def __init__(self, input_nc, output_nc, n_residual_blocks=2, width=8):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, width, 7), nn.InstanceNorm2d(width), nn.ReLU(True)]
        features = width
        for _ in range(2):
            layers += [nn.Conv2d(features, features * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(features * 2),
                       nn.ReLU(True)]
            features *= 2
        layers += [RefAitorzipResidual(features) for _ in range(n_residual_blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(features, features // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(features // 2), nn.ReLU(True)]
            features //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class RefPytorchGanResidual(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(features, features, 3), nn.InstanceNorm2d(features), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(features, features, 3), nn.InstanceNorm2d(features))

    def forward(self, x):
        return x + self.block(x)


class RefPytorchGanGenerator(nn.Module):
    """PyTorch-GAN ``GeneratorResNet(input_shape, num_residual_blocks)``: ReflectionPad2d(channels) at both ends."""

    def __init__(self, input_shape, num_residual_blocks=2, width=8):
        super().__init__()
        channels = input_shape[0]
        layers = [nn.ReflectionPad2d(channels), nn.Conv2d(channels, width, 7), nn.InstanceNorm2d(width),
                  nn.ReLU(True)]
        features = width
        for _ in range(2):
            layers += [nn.Conv2d(features, features * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(features * 2),
                       nn.ReLU(True)]
            features *= 2
        layers += [RefPytorchGanResidual(features) for _ in range(num_residual_blocks)]
        for _ in range(2):
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(features, features // 2, 3, stride=1, padding=1),
                       nn.InstanceNorm2d(features // 2), nn.ReLU(True)]
            features //= 2
        layers += [nn.ReflectionPad2d(channels), nn.Conv2d(features, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class RefUnetBlock(nn.Module):
    """pix2pix ``UnetSkipConnectionBlock``."""

    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                 norm_layer=None):
        super().__init__()
        self.outermost = outermost
        bias = junyanz_uses_bias(norm_layer)
        input_nc = outer_nc if input_nc is None else input_nc
        down = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        if outermost:
            up = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            layers = [down, submodule, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, norm_layer(outer_nc)]
        else:
            up = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, norm_layer(inner_nc), submodule, nn.ReLU(True), up,
                      norm_layer(outer_nc)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class RefUnet(nn.Module):
    """pix2pix ``UnetGenerator(input_nc, output_nc, num_downs, ngf, norm_layer)``."""

    def __init__(self, input_nc, output_nc, num_downs, ngf, norm="batch"):
        super().__init__()
        norm_layer = junyanz_norm(norm)
        block = RefUnetBlock(ngf * 8, ngf * 8, innermost=True, norm_layer=norm_layer)
        for _ in range(num_downs - 5):
            block = RefUnetBlock(ngf * 8, ngf * 8, submodule=block, norm_layer=norm_layer)
        for outer, inner in ((ngf * 4, ngf * 8), (ngf * 2, ngf * 4), (ngf, ngf * 2)):
            block = RefUnetBlock(outer, inner, submodule=block, norm_layer=norm_layer)
        self.model = RefUnetBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True,
                                  norm_layer=norm_layer)

    def forward(self, x):
        return self.model(x)


def ref_binomial(size: int) -> torch.Tensor:
    rows = {3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0]}[size]
    row = torch.tensor(rows)
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class RefDownsample(nn.Module):
    """CUT's ``Downsample``: reflection pad (filter-1)/2, fixed blur filter, depthwise, stride 2."""

    def __init__(self, channels, filt_size=3):
        super().__init__()
        left, right = (filt_size - 1) // 2, -(-(filt_size - 1) // 2)
        self.pad = nn.ReflectionPad2d([left, right, left, right])
        self.register_buffer("filt", ref_binomial(filt_size)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x):
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


class RefUpsample(nn.Module):
    """CUT's ``Upsample``: replication pad 1, fixed filter x stride^2 as a depthwise transposed conv, cropped."""

    def __init__(self, channels, filt_size=4):
        super().__init__()
        self.odd = filt_size % 2 == 1
        self.pad_size = (filt_size - 1) // 2
        self.pad = nn.ReplicationPad2d([1, 1, 1, 1])
        self.register_buffer("filt", (ref_binomial(filt_size) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x):
        y = F.conv_transpose2d(self.pad(x), self.filt, stride=2, padding=1 + self.pad_size, groups=x.shape[1])
        y = y[:, :, 1:, 1:]
        return y if self.odd else y[:, :, :-1, :-1]


class RefCutResnet(nn.Module):
    """CUT / FastCUT ``ResnetGenerator`` with its ``no_antialias`` / ``no_antialias_up`` options."""

    def __init__(self, input_nc, output_nc, ngf, n_blocks=2, no_antialias=False, no_antialias_up=False):
        super().__init__()
        norm_layer = junyanz_norm("instance")
        bias = True
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias), norm_layer(ngf), nn.ReLU(True)]
        for mult in (1, 2):
            if no_antialias:
                layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                           norm_layer(ngf * mult * 2), nn.ReLU(True)]
            else:
                layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=1, padding=1, bias=bias),
                           norm_layer(ngf * mult * 2), nn.ReLU(True), RefDownsample(ngf * mult * 2)]
        layers += [RefResnetBlock(ngf * 4, norm_layer, False, bias) for _ in range(n_blocks)]
        for mult in (4, 2):
            if no_antialias_up:
                layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                              output_padding=1, bias=bias)]
            else:
                layers += [RefUpsample(ngf * mult), nn.Conv2d(ngf * mult, ngf * mult // 2, 3, padding=1, bias=bias)]
            layers += [norm_layer(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x, layers=(), encode_only=False):
        return self.model(x)


def ref_layer_instance(x, rho):
    in_mean, in_var = torch.mean(x, dim=[2, 3], keepdim=True), torch.var(x, dim=[2, 3], keepdim=True)
    ln_mean, ln_var = torch.mean(x, dim=[1, 2, 3], keepdim=True), torch.var(x, dim=[1, 2, 3], keepdim=True)
    out_in = (x - in_mean) / torch.sqrt(in_var + 1e-5)
    out_ln = (x - ln_mean) / torch.sqrt(ln_var + 1e-5)
    rho = rho.expand(x.shape[0], -1, -1, -1)
    return rho * out_in + (1 - rho) * out_ln


class RefAdaILN(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.rho = nn.Parameter(torch.full((1, features, 1, 1), 0.9))

    def forward(self, x, gamma, beta):
        return ref_layer_instance(x, self.rho) * gamma.unsqueeze(2).unsqueeze(3) + beta.unsqueeze(2).unsqueeze(3)


class RefILN(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.rho = nn.Parameter(torch.zeros(1, features, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, features, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, features, 1, 1))

    def forward(self, x):
        return ref_layer_instance(x, self.rho) * self.gamma + self.beta


class RefUgatitEncoderBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


class RefResnetAdaILNBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.pad1, self.conv1 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False)
        self.norm1, self.relu1 = RefAdaILN(dim), nn.ReLU(True)
        self.pad2, self.conv2 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False)
        self.norm2 = RefAdaILN(dim)

    def forward(self, x, gamma, beta):
        out = self.relu1(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        return self.norm2(self.conv2(self.pad2(out)), gamma, beta) + x


class RefUgatitGenerator(nn.Module):
    """U-GAT-IT ``ResnetGenerator(input_nc, output_nc, ngf, n_blocks, img_size, light)``: returns (image, cam, heat)."""

    def __init__(self, input_nc, output_nc, ngf, n_blocks, img_size, light):
        super().__init__()
        self.n_blocks, self.light = n_blocks, light
        mult = 4
        down = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=False), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for m in (1, 2):
            down += [nn.ReflectionPad2d(1), nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, bias=False),
                     nn.InstanceNorm2d(ngf * m * 2), nn.ReLU(True)]
        down += [RefUgatitEncoderBlock(ngf * mult) for _ in range(n_blocks)]
        self.gap_fc = nn.Linear(ngf * mult, 1, bias=False)
        self.gmp_fc = nn.Linear(ngf * mult, 1, bias=False)
        self.conv1x1 = nn.Conv2d(ngf * mult * 2, ngf * mult, 1, bias=True)
        self.relu = nn.ReLU(True)
        first = ngf * mult if light else img_size // mult * img_size // mult * ngf * mult
        self.FC = nn.Sequential(nn.Linear(first, ngf * mult, bias=False), nn.ReLU(True),
                                nn.Linear(ngf * mult, ngf * mult, bias=False), nn.ReLU(True))
        self.gamma = nn.Linear(ngf * mult, ngf * mult, bias=False)
        self.beta = nn.Linear(ngf * mult, ngf * mult, bias=False)
        for i in range(n_blocks):
            setattr(self, "UpBlock1_" + str(i + 1), RefResnetAdaILNBlock(ngf * mult))
        up = []
        for m in (4, 2):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                   nn.Conv2d(ngf * m, ngf * m // 2, 3, bias=False), RefILN(ngf * m // 2), nn.ReLU(True)]
        up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, bias=False), nn.Tanh()]
        self.DownBlock, self.UpBlock2 = nn.Sequential(*down), nn.Sequential(*up)

    def forward(self, x):
        x = self.DownBlock(x)
        gap = F.adaptive_avg_pool2d(x, 1)
        gap_logit = self.gap_fc(gap.view(x.shape[0], -1))
        gap = x * list(self.gap_fc.parameters())[0].unsqueeze(2).unsqueeze(3)
        gmp = F.adaptive_max_pool2d(x, 1)
        gmp_logit = self.gmp_fc(gmp.view(x.shape[0], -1))
        gmp = x * list(self.gmp_fc.parameters())[0].unsqueeze(2).unsqueeze(3)
        cam_logit = torch.cat([gap_logit, gmp_logit], 1)
        x = self.relu(self.conv1x1(torch.cat([gap, gmp], 1)))
        heatmap = torch.sum(x, dim=1, keepdim=True)
        if self.light:
            x_ = self.FC(F.adaptive_avg_pool2d(x, 1).view(x.shape[0], -1))
        else:
            x_ = self.FC(x.view(x.shape[0], -1))
        gamma, beta = self.gamma(x_), self.beta(x_)
        for i in range(self.n_blocks):
            x = getattr(self, "UpBlock1_" + str(i + 1))(x, gamma, beta)
        return self.UpBlock2(x), cam_logit, heatmap


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: each peer's network, trained-looking weights, saved as the peer saves it.
# ---------------------------------------------------------------------------------------------------------------

def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Weights and statistics away from their initial values, so every parameter shows in the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked") or name.endswith(".filt"):
                continue
            if name.endswith("running_var") or name.endswith("rho"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.8 + 0.1)
            elif name.endswith("gamma") and tensor.dim() == 4:
                tensor.copy_(1 + 0.2 * torch.randn(tensor.shape, generator=generator))
            else:
                fan = tensor[0].numel() if tensor.dim() > 1 else 1
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / max(fan, 1) ** 0.5 * 0.8)
    return model.eval()


FAMILIES = {
    # name: (file name, reference builder, expected config subset, expected source)
    "junyanz-batch": ("latest_net_G_A.pth", lambda: RefJunyanzResnet(3, 3, 4, "batch"),
                      {"name": "resnet", "norm": "batch", "dropout": False}, SOURCE_JUNYANZ),
    "junyanz-batch-dropout": ("latest_net_G.pth", lambda: RefJunyanzResnet(3, 3, 4, "batch", use_dropout=True),
                              {"name": "resnet", "norm": "batch", "dropout": True}, SOURCE_JUNYANZ),
    "junyanz-none": ("latest_net_G_B.pth", lambda: RefJunyanzResnet(3, 3, 4, "none"),
                     {"name": "resnet", "norm": "none", "dropout": False}, SOURCE_JUNYANZ),
    "junyanz-none-dropout": ("5_net_G_A.pth", lambda: RefJunyanzResnet(3, 3, 4, "none", use_dropout=True),
                             {"name": "resnet", "norm": "none", "dropout": True}, SOURCE_JUNYANZ),
    "junyanz-grey": ("grey_net_G_A.pth", lambda: RefJunyanzResnet(1, 1, 4, "instance"),
                     {"name": "resnet", "in_channels": 1, "out_channels": 1}, SOURCE_JUNYANZ),
    "junyanz-colorization": ("colorization_net_G.pth", lambda: RefUnet(1, 2, 5, 4, "batch"),
                             {"name": "unet", "in_channels": 1, "out_channels": 2, "norm": "batch"}, SOURCE_JUNYANZ),
    "aitorzip-grey": ("netG_A2B.pth", lambda: RefAitorzipGenerator(1, 1),
                      {"name": "resnet", "in_channels": 1, "norm": "instance"}, SOURCE_JUNYANZ),
    "pytorch-gan-grey": ("G_AB_9.pth", lambda: RefPytorchGanGenerator((1, 64, 64)),
                         {"name": "resnet", "upsample": "nearest", "in_channels": 1, "edge_pad": 1},
                         SOURCE_PYTORCH_GAN),
    "cut": ("latest_net_G.pth", lambda: RefCutResnet(3, 3, 4),
            {"name": "cut_resnet", "antialias": True, "antialias_up": True}, SOURCE_CUT),
    "cut-no-antialias": ("cut_noaa_net_G.pth", lambda: RefCutResnet(3, 3, 4, no_antialias=True),
                         {"name": "cut_resnet", "antialias": False, "antialias_up": True}, SOURCE_CUT),
    "cut-no-antialias-up": ("cut_noaaup_net_G.pth", lambda: RefCutResnet(3, 3, 4, no_antialias_up=True),
                            {"name": "cut_resnet", "antialias": True, "antialias_up": False}, SOURCE_CUT),
    "ugatit-light": ("selfie2anime_params_latest.pt", lambda: RefUgatitGenerator(3, 3, 4, 1, 64, light=True),
                     {"name": "ugatit", "light": True, "n_blocks": 1}, SOURCE_UGATIT),
    "ugatit": ("horse2zebra_params_0001000.pt", lambda: RefUgatitGenerator(3, 3, 4, 1, 64, light=False),
               {"name": "ugatit", "light": False, "img_size": 64}, SOURCE_UGATIT),
}


@pytest.fixture(scope="module")
def family_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("families")
    files = {}
    for seed, (family, (file, build, _, _)) in enumerate(FAMILIES.items()):
        reference = randomize(build(), seed)
        path = folder / family / file
        path.parent.mkdir()
        if family.startswith("ugatit"):
            other = randomize(build(), seed + 100)
            disc = {"model.0.weight_orig": torch.randn(4, 3, 4, 4), "fc.weight_orig": torch.randn(1, 4)}
            torch.save({"genA2B": reference.state_dict(), "genB2A": other.state_dict(), "disGA": disc,
                        "disGB": disc, "disLA": disc, "disLB": disc}, path)
            files[family] = (path, reference, other)
        else:
            torch.save(reference.state_dict(), path)
            files[family] = (path, reference, None)
    return files


@pytest.fixture(scope="module")
def exported(family_files, tmp_path_factory):
    """Each family exported once with no flags (tracing dominates the cost), on first use."""
    folder = tmp_path_factory.mktemp("exported")
    cache = {}

    def export(family: str):
        if family not in cache:
            cache[family] = export_onnx(family_files[family][0], folder / f"{family}.onnx")
        return cache[family]

    return export


def reference_forward(reference: nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        out = reference(torch.from_numpy(batch))
    return (out[0] if isinstance(out, tuple) else out).numpy()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_is_detected_without_flags(family_files, family):
    path, reference, _ = family_files[family]
    _, _, expected, source = FAMILIES[family]
    loaded = load_generator(path)
    assert loaded.source_format == source
    assert expected.items() <= loaded.config.items()
    assert loaded.model.state_dict().keys() == reference.state_dict().keys()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_exports_with_no_flags_and_matches_its_reference(family_files, exported, family):
    _, reference, _ = family_files[family]
    result = exported(family)
    assert result.parity is not None and result.parity.max_abs_err <= TOLERANCE
    kind = model_input_kind(result.generator.config)
    fixed = getattr(result.generator.model, "fixed_size", None)
    sizes = [fixed] if fixed else SIZES  # U-GAT-IT's full model only runs at its training size
    with OnnxRuntimeRunner(result.path) as runner:
        for label, batch in photograph_batches(sizes, 2, input_kind=kind):
            expected = reference_forward(reference, batch)
            got = runner(batch)
            assert got.shape == expected.shape, label
            assert np.abs(got - expected).max() <= TOLERANCE, label


def test_pytorch_gan_grey_scale_output_is_8_pixels_smaller_like_the_peer(family_files, exported):
    _, reference, _ = family_files["pytorch-gan-grey"]
    result = exported("pytorch-gan-grey")
    with OnnxRuntimeRunner(result.path) as runner:
        assert runner(np.zeros((1, 1, 256, 256), np.float32)).shape == (1, 1, 248, 248)
    assert reference(torch.zeros(1, 1, 256, 256)).shape == (1, 1, 248, 248)
    output = onnx.load(str(result.path)).graph.output[0]
    dims = [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "height - 8", "width - 8"]


def test_cut_sampling_exports_as_plain_convolutions(exported):
    model = onnx.load(str(exported("cut").path))
    ops = {node.op_type for node in model.graph.node}
    assert ops == {"Pad", "Conv", "ConvTranspose", "InstanceNormalization", "Relu", "Add", "Tanh"}
    constants = {init.name for init in model.graph.initializer}
    grouped = [n for n in model.graph.node if any(a.name == "group" and a.i > 1 for a in n.attribute)]
    assert len(grouped) == 4 and all(n.input[1] in constants for n in grouped)
    assert model.opset_import[0].version == 17


def test_ugatit_exports_at_opset_17_with_plain_ops(exported):
    model = onnx.load(str(exported("ugatit-light").path))
    assert model.opset_import[0].version == 17
    onnx.checker.check_model(model, full_check=True)
    reduces = [n for n in model.graph.node if n.op_type == "ReduceMean"]
    assert reduces and all(len(n.input) == 1 and any(a.name == "axes" for a in n.attribute) for n in reduces)


def test_ugatit_direction_picks_the_other_generator(family_files):
    path, reference, other = family_files["ugatit-light"]
    batch = photograph_batches([(64, 64)], 1)[0][1]
    a2b, b2a = load_generator(path), load_generator(path, direction="B2A")
    with torch.inference_mode():
        got_a = a2b.model(torch.from_numpy(batch)).numpy()
        got_b = b2a.model(torch.from_numpy(batch)).numpy()
    assert np.abs(got_a - reference_forward(reference, batch)).max() <= TOLERANCE
    assert np.abs(got_b - reference_forward(other, batch)).max() <= TOLERANCE
    assert any("genA2B" in note for note in a2b.notes)


def test_ugatit_full_model_refuses_another_static_size(family_files, tmp_path):
    path, _, _ = family_files["ugatit"]
    with pytest.raises(CgExportError, match="only runs at 64x64"):
        export_onnx(path, tmp_path / "g.onnx", OnnxExportOptions(static_size=(128, 128)))
    assert not (tmp_path / "g.onnx").exists()


def test_direction_on_a_one_generator_file_is_refused(family_files):
    path, _, _ = family_files["cut"]
    with pytest.raises(CheckpointError, match="holds one generator"):
        load_generator(path, direction="B2A")
    with pytest.raises(CheckpointError, match="choose one of A2B, B2A"):
        load_generator(family_files["ugatit"][0], direction="BA")


def test_one_channel_inputs_are_what_the_peers_feed():
    (_, photo), = sample_photographs(1)
    image = fit_to_size(photo, 32, 48)
    grey = to_model_input([image], "grey")
    luma = np.asarray(Image.fromarray(image).convert("L"), np.float32)  # torchvision Grayscale on a PIL image
    assert grey.shape == (1, 1, 32, 48) and np.allclose(grey[0, 0], luma / 127.5 - 1)
    lab = to_model_input([image], "lab-l")
    from skimage.color import rgb2lab

    assert lab.shape == (1, 1, 32, 48) and np.allclose(lab[0, 0], rgb2lab(image)[..., 0] / 50 - 1, atol=1e-6)
    assert model_input_kind({"in_channels": 1, "out_channels": 2}) == "lab-l"
    assert model_input_kind({"in_channels": 1, "out_channels": 1}) == "grey"


def test_uint8_io_is_refused_for_models_that_do_not_take_rgb(family_files, tmp_path):
    with pytest.raises(CgExportError, match="does not take RGB"):
        export_onnx(family_files["junyanz-grey"][0], tmp_path / "g.onnx", OnnxExportOptions(uint8_io=True))


def _saved(tmp_path, name, state):
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_incomplete_gan_compression_generator_is_named_as_damaged(tmp_path):
    # GAN Compression's mobile generators load (tests/training/test_compress.py); a fragment of one is called damaged.
    state = {"model.1.weight": torch.zeros(4, 3, 7, 7), "model.10.conv_block.1.conv.0.weight": torch.zeros(16, 1, 3, 3),
             "model.10.conv_block.1.conv.2.weight": torch.zeros(16, 16, 1, 1)}
    with pytest.raises(CheckpointError, match="mobile ResNet generator keys are incomplete.*damaged") as info:
        load_generator(_saved(tmp_path, "latest_net_G.pth", state))
    assert "--arch" not in str(info.value)


def test_cut_feature_mlp_points_to_the_generator(tmp_path):
    state = {"mlp_0.0.weight": torch.zeros(256, 3), "mlp_0.2.weight": torch.zeros(256, 256)}
    with pytest.raises(CheckpointError, match="PatchSampleF.*latest_net_G.pth"):
        load_generator(_saved(tmp_path, "latest_net_F.pth", state))


def test_detected_family_that_does_not_fit_says_so_without_arch_advice(family_files, tmp_path):
    state = torch.load(family_files["cut"][0], weights_only=True)
    state["model.8.weight"] = state["model.8.weight"][:, :2]
    with pytest.raises(ArchitectureError, match="damaged, or a variant of contrastive-unpaired") as info:
        load_generator(_saved(tmp_path, "latest_net_G.pth", state))
    assert "--arch" not in str(info.value)


@pytest.mark.parametrize("family", ["junyanz-grey", "pytorch-gan-grey", "junyanz-colorization", "ugatit"])
def test_one_channel_and_fixed_size_models_stylize_photographs_to_rgb_of_the_same_size(family_files, family):
    from cg_export.backends import runner_for
    from cg_export.stylize import StylizeOptions, Stylizer

    (_, photo), = sample_photographs(1)
    image = fit_to_size(photo, 60, 90)  # not a multiple of 4: padding and cropping are exercised too
    with runner_for(family_files[family][0]) as runner:
        styled = Stylizer(runner, StylizeOptions()).image(image)
    assert styled.shape == image.shape and styled.dtype == np.uint8


def test_grey_scale_stylize_is_the_peer_on_luminance(family_files):
    from cg_export.backends import runner_for
    from cg_export.images import to_uint8
    from cg_export.stylize import StylizeOptions, Stylizer

    path, reference, _ = family_files["junyanz-grey"]
    (_, photo), = sample_photographs(1)
    image = fit_to_size(photo, 64, 96)
    with runner_for(path) as runner:
        styled = Stylizer(runner, StylizeOptions(tile=0)).image(image)
    expected = to_uint8(reference_forward(reference, to_model_input([image], "grey")))[0]
    assert np.abs(styled.astype(int) - np.repeat(expected, 3, axis=2).astype(int)).max() <= 1


def test_pytorch_gan_grey_scale_stylize_refuses_tiles(family_files):
    from cg_export.backends import runner_for
    from cg_export.stylize import StylizeOptions, Stylizer

    with runner_for(family_files["pytorch-gan-grey"][0]) as runner:
        with pytest.raises(CgExportError, match="whole images only"):
            Stylizer(runner, StylizeOptions(tile=64))


def test_cli_direction_on_a_one_generator_file_is_a_one_line_error(family_files):
    from typer.testing import CliRunner

    from cg_export.cli.export import app

    result = CliRunner().invoke(app, ["onnx", str(family_files["cut"][0]), "--direction", "B2A"])
    assert result.exit_code != 0
    assert "error:" in result.output and "holds one generator" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("family", ["cut", "ugatit-light", "ugatit", "pytorch-gan-grey"])
def test_new_families_pass_the_tensorrt_preflight_of_every_release(exported, family):
    """The parser matrices of TensorRT 8.5 (JetPack 5) to 10.x take these graphs (the GPU build itself runs where
    TensorRT is installed)."""
    from cg_export.tensorrt.check import check_model

    model = onnx.load(str(exported(family).path))
    for version in [(8, 5), (8, 6), (10, 3)]:
        report = check_model(model, version)
        assert report.ok, (family, version, [f.message for f in report.findings if f.severity == "error"])


def test_forced_arch_works_on_the_new_families_and_batch_norm_files(family_files):
    assert load_generator(family_files["ugatit-light"][0], arch="ugatit_light").source_format == SOURCE_UGATIT
    assert load_generator(family_files["cut"][0], arch="cut_resnet").config["n_blocks"] == 2
    forced = load_generator(family_files["junyanz-batch"][0], arch="resnet")
    assert (forced.config["norm"], forced.config["dropout"]) == ("batch", False)
