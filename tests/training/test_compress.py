"""cg-compress and the mobile ResNet student family: MAC counts, budget choice, GAN Compression's layout, the
student through export / int8 / tiles, exact resume, and one-line refusals that write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from cg_export.backends.onnxruntime import OnnxRuntimeRunner
from cg_export.errors import CheckpointError
from cg_export.export.onnx import OnnxExportOptions, export_onnx
from cg_export.images import fit_to_size, sample_photographs
from cg_export.macs import count_cost, format_count, parse_count
from cg_export.models import create_generator, load_generator, save_generator
from cg_export.models.mobile_resnet import stage_widths
from cg_export.tiling import stylize_array
from tests.conftest import assert_same_state, make_generator
from training.compress import (
    LOSS_NAMES,
    SEARCH_NGF,
    STATE_FILE,
    choose_student,
    compress,
    feature_pairs,
    load_discriminator,
    run_dir_for,
)
from training.compress_cli import app
from training.discriminator import PatchDiscriminator
from training.errors import TrainingError

#: A teacher big enough that a 2x-smaller mobile student exists, small enough to run in milliseconds at 32 px.
TEACHER = {"ngf": 16, "n_blocks": 3}
QUICK = {"image_size": 32, "epochs": 2, "decay_epoch": 1, "seed": 3, "log_every": 2, "ratio": 4}


def quiet(**options):
    return {"progress": False, "report": lambda label, text: None, **QUICK, **options}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    return save_generator(make_generator("resnet", seed=1, **TEACHER), tmp_path_factory.mktemp("teacher") / "G_AB.pt")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Five real photographs (the ones the toolkit ships), small, as JPEG files."""
    folder = tmp_path_factory.mktemp("photos")
    for name, image in sample_photographs()[:5]:
        Image.fromarray(fit_to_size(image, 48, 56)).save(folder / f"{name}.jpg", quality=92)
    return folder


def _psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


# ------------------------------------------------------------------------------------------------ MACs


def test_macs_and_params_agree_with_pytorch_own_flop_counter():
    """ptflops counts what torch.utils.flop_counter counts (2 FLOPs per MAC), plus each convolution's bias adds."""
    for name, kwargs in (("resnet_9blocks", {}), ("mobile_resnet", {"ngf": 24, "n_blocks": 5})):
        model = create_generator(name, **kwargs)
        cost = count_cost(model, 64)
        with FlopCounterMode(display=False) as flops:
            model(torch.zeros(1, 3, 64, 64))
        bias_adds = sum(out.numel() for out in _conv_outputs(model, 64))
        assert cost.macs == flops.get_total_flops() // 2 + bias_adds
        assert cost.params == sum(p.numel() for p in model.parameters())
    # The published parameter count of CycleGAN's 9-block generator.
    assert count_cost({"name": "resnet_9blocks"}).params == 11_378_179


def _conv_outputs(model: torch.nn.Module, size: int) -> list[torch.Tensor]:
    outputs = []
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(o)) for m in model.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and m.bias is not None]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return outputs


def test_macs_scale_with_pixels_and_counts_parse():
    small, large = count_cost({"name": "mobile_resnet_tiny"}, 64), count_cost({"name": "mobile_resnet_tiny"}, 128, 256)
    assert large.macs == 8 * small.macs and large.params == small.params
    assert parse_count("5G") == 5 * 10**9 and parse_count("2.67 G") == 2_670_000_000 and parse_count("800M") == 8e8
    assert format_count(4_300_000_000) == "4.30 G"
    with pytest.raises(Exception, match="expected a positive count"):
        parse_count("lots")


# ------------------------------------------------------------------------------------------------ budget


def test_ratio_picks_the_widest_student_at_the_teachers_depth_within_the_budget():
    config = {"name": "resnet", **TEACHER}
    choice = choose_student(config, ratio=4, budget_size=64)
    assert choice.cost.macs <= choice.budget == choice.teacher_cost.macs // 4
    assert choice.ratio >= 4 and choice.config["n_blocks"] == TEACHER["n_blocks"]
    wider = SEARCH_NGF[SEARCH_NGF.index(choice.config["ngf"]) + 1]
    assert count_cost({"name": "mobile_resnet", "ngf": wider, "n_blocks": 3}, 64).macs > choice.budget
    assert choose_student(config, ratio=2, budget_size=64).cost.macs > choice.cost.macs
    # When no width fits at the teacher's depth, the student gets shallower rather than failing.
    tight = count_cost({"name": "mobile_resnet", "ngf": 4, "n_blocks": 2}, 64).macs
    assert choose_student(config, macs=tight, budget_size=64).config == {**choice.config, "ngf": 4, "n_blocks": 2}


def test_macs_and_fixed_dimensions():
    config = {"name": "resnet", **TEACHER}
    by_macs = choose_student(config, macs=count_cost({"name": "mobile_resnet", "ngf": 8, "n_blocks": 4}).macs)
    assert by_macs.cost.macs <= by_macs.budget and by_macs.rule == "--macs"
    depth_fixed = choose_student(config, ratio=3, n_blocks=2)
    assert depth_fixed.config["n_blocks"] == 2
    both = choose_student(config, ngf=8, n_blocks=2)
    assert (both.config["ngf"], both.config["n_blocks"]) == (8, 2) and both.rule == "smaller than the teacher"


@pytest.mark.parametrize(("options", "message"), [
    ({"ratio": 10**6}, "no mobile_resnet student fits"),
    ({"ngf": 128, "n_blocks": 9}, "not fewer than the teacher's"),
])
def test_budgets_that_no_student_fits(options, message):
    with pytest.raises(TrainingError, match=message):
        choose_student({"name": "resnet", **TEACHER}, **options)


# ------------------------------------------------------------------------------------------------ the family


def _gan_compression_state(channels: list[int] | None, ngf: int = 8, n_blocks: int = 9) -> dict[str, torch.Tensor]:
    """A state dict laid out as GAN Compression's (sub-)MobileResnetGenerator writes it, built from its published
    description (mobile_resnet_generator.py, sub_mobile_resnet_generator.py, mobile_modules.py), not from our model."""
    rng = torch.Generator().manual_seed(0)
    c = channels or [ngf] * 8
    stem, down, trunk = c[0], 2 * c[1], 4 * c[2]
    inner = [4 * (c[3] if len(c) == 6 else c[3 + b // 3]) for b in range(n_blocks)]
    up1, up2 = (2 * c[4], c[5]) if len(c) == 6 else (2 * c[6], c[7])
    shapes = {"model.1": (stem, 3, 7, 7), "model.4": (down, stem, 3, 3), "model.7": (trunk, down, 3, 3)}
    for b, width in enumerate(inner):
        block = f"model.{10 + b}.conv_block"
        shapes[f"{block}.1.conv.0"] = (trunk, 1, 3, 3)        # depthwise, groups = in channels
        shapes[f"{block}.1.conv.2"] = (width, trunk, 1, 1)    # pointwise
        shapes[f"{block}.6.conv.0"] = (width, 1, 3, 3)
        shapes[f"{block}.6.conv.2"] = (trunk, width, 1, 1)
    shapes[f"model.{10 + n_blocks}"] = (trunk, up1, 3, 3)      # ConvTranspose2d: (in, out, k, k)
    shapes[f"model.{13 + n_blocks}"] = (up1, up2, 3, 3)
    shapes[f"model.{17 + n_blocks}"] = (3, up2, 7, 7)
    state = {}
    for key, shape in shapes.items():
        state[f"{key}.weight"] = torch.randn(shape, generator=rng) * 0.05
        bias = shape[1] if key in (f"model.{10 + n_blocks}", f"model.{13 + n_blocks}") else shape[0]
        state[f"{key}.bias"] = torch.randn(bias, generator=rng) * 0.05
    return state


@pytest.mark.parametrize(("channels", "expected"), [
    (None, None),
    ([16, 16, 32, 16, 32, 32, 16, 16], [16, 16, 32, 16, 32, 32, 16, 16]),   # their released horse2zebra config
    ([8, 8, 16, 12, 8, 4], [8, 8, 16, 12, 8, 4]),
])
def test_gan_compression_checkpoints_load(tmp_path, channels, expected):
    state = _gan_compression_state(channels)
    torch.save(state, tmp_path / "latest_net_G.pth")
    loaded = load_generator(tmp_path / "latest_net_G.pth")
    assert loaded.source_format == "gan-compression"
    assert loaded.config["name"] == "mobile_resnet" and loaded.config["n_blocks"] == 9
    assert loaded.config["channels"] == expected
    assert "depthwise-separable" in loaded.description
    ours = loaded.model.state_dict()
    assert set(ours) == set(state) and all(torch.equal(ours[k], state[k]) for k in state)
    assert loaded.model(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_damaged_gan_compression_checkpoint_is_one_line(tmp_path):
    state = _gan_compression_state(None)
    del state["model.7.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="incomplete"):
        load_generator(tmp_path / "broken.pth")


def test_student_exports_quantizes_and_tiles_like_any_generator(tmp_path, photos):
    student = save_generator(make_generator("mobile_resnet", ngf=8, n_blocks=3), tmp_path / "student.pt")
    assert load_generator(student).config == create_generator("mobile_resnet", ngf=8, n_blocks=3).config
    fp32 = export_onnx(student, tmp_path / "student.onnx")
    assert fp32.parity.psnr_db >= 50
    int8 = export_onnx(student, tmp_path / "student_int8.onnx", OnnxExportOptions(int8=True, calib=photos))
    assert int8.precision == "int8" and int8.parity.psnr_db >= 30
    image = fit_to_size(dict(sample_photographs())["rocket"], 192, 192)
    with OnnxRuntimeRunner(fp32.path) as runner:
        assert runner.info.metadata.architecture["name"] == "mobile_resnet"
        whole = stylize_array(runner, image, 4)
        tiled = stylize_array(runner, image, 4, tile=96, overlap=16, stats_size=192)
    assert _psnr_uint8(whole, tiled) >= 35


# ------------------------------------------------------------------------------------------------ distillation


def test_distillation_learns_the_teacher_and_writes_its_run(teacher, photos, tmp_path):
    output = tmp_path / "student.pt"
    result = compress(teacher, photos, output=output, **quiet(epochs=4, decay_epoch=2, lr=2e-3))
    student = load_generator(output)
    assert student.config == result.choice.config and student.meta["trainer"] == "cg-compress"
    assert student.meta["macs"] == result.choice.cost.macs and student.meta["macs_ratio"] >= 4
    records = [json.loads(line) for line in (run_dir_for(output) / "losses.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert len(epochs) == 4 and set(LOSS_NAMES) <= set(epochs[0])
    assert epochs[-1]["recon"] < 0.85 * epochs[0]["recon"]
    assert epochs[0]["distill"] > 0 and epochs[-1]["gan"] == 0
    grid = np.asarray(Image.open(run_dir_for(output) / "samples" / "epoch_004.png"))
    assert grid.shape == (3 * 32 + 2 * 2, 3 * 32 + 2 * 2, 3)


def test_feature_pairs_follow_relative_depth():
    teacher = create_generator("resnet_9blocks", ngf=4)
    student = create_generator("mobile_resnet", ngf=4, n_blocks=3)
    pairs = feature_pairs(teacher, student)
    assert [list(teacher.model).index(t) for t, _ in pairs] == [9, 12, 15, 18]   # GAN Compression's layers
    assert [list(student.model).index(s) for _, s in pairs] == [9, 10, 11, 12]
    assert feature_pairs(create_generator("unet_128", ngf=4), student) == []


def test_discriminator_adds_an_adversarial_term(teacher, photos, tmp_path):
    torch.save(PatchDiscriminator(ndf=8).state_dict(), tmp_path / "latest_net_D_B.pth")
    assert load_discriminator(tmp_path / "latest_net_D_B.pth").model[0].out_channels == 8
    result = compress(teacher, photos, output=tmp_path / "s.pt", discriminator=tmp_path / "latest_net_D_B.pth",
                      **quiet(epochs=1, decay_epoch=1))
    assert result.losses["gan"] > 0 and result.losses["D"] > 0
    with pytest.raises(TrainingError, match="not a PatchGAN discriminator"):
        load_discriminator(teacher)


def test_interrupted_and_resumed_run_ends_bit_for_bit_like_an_uninterrupted_one(teacher, photos, tmp_path):
    whole = compress(teacher, photos, output=tmp_path / "whole.pt", **quiet(save_every=3))

    def stop_at_step_three(label: str, text: str) -> None:
        if label == "saved" and "epoch 1 step 3 " in text:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compress(teacher, photos, output=tmp_path / "cut.pt", **{**quiet(save_every=3), "report": stop_at_step_three})
    state = torch.load(run_dir_for(tmp_path / "cut.pt") / STATE_FILE, weights_only=True)
    assert (state["epoch"], state["step_in_epoch"], state["finished"]) == (0, 3, False)
    resumed = compress(teacher, photos, output=tmp_path / "cut.pt", resume=True, progress=False,
                       report=lambda label, text: None)
    assert resumed.resumed_from == (0, 3) and resumed.global_step == whole.global_step == 10
    a, b = load_generator(whole.student).model.state_dict(), load_generator(resumed.student).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # The whole state but its wall-clock training time, and the log byte for byte.
    final_a = torch.load(whole.run_dir / STATE_FILE, weights_only=True)
    final_b = torch.load(resumed.run_dir / STATE_FILE, weights_only=True)
    assert_same_state({k: v for k, v in final_a.items() if k != "elapsed_seconds"},
                      {k: v for k, v in final_b.items() if k != "elapsed_seconds"})
    assert (resumed.run_dir / "losses.jsonl").read_bytes() == (whole.run_dir / "losses.jsonl").read_bytes()
    again = compress(teacher, photos, output=tmp_path / "cut.pt", resume=True, progress=False,
                     report=lambda label, text: None)
    assert again.already_finished
    with pytest.raises(TrainingError, match="started with other options"):
        compress(teacher, photos, output=tmp_path / "cut.pt", resume=True, epochs=9, progress=False)


# ------------------------------------------------------------------------------------------------ the command


def test_cli_end_to_end_says_what_it_chose(teacher, photos, tmp_path):
    output = tmp_path / "out" / "G_AB_student.pt"
    result = CliRunner().invoke(app, [str(teacher), "--photos", str(photos), "-o", str(output), "--ratio", "4",
                                      "--epochs", "1", "--size", "32", "--seed", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "student   mobile_resnet_" in result.stdout and "fewer MACs than the teacher's" in result.stdout
    assert output.is_file() and (tmp_path / "out" / "G_AB_student_compress" / "losses.jsonl").is_file()


def _bad_inputs(tmp: Path, teacher: Path, photos: Path) -> dict[str, tuple[list[str], str]]:
    discriminator = tmp / "latest_net_D_B.pth"
    torch.save(PatchDiscriminator(ndf=8).state_dict(), discriminator)
    (tmp / "empty").mkdir()
    (tmp / "empty" / "notes.txt").write_text("no pictures here")
    out = str(tmp / "s.pt")
    return {
        "discriminator as teacher": ([str(discriminator), "--photos", str(photos), "-o", out], "PatchGAN discriminator"),
        "no images": ([str(teacher), "--photos", str(tmp / "empty"), "-o", out], "holds no images"),
        "no student fits": ([str(teacher), "--photos", str(photos), "-o", out, "--ratio", "1000000"], "no mobile_resnet student fits"),
        "student bigger": ([str(teacher), "--photos", str(photos), "-o", out, "--ngf", "128", "--n-blocks", "9"],
                           "not fewer than the teacher's"),
        "ratio and macs": ([str(teacher), "--photos", str(photos), "-o", out, "--ratio", "4", "--macs", "1G"], "not both"),
        "bad macs": ([str(teacher), "--photos", str(photos), "-o", out, "--macs", "many"], "expected a positive count"),
        "onto the teacher": ([str(teacher), "--photos", str(photos), "-o", str(teacher)], "that is an input file"),
        "resume nothing": ([str(teacher), "--photos", str(photos), "-o", out, "--resume"], "no saved compression run"),
    }


def test_bad_inputs_are_one_line_and_write_nothing(teacher, photos, tmp_path):
    cases = _bad_inputs(tmp_path, teacher, photos)
    before = _files(tmp_path) | _files(teacher.parent)
    for label, (args, message) in cases.items():
        result = CliRunner().invoke(app, [*args, "--epochs", "1", "--size", "32", "--no-progress"])
        assert result.exit_code == 1, (label, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (label, lines)
        assert _files(tmp_path) | _files(teacher.parent) == before, label


def test_a_damaged_state_or_torchrun_is_one_line(teacher, photos, tmp_path, monkeypatch):
    compress(teacher, photos, output=tmp_path / "s.pt", **quiet(epochs=1, decay_epoch=1))
    state_path = run_dir_for(tmp_path / "s.pt") / STATE_FILE
    state = torch.load(state_path, weights_only=True)
    del state["loss_sums"]
    torch.save(state, state_path)
    with pytest.raises(TrainingError, match="the compression run state lacks loss_sums; it is damaged: start a new run "
                                            "with another -o"):
        compress(teacher, photos, output=tmp_path / "s.pt", resume=True, progress=False)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(TrainingError, match="cg-compress trains in one process: start it without torchrun"):
        compress(teacher, photos, output=tmp_path / "other.pt", **quiet())
    assert not run_dir_for(tmp_path / "other.pt").exists()


def test_stage_widths_of_a_config_string():
    widths = stage_widths(0, 9, [16, 16, 32, 16, 32, 32, 16, 16])
    assert widths == {"stem": 16, "down": 32, "trunk": 128, "blocks": [64] * 3 + [128] * 6, "up": [32, 16]}


def test_a_nearest_upsampling_teacher_gets_a_nearest_upsampling_student(tmp_path):
    """No ConvTranspose in the student of a resnet_upsample teacher, so it draws no checkerboard either."""
    import torch
    from torch import nn

    from cg_export.models import create_generator, load_generator, save_generator

    teacher = create_generator("resnet_upsample", ngf=16, n_blocks=3)
    choice = choose_student(teacher.config, ratio=5.0)
    assert choice.config["upsample"] == "nearest" and "nearest Upsample" in choice.describe()
    student = create_generator(**choice.config)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in student.modules())
    assert student(torch.zeros(1, 3, 36, 44)).shape == (1, 3, 36, 44)
    reloaded = load_generator(save_generator(student, tmp_path / "student.pt")).model
    assert reloaded.config == student.config
    # GAN Compression's own layout (and its bare state dicts) stays ConvTranspose.
    assert "upsample" not in choose_student(create_generator("resnet", ngf=16, n_blocks=3).config, ratio=5.0).config
