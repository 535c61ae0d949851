"""cg-train under torchrun on the CPU: two Gloo processes, tiny networks, a handful of steps.

Real runs of ``python -m torch.distributed.run --standalone`` (rendezvous on localhost only): a two-rank run finishes
and its generator exports; one rank SIGKILLed mid-run under ``--max-restarts 1`` ends with exactly the weights of an
uninterrupted run; two ranks of batch 1 compute what one process of batch 2 computes; the data shards of every
epoch are disjoint and cover it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cg_export.export.onnx import export_onnx
from cg_export.models import load_generator
from tests.conftest import REPO, assert_same_state
from training.cli import app
from training.data import EpochShards
from training.distributed import Processes
from training.errors import DatasetError, TrainingError
from training.trainer import STATE_FILE, train

TINY = ["--size", "32", "--ngf", "4", "--n-blocks", "1", "--ndf", "8"]
#: 8 images, 2 ranks of batch 1: 4 steps per epoch, 8 in all; saves at steps 3, 4 (epoch end), 6 and 8.
#: One thread per process: runs compared bit for bit must split their reductions alike (cg-train would otherwise
#: take the machine's cores divided among torchrun's local processes).
COMMON = ["--epochs", "2", "--decay-epoch", "1", "--seed", "7", "--log-every", "1", "--save-every", "3",
          "--threads", "1", "--no-progress", *TINY]
KILL_AFTER_STEP = 7  # after the save at step 6: the restart must redo step 7 and drop its logged line

#: Run as torchrun's script: rank 1 of the first attempt SIGKILLs itself when starting the step after
#: KILL_AFTER_STEP, as an out-of-memory kill or a lost machine would end it; every other process is plain cg-train.
KILLER = f"""
import os, signal
from training import trainer

if os.environ["RANK"] == "1" and os.environ["TORCHELASTIC_RESTART_COUNT"] == "0":
    train_step = trainer.CycleGANTrainer.train_step

    def train_step_or_die(self, batch):
        if self.global_step == {KILL_AFTER_STEP}:
            os.kill(os.getpid(), signal.SIGKILL)
        return train_step(self, batch)

    trainer.CycleGANTrainer.train_step = train_step_or_die

from training.cli import main
main()
"""


def make_images(root: Path, count: int = 8) -> Path:
    """``count`` random smooth-ish RGB images per domain (40 px, so the 32 px crops vary)."""
    rng = np.random.default_rng(0)
    for domain in ("trainA", "trainB"):
        (root / domain).mkdir(parents=True)
        for index in range(count):
            small = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
            Image.fromarray(small).resize((40, 40), Image.BILINEAR).save(root / domain / f"{index}.png")
    return root


def torchrun(*args: str, processes: int = 2, restarts: int = 0) -> subprocess.Popen:
    """Start ``torchrun --standalone`` (rendezvous on a free localhost port) with stdout and stderr captured."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
               "--max-restarts", str(restarts), "--monitor-interval", "0.1", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = process.communicate(timeout=600)  # only a hung job should reach it
    finally:
        process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An uninterrupted two-rank run, the same run with rank 1 killed once, and a two-rank run without replay."""
    root = tmp_path_factory.mktemp("torchrun")
    data = make_images(root / "data")
    out = root / "runs"
    killer = root / "kill_rank_1.py"
    killer.write_text(KILLER)
    cg_train = ["-m", "training.cli", str(data), "-o", str(out), *COMMON]
    # Two jobs at a time overlap their start-up (imports, rendezvous); four processes on a 2-core runner are enough.
    whole = torchrun(*cg_train, "--name", "whole", "--pool-size", "4")
    no_replay = torchrun(*cg_train, "--name", "no_replay", "--pool-size", "0")
    runs = {"data": data, "out": out, "whole": finished(whole), "no_replay": finished(no_replay)}
    killed = torchrun(str(killer), str(data), "-o", str(out), *COMMON, "--name", "killed", "--pool-size", "4",
                      restarts=1)
    runs["killed"] = finished(killed)
    return runs


def losses(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]


def test_two_rank_run_finishes_writes_once_and_exports(runs, tmp_path):
    whole = runs["whole"]
    assert whole.returncode == 0, whole.stderr[-3000:]
    # Rank 0 alone speaks: each line once.
    assert whole.stdout.count("done      2 epochs, 8 steps") == 1
    assert "torchrun  2 processes (gloo), batch 1 each: 2 images per step, 4 steps per epoch" in whole.stdout
    run = runs["out"] / "whole"
    assert [p.name for p in sorted((run / "samples").glob("*.png"))] == ["epoch_001.png", "epoch_002.png"]
    assert [r["step"] for r in losses(run) if r["kind"] == "steps"] == list(range(1, 9))

    state = torch.load(run / STATE_FILE, weights_only=True)
    assert state["finished"] and state["world_size"] == 2 and len(state["ranks"]) == 1
    # Each rank kept its own replay buffer of its own fakes.
    rank_0, rank_1 = state["model"]["pool_A"]["images"], state["ranks"][0]["pool_A"]["images"]
    assert rank_0.shape == rank_1.shape == (4, 3, 32, 32) and not torch.equal(rank_0, rank_1)

    exported = export_onnx(run / "G_AB.pt", tmp_path / "G_AB.onnx")
    assert exported.path.is_file() and min(case.psnr_db for case in exported.parity.cases) >= 50


def test_a_killed_rank_is_restarted_by_torchrun_and_the_run_ends_as_if_uninterrupted(runs):
    killed, whole = runs["killed"], runs["whole"]
    assert killed.returncode == 0, killed.stderr[-3000:]
    assert "torchrun restart 1: resuming from the last save" in killed.stdout
    assert "resumed   from epoch 2 step 2 (global step 6)" in killed.stdout
    reference = torch.load(runs["out"] / "whole" / STATE_FILE, weights_only=True)
    final = torch.load(runs["out"] / "killed" / STATE_FILE, weights_only=True)
    assert final["finished"] and final["global_step"] == 8
    for net in ("G_AB", "G_BA", "D_A", "D_B"):
        for key, value in reference["model"][net].items():
            assert torch.equal(value, final["model"][net][key]), f"{net}.{key} differs"
    for part in ("pool_A", "pool_B"):
        assert torch.equal(reference["ranks"][0][part]["images"], final["ranks"][0][part]["images"])
    for name in ("G_AB.pt", "G_BA.pt"):
        a = load_generator(runs["out"] / "whole" / name).model.state_dict()
        b = load_generator(runs["out"] / "killed" / name).model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    # Step 7, logged by rank 0 before the kill, was dropped on resume and logged again once: the same bytes.
    assert (runs["out"] / "killed" / "losses.jsonl").read_bytes() == (runs["out"] / "whole" / "losses.jsonl").read_bytes()
    # And the whole training state, every rank's part included, but its wall-clock training time.
    assert_same_state({k: v for k, v in reference.items() if k != "elapsed_seconds"},
                      {k: v for k, v in final.items() if k != "elapsed_seconds"})
    assert whole.returncode == 0


def test_two_ranks_of_batch_1_match_one_process_of_batch_2(runs):
    assert runs["no_replay"].returncode == 0, runs["no_replay"].stderr[-3000:]
    torch.set_num_threads(1)
    single = train(runs["data"], "single", out=runs["out"], progress=False, report=lambda *line: None,
                   epochs=2, decay_epoch=1, seed=7, log_every=1, pool_size=0, batch_size=2,
                   image_size=32, ngf=4, n_blocks=1, ndf=8)
    two = torch.load(runs["out"] / "no_replay" / STATE_FILE, weights_only=True)
    one = torch.load(single.run_dir / STATE_FILE, weights_only=True)
    assert one["global_step"] == two["global_step"] == 8
    lr = 2e-4  # cg-train's default, which these runs use
    compared = off = 0
    for net in ("G_AB", "G_BA", "D_A", "D_B"):
        for key, value in one["model"][net].items():
            # Biases of convolutions followed by InstanceNorm are left out: their true gradient is zero (the norm
            # subtracts them again), so Adam turns pure rounding noise into +-lr steps there; nothing depends on them.
            if key.endswith("weight") or net.startswith("D") and key.startswith(("model.0.", "model.11.")):
                # Two ranks sum their gradients in another order than one batch of 2 does, so the gradients differ in
                # their last bits; Adam divides by the gradient's own size, so an element whose gradient is near zero
                # can step by up to lr either way on that noise. Every element is within two such steps, and all
                # but a handful (6 of 106,160 on this machine's runs) within the 2e-4 the rest keep.
                difference = (two["model"][net][key] - value).abs()
                assert difference.max().item() <= 2 * lr, f"{net}.{key}: {difference.max().item():.2e}"
                off += int((difference > 2e-4 + 1e-3 * value.abs()).sum())
                compared += value.numel()
    assert off <= compared * 1e-4, f"{off} of {compared} weights differ by more than 2e-4"
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        outputs = [load_generator(run / "G_AB.pt").model.eval()(images) for run in (single.run_dir,
                                                                                     runs["out"] / "no_replay")]
    torch.testing.assert_close(outputs[0], outputs[1], atol=2e-3, rtol=0)
    for a, b in zip(losses(single.run_dir), losses(runs["out"] / "no_replay"), strict=True):
        assert a.keys() == b.keys() and (a["kind"], a["step"]) == (b["kind"], b["step"])
        # The same near-zero-gradient noise moves a discriminator loss near 0.18 by up to 2.3e-4 on this machine.
        assert [a[k] for k in ("G", "cycle", "D_A", "D_B")] == pytest.approx([b[k] for k in ("G", "cycle", "D_A",
                                                                                              "D_B")], rel=1e-3, abs=5e-4)


def test_resuming_with_another_number_of_processes_is_refused_in_one_line(runs, tmp_path):
    state = torch.load(runs["out"] / "whole" / STATE_FILE, weights_only=True)
    state["finished"], state["epoch"], state["step_in_epoch"] = False, 1, 0
    (tmp_path / "halfway").mkdir()
    torch.save(state, tmp_path / "halfway" / STATE_FILE)
    result = CliRunner().invoke(app, [str(runs["data"]), "--name", "halfway", "-o", str(tmp_path), "--resume"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "was trained by 2 process(es) and this is 1: resume it with 2 in all" in result.stderr


@pytest.mark.parametrize("length,batch_size,world_size", [
    (8, 1, 1), (7, 3, 1), (8, 1, 2), (9, 1, 2), (10, 2, 2), (11, 2, 4), (13, 4, 3), (5, 1, 4), (2, 1, 2),
])
def test_shards_are_disjoint_and_cover_every_epoch(length, batch_size, world_size):
    shards = EpochShards(length, batch_size, world_size)
    seen = []
    for step in range(shards.steps):
        parts = [shards.positions(step, rank) for rank in range(world_size)]
        assert all(len(part) >= 1 for part in parts), "every rank trains at least one image per step"
        assert max(map(len, parts)) - min(map(len, parts)) <= 1 or all(len(p) == batch_size for p in parts)
        seen += [position for part in parts for position in part]
    assert sorted(seen) == seen == list(range(length))
    if world_size == 1:  # exactly the single-process batches of before
        assert [list(shards.positions(s, 0)) for s in range(shards.steps)] == [
            list(range(s * batch_size, min((s + 1) * batch_size, length))) for s in range(-(-length // batch_size))]


def test_two_ranks_of_batch_1_see_the_images_of_one_batch_of_2():
    two, one = EpochShards(9, 1, 2), EpochShards(9, 2, 1)
    assert [[*two.positions(s, 0), *two.positions(s, 1)] for s in range(two.steps)][:3] == [
        list(one.positions(s, 0)) for s in range(3)]
    with pytest.raises(DatasetError, match="fewer than the 4 processes"):
        EpochShards(3, 1, 4)


def test_torchrun_environment_is_read_and_checked():
    assert Processes.from_environment({}) == Processes.single()
    found = Processes.from_environment({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
                                        "TORCHELASTIC_RESTART_COUNT": "2"})
    assert (found.rank, found.world_size, found.local_rank, found.restart_count) == (3, 4, 1, 2)
    assert found.distributed and not found.is_main
    with pytest.raises(TrainingError, match="RANK 4 does not lie in"):
        Processes.from_environment({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(TrainingError, match="names one GPU"):
        found.device_for(torch.device("cuda", 0))
    # Restarts through torchrun's shared store: kept apart per restart on one machine; on several, the user is told.
    job = {"RANK": "0", "WORLD_SIZE": "16", "TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_MAX_RESTARTS": "3"}
    assert Processes.from_environment({**job, "GROUP_WORLD_SIZE": "1"}).restart_caveat is None
    caveat = Processes.from_environment({**job, "GROUP_WORLD_SIZE": "2"}).restart_caveat
    assert caveat and "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in caveat
    assert Processes.from_environment({**job, "GROUP_WORLD_SIZE": "2", "TORCHELASTIC_USE_AGENT_STORE": "False"}
                                      ).restart_caveat is None
