"""cg-train on tiny real models and generated images: it learns, it resumes exactly after SIGKILL, it refuses bad data.

The learning task: domain A holds bright red blob patterns (faintly green) on a blue-free background; domain B holds
*other* such images with red and blue swapped. Nothing is paired, so G_AB must discover the swap from the two
distributions. The tiny generator (ngf 8, 2 blocks, 32 px) learns it in a few hundred steps.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cg_export.export.onnx import export_onnx
from cg_export.images import to_model_input
from cg_export.models import load_generator
from tests.conftest import assert_same_state
from training.cli import app
from training.cyclegan import CycleGAN, LinearDecay
from training.data import UnpairedImages, find_domains
from training.discriminator import PatchDiscriminator, receptive_field
from training.errors import DatasetError, TrainingError
from training.options import TrainOptions
from training.replay_buffer import ReplayBuffer
from training.trainer import STATE_FILE, train

TINY = {"image_size": 32, "ngf": 8, "n_blocks": 2, "ndf": 8}
CG_TRAIN = [sys.executable, "-m", "training.cli"]


# ------------------------------------------------------------------------------------------------ generated data


def red_blobs(rng: np.random.Generator, size: int = 40) -> np.ndarray:
    """A domain-A image: smooth blobs, bright in red and faint in green, blue flat and dark (uint8 HxWx3)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    field = np.zeros((size, size))
    for _ in range(4):
        cy, cx = rng.uniform(0, 1, 2)
        radius = rng.uniform(0.1, 0.25)
        field += rng.choice([-1, 1]) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
    # A fixed mean and spread per channel: InstanceNorm discards both, so the generator could not recover them.
    z = (field - field.mean()) / (field.std() + 1e-6)
    image = np.stack([0.55 + 0.2 * z, 0.45 + 0.08 * z, np.full_like(z, 0.15)], axis=-1)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def swap_red_blue(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[..., ::-1])


def make_dataset(root: Path, count: int, layout: str = "trainA", seed: int = 0) -> Path:
    """``count`` A images and ``count`` unrelated B (= swapped A-like) images, as PNG, in either layout."""
    rng = np.random.default_rng(seed)
    a, b = (root / "trainA", root / "trainB") if layout == "trainA" else (root / "train" / "A", root / "train" / "B")
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    for index in range(count):
        Image.fromarray(red_blobs(rng)).save(a / f"{index:03d}.png")
        Image.fromarray(swap_red_blue(red_blobs(rng))).save(b / f"{index:03d}.png")
    return root


def quiet(**options):
    """Library options for a silent tiny run."""
    return {"progress": False, "report": lambda label, text: None, **TINY, **options}


@pytest.fixture(autouse=True)
def _one_thread():
    # The tiny networks gain nothing from a second thread, and lose a lot when another process holds a core.
    torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------ learning


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """10 epochs x 16 steps of the tiny CycleGAN on the red/blue swap task (about 15 s on one core)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("swap")
    data = make_dataset(root / "data", 16)
    lines: list[tuple[str, str]] = []
    result = train(data, "swap", out=root / "runs", **{**quiet(), "report": lambda *line: lines.append(line)},
                   epochs=10, decay_epoch=5, lr=1e-3, seed=0)
    return result, lines


def test_learns_the_channel_swap(trained):
    result, _ = trained
    generator = load_generator(result.generator_AB).model
    rng = np.random.default_rng(123)  # images the run never saw
    a = torch.from_numpy(to_model_input([red_blobs(rng, 32) for _ in range(16)]))
    target = a.flip(1)  # RGB -> BGR: the swap
    with torch.no_grad():
        translated = generator(a)
    untouched = (a - target).abs().mean().item()
    learned = (translated - target).abs().mean().item()
    # What matching only the colour statistics (per-channel means) would score: well above what is required.
    recoloured = a - a.mean((0, 2, 3), keepdim=True) + target.mean((0, 2, 3), keepdim=True)
    colour_only = (recoloured - target).abs().mean().item()
    print(f"\nmean |G_AB(a) - swap(a)| = {learned:.4f}; |a - swap(a)| = {untouched:.4f} "
          f"(ratio {learned / untouched:.3f}); colour statistics only: {colour_only / untouched:.3f}")
    assert learned < 0.2 * untouched
    assert learned < 0.5 * colour_only


def test_run_folder_holds_generators_samples_and_log(trained):
    result, lines = trained
    run = result.run_dir
    loaded = load_generator(run / "G_AB.pt")
    assert loaded.source_format == "cg-export"
    assert loaded.config == {"name": "resnet", "in_channels": 3, "out_channels": 3, "ngf": 8, "n_blocks": 2,
                             "dropout": False, "norm": "instance", "upsample": "transpose"}
    meta = loaded.meta
    assert (meta["epoch"], meta["step"], meta["direction"]) == (10, 160, "A->B")
    assert meta["options"]["lambda_id"] == 5.0 and meta["options"]["seed"] == 0
    assert meta["dataset"]["images"] == {"A": 16, "B": 16} and meta["dataset"]["layout"] == "trainA/trainB"
    assert set(meta["losses"]) == {"G", "G_adv", "cycle", "identity", "D_A", "D_B"}
    assert load_generator(run / "G_BA.pt").meta["direction"] == "B->A"

    samples = sorted((run / "samples").glob("*.png"))
    assert [p.name for p in samples] == [f"epoch_{e:03d}.png" for e in range(1, 11)]
    with Image.open(samples[-1]) as grid:
        # 3 columns (real, translated, back) x 6 rows (3 A images, 3 B images), 32 px with 2 px gaps.
        assert grid.size == (3 * 32 + 2 * 2, 6 * 32 + 5 * 2) and grid.mode == "RGB"

    records = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    assert {key for r in records for key in r} == {"kind", "epoch", "step", "lr", *meta["losses"]}  # no wall-clock
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == list(range(1, 11))
    # Linear decay from epoch 5 (0-based) to zero at 10: 1e-3 x (1, ..., 1, 1, 0.8, 0.6, 0.4, 0.2).
    assert [r["lr"] for r in epochs] == pytest.approx([1e-3] * 6 + [8e-4, 6e-4, 4e-4, 2e-4])
    assert epochs[-1]["cycle"] < epochs[0]["cycle"]
    assert ("saved", f"end of epoch 10 (global step 160) in {run}") in lines

    state = torch.load(run / STATE_FILE, weights_only=True)
    assert state["finished"] and state["epoch"] == 10


def test_trained_generator_exports_to_onnx(trained, tmp_path):
    result, _ = trained
    exported = export_onnx(result.generator_AB, tmp_path / "G_AB.onnx")
    assert exported.path.is_file() and exported.parity is not None
    assert min(case.psnr_db for case in exported.parity.cases) >= 50


def test_resuming_a_finished_run_does_nothing(trained):
    result, _ = trained
    state = result.run_dir / STATE_FILE
    before = state.stat().st_mtime_ns
    lines: list[tuple[str, str]] = []
    again = train(Path("ignored"), "swap", out=result.run_dir.parent, resume=True,
                  **{**quiet(), "report": lambda *line: lines.append(line)})
    assert again.already_finished and again.epochs_done == 10 and again.global_step == 160
    assert lines == [("finished", f"{result.run_dir} already completed 10 of 10 epochs; nothing to do")]
    assert state.stat().st_mtime_ns == before


def test_a_run_is_never_overwritten_and_resumes_only_with_its_options(trained):
    result, _ = trained
    data, out = result.run_dir.parent.parent / "data", str(result.run_dir.parent)
    runner = CliRunner()
    fresh = runner.invoke(app, [str(data), "--name", "swap", "-o", out, "--epochs", "1"])
    assert fresh.exit_code == 1 and "already holds a run; pass --resume" in fresh.stderr
    changed = runner.invoke(app, [str(data), "--name", "swap", "-o", out, "--resume", "--ngf", "16"])
    assert changed.exit_code == 1 and "--ngf 16 (saved: 8)" in changed.stderr
    assert "Traceback" not in fresh.output + changed.output


# ------------------------------------------------------------------------------------------------ exact resume


def kill_at_save(command: list[str], where: str, env: dict[str, str]) -> None:
    """Run ``command`` and SIGKILL it as soon as it reports the save at ``where`` ("epoch E step S")."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        for line in process.stdout:
            if line.startswith("saved") and f"{where} " in line:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def test_resume_after_two_sigkills_ends_with_identical_weights_log_and_state(tmp_path):
    data = make_dataset(tmp_path / "data", 8)
    # --threads 1: how a multi-threaded reduction is split decides its rounding, so runs compared bit for bit use
    # one thread each (OMP_NUM_THREADS alone does not do it: cg-train sets its own thread count).
    args = [str(data), "-o", str(tmp_path / "runs"), "--epochs", "2", "--decay-epoch", "1", "--seed", "7",
            "--pool-size", "4", "--size", "32", "--ngf", "8", "--n-blocks", "2", "--ndf", "8",
            "--log-every", "2", "--save-every", "3", "--threads", "1", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

    whole = subprocess.run([*CG_TRAIN, *args, "--name", "whole"], capture_output=True, text=True, env=env,
                           timeout=300, check=False)
    assert whole.returncode == 0, whole.stderr

    run = tmp_path / "runs" / "killed"
    kill_at_save([*CG_TRAIN, *args, "--name", "killed"], "epoch 1 step 3", env)
    first = torch.load(run / STATE_FILE, weights_only=True)
    assert not first["finished"] and first["epoch"] == 0 and 0 < first["step_in_epoch"] < 8
    # The second session crosses the end of epoch 1 (its log line, samples and save) before it is killed.
    kill_at_save([*CG_TRAIN, *args, "--name", "killed", "--resume"], "epoch 2 step 4", env)
    second = torch.load(run / STATE_FILE, weights_only=True)
    assert not second["finished"] and second["epoch"] == 1 and 0 < second["step_in_epoch"] < 8

    resumed = subprocess.run([*CG_TRAIN, *args, "--name", "killed", "--resume"], capture_output=True, text=True,
                             env=env, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed   from epoch 2 step {second['step_in_epoch']}" in resumed.stdout

    reference = torch.load(tmp_path / "runs" / "whole" / STATE_FILE, weights_only=True)
    final = torch.load(run / STATE_FILE, weights_only=True)
    # Everything but the training time (wall-clock, the one field that differs by nature): weights, optimisers,
    # replay buffers, random states, loss sums and the log's length.
    assert final["elapsed_seconds"] > 0
    assert_same_state({k: v for k, v in reference.items() if k != "elapsed_seconds"},
                      {k: v for k, v in final.items() if k != "elapsed_seconds"})
    for name in ("G_AB.pt", "G_BA.pt"):
        a = load_generator(tmp_path / "runs" / "whole" / name)
        b = load_generator(run / name)
        assert all(torch.equal(a.model.state_dict()[k], b.model.state_dict()[k]) for k in a.model.state_dict())
        assert a.meta == b.meta
    # The lines logged between each save and its kill were dropped on resume and written again, once: the log is
    # byte for byte the uninterrupted run's.
    assert (run / "losses.jsonl").read_bytes() == (tmp_path / "runs" / "whole" / "losses.jsonl").read_bytes()


def test_resuming_with_another_thread_count_says_it_will_not_be_bit_exact(tmp_path):
    data = make_dataset(tmp_path / "data", 4)

    def stop_at_first_save(label: str, text: str) -> None:
        if label == "saved":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(data, "r", out=tmp_path / "runs", **{**quiet(), "report": stop_at_first_save}, epochs=1, decay_epoch=1,
              seed=0, save_every=2)
    assert torch.load(tmp_path / "runs" / "r" / STATE_FILE, weights_only=True)["threads"] == 1
    torch.set_num_threads(2)
    lines: list[tuple[str, str]] = []
    result = train(data, "r", out=tmp_path / "runs", resume=True, **{**quiet(), "report": lambda *line: lines.append(line)})
    assert result.resumed_from == (0, 2) and result.global_step == 4
    assert ("note", "this run was trained with 1 CPU thread(s) and this session has 2: it continues correctly, but not "
                    "bit for bit as it would have (pass --threads 1 for that)") in lines


# ------------------------------------------------------------------------------------------------ data


def test_both_layouts_and_every_image_mode(tmp_path):
    first = make_dataset(tmp_path / "junyanz", 3, layout="trainA")
    second = make_dataset(tmp_path / "pytorch_gan", 3, layout="train")
    assert find_domains(first).layout == "trainA/trainB"
    assert find_domains(second).layout == "train/A, train/B"
    rng = np.random.default_rng(1)
    nested = second / "train" / "B" / "more"
    nested.mkdir()
    rgb = red_blobs(rng, 48)
    Image.fromarray(rgb).convert("L").save(nested / "grey.png")
    Image.fromarray(rgb).convert("RGBA").save(nested / "alpha.png")
    Image.fromarray(rgb).convert("P").save(nested / "palette.gif")
    Image.fromarray(rgb[:30]).save(nested / "wide.jpg")  # not square, smaller than the crop's 1.12x
    (nested / "notes.txt").write_text("not an image, and not even named like one")

    data = UnpairedImages(second, image_size=32, seed=0)
    assert len(data.domains["B"].files) == 7 and data.length == 7 and not data.domains["B"].skipped
    for step in range(data.steps_per_epoch(2)):
        batch = data.batch(epoch=0, step=step, batch_size=2)
        assert batch["A"].shape[1:] == (3, 32, 32) and batch["B"].dtype == torch.float32
        assert -1 <= batch["B"].min() and batch["B"].max() <= 1 and not batch["failed"]
    assert batch["A"].shape[0] == 1  # 7 = 2 + 2 + 2 + 1


def test_data_order_is_reproducible_and_covers_each_domain(tmp_path):
    data = UnpairedImages(make_dataset(tmp_path / "d", 5), image_size=32, seed=3)
    assert sorted(data.epoch_order(0, "A")) == list(range(5))
    assert not np.array_equal(data.epoch_order(0, "A"), data.epoch_order(1, "A"))
    again = UnpairedImages(tmp_path / "d", image_size=32, seed=3)
    assert torch.equal(data.batch(2, 3, 1)["A"], again.batch(2, 3, 1)["A"])
    assert not torch.equal(data.batch(2, 3, 1)["A"], UnpairedImages(tmp_path / "d", 32, seed=4).batch(2, 3, 1)["A"])


def test_a_few_bad_files_are_skipped_and_reported(tmp_path):
    data = make_dataset(tmp_path / "data", 4)
    (data / "trainA" / "notes.jpg").write_text("this is text")
    png = io.BytesIO()
    Image.fromarray(red_blobs(np.random.default_rng(0))).save(png, "PNG")
    (data / "trainA" / "cut.png").write_bytes(png.getvalue()[:200])
    jpeg = io.BytesIO()
    Image.fromarray(red_blobs(np.random.default_rng(1))).save(jpeg, "JPEG")
    # A truncated JPEG passes Pillow's structural check; it only fails when decoded, in the middle of training.
    (data / "trainB" / "000_cut.jpg").write_bytes(jpeg.getvalue()[:-100])

    lines: list[tuple[str, str]] = []
    result = train(data, "bad", out=tmp_path / "runs", **{**quiet(), "report": lambda *line: lines.append(line)},
                   epochs=1, decay_epoch=1, seed=0, workers=1)
    skipped = [text for label, text in lines if label == "skipped"]
    assert len(skipped) == 2
    assert skipped[0].startswith(f"2 unreadable file(s) in {data / 'trainA'}: cut.png (")
    assert "notes.jpg (cannot identify image file" in skipped[0]
    assert skipped[1].startswith(f"{data / 'trainB' / '000_cut.jpg'}: not a readable image (image file is truncated")
    assert result.global_step == 5  # max(4 A images, 5 B files) steps: the broken JPEG's turn went to another image


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda root: root / "nothing", "no such folder"),
        (lambda root: root, "found neither trainA/, trainB/ nor train/A/, train/B/"),
        (lambda root: (root / "trainA").mkdir() or root, "has trainA/ but no trainB/"),
        (lambda root: make_dataset(root, 2) and [p.unlink() for p in (root / "trainB").iterdir()] and root,
         "trainB: holds no images"),
        (lambda root: make_dataset(root, 2) and [p.write_bytes(b"GIF89a broken") for p in (root / "trainA").iterdir()]
         and root, "trainA: none of its 2 image file(s) can be read"),
    ],
    ids=["missing", "no-domains", "one-domain", "empty-domain", "all-unreadable"],
)
def test_bad_data_roots_fail_in_one_line(tmp_path, setup, expected):
    (tmp_path / "data").mkdir()
    root = setup(tmp_path / "data")
    result = CliRunner().invoke(app, [str(root), "--name", "run", "-o", str(tmp_path / "runs")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and expected in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"decay_epoch": 300}, "decay_epoch 300: must lie between 0 and epochs 200"),
        ({"epochs": 50, "decay_epoch": 60}, "decay_epoch 60: must lie between 0 and epochs 50"),
        ({"image_size": 16}, "image_size 16: too small"),
        ({"lr": 0.0}, "lr 0.0: must be positive"),
        ({"batch_size": 0}, "batch_size 0: must be a positive whole number"),
        ({"d_layers": 0}, "d_layers 0: must be a positive whole number"),
        ({"d_layers": 6}, "d_layers 6: at most 5"),
        ({"d_layers": 2, "image_size": 12}, r"the 34x34 PatchGAN \(d_layers 2\) needs 16 or more"),
    ],
)
def test_invalid_options_are_refused(options, expected):
    with pytest.raises(TrainingError, match=expected):
        TrainOptions.from_overrides(**options)


def test_image_size_must_fit_the_generator(tmp_path):
    data = make_dataset(tmp_path / "d", 1)
    with pytest.raises(TrainingError, match="multiple of 256"):
        train(data, "unet", out=tmp_path / "runs", **quiet(arch="unet_256", ngf=4, n_blocks=None), seed=0)
    with pytest.raises(DatasetError):
        train(tmp_path / "missing", "x", out=tmp_path / "runs", **quiet())


# ------------------------------------------------------------------------------------------------ parts


def test_patch_discriminator_is_the_70x70_patchgan():
    disc = PatchDiscriminator()
    assert sum(p.numel() for p in disc.parameters()) == 2_764_737  # pytorch-CycleGAN-and-pix2pix's basic D
    assert [k for k in disc.state_dict() if k.endswith("weight")] == [f"model.{i}.weight" for i in (0, 2, 5, 8, 11)]
    assert disc(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_fewer_discriminator_layers_judge_smaller_patches_and_train():
    """``--d-layers`` is pix2pix's ``--n_layers_D``: each layer fewer halves the patch each output value judges."""
    assert [receptive_field(n) for n in (1, 2, 3, 4, 5)] == [16, 34, 70, 142, 286]
    assert PatchDiscriminator(ndf=4, n_layers=2)(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 14, 14)
    options = TrainOptions.from_overrides(arch="resnet_upsample", ngf=4, n_blocks=1, ndf=4, image_size=16, d_layers=2,
                                          seed=0)
    torch.manual_seed(0)
    model = CycleGAN(options, torch.device("cpu"))
    assert len([m for m in model.D_A.modules() if isinstance(m, torch.nn.Conv2d)]) == 4
    losses = model.train_step(torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1)
    assert torch.isfinite(losses).all()


def test_decay_starts_halfway_unless_set():
    assert TrainOptions.from_overrides().decay_epoch == 100
    assert TrainOptions.from_overrides(epochs=7).decay_epoch == 3
    assert TrainOptions.from_overrides(epochs=7, decay_epoch=0).decay_epoch == 0


def test_linear_decay_reaches_zero_at_the_last_epoch():
    decay = LinearDecay(epochs=200, decay_epoch=100)
    assert [decay(e) for e in (0, 99, 100, 150, 199, 200)] == pytest.approx([1, 1, 1, 0.5, 0.01, 0])
    assert LinearDecay(epochs=5, decay_epoch=5)(4) == 1


def test_replay_buffer_fills_then_swaps_half_the_time_and_round_trips():
    buffer = ReplayBuffer(size=4, seed=0)
    first = [buffer.push_and_pop(torch.full((1, 3, 2, 2), float(i))) for i in range(4)]
    assert [int(x[0, 0, 0, 0]) for x in first] == [0, 1, 2, 3] and len(buffer) == 4
    state = buffer.state_dict()
    returned = [int(buffer.push_and_pop(torch.full((1, 3, 2, 2), float(i)))[0, 0, 0, 0]) for i in range(4, 404)]
    older = sum(value < index for value, index in zip(returned, range(4, 404)))
    assert 150 < older < 250  # a stored image comes back with probability 0.5
    copy = ReplayBuffer(size=4, seed=99)
    copy.load_state_dict(state)
    again = [int(copy.push_and_pop(torch.full((1, 3, 2, 2), float(i)))[0, 0, 0, 0]) for i in range(4, 404)]
    assert again == returned


def test_upsample_generator_and_no_identity_loss_train_a_step():
    options = TrainOptions.from_overrides(arch="resnet_upsample", ngf=4, n_blocks=1, ndf=4, image_size=32,
                                          lambda_id=0, seed=0)
    torch.manual_seed(0)
    model = CycleGAN(options, torch.device("cpu"))
    before = model.G_AB.model[1].weight.clone()
    losses = model.train_step(torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1)
    assert torch.isfinite(losses).all() and losses[3] == 0  # identity loss off
    assert not torch.equal(before, model.G_AB.model[1].weight)
    assert model.G_AB.config["upsample"] == "nearest"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_mixed_precision_channels_last_run(tmp_path):
    data = make_dataset(tmp_path / "data", 4)
    result = train(data, "gpu", out=tmp_path / "runs", **quiet(device="cuda", amp=True, channels_last=True),
                   epochs=2, decay_epoch=1, seed=0, workers=2)
    assert result.epochs_done == 2 and all(np.isfinite(v) for v in result.losses.values())
    assert load_generator(result.generator_AB).meta["options"]["amp"] is True
