"""``cg-train``'s trainer: CycleGAN's data, networks, step and sample grids on :mod:`training.engine`'s loop.

A run lives in ``OUT/NAME/``:

* ``G_AB.pt``, ``G_BA.pt``: the generators in the toolkit's checkpoint format (``cg-export onnx G_AB.pt`` takes them
  as they are), ``meta`` = ``{epoch, step, losses, dataset, options, direction}``;
* ``samples/epoch_NNN.png``: rows of (real, translated, translated back) for a few fixed images of each domain;
* ``losses.jsonl``: one JSON object per line, averaged losses every ``log_every`` steps and per epoch;
* ``training_state.pt``: everything needed to continue (networks, optimisers, schedulers, replay buffers, loss
  scaler, every random state, the position in the data order), loadable with ``torch.load(weights_only=True)``.

Saving, exact resuming (with a fixed seed on the CPU an interrupted and resumed run ends bit for bit where an
uninterrupted one does, its log included) and the rest of the loop are the engine's; see :mod:`training.engine`.

Under ``torchrun`` (see :mod:`training.distributed`) every process trains its own share of each step's images and
the gradients are averaged; rank 0 alone reads and writes the run folder and prints, the training state holds
every rank's replay buffers and random states, and a job that torchrun restarts continues from the last save.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cg_export.images import to_uint8
from cg_export.models import describe_architecture, save_generator
from training.cyclegan import LOSS_NAMES, CycleGAN
from training.data import EpochBatches, UnpairedImages
from training.discriminator import receptive_field
from training.distributed import Processes, make_data_parallel
from training.engine import (
    LOSSES_FILE,
    SAMPLES_FOLDER,
    BaseTrainer,
    Reporter,
    RunResult,
    StateFile,
    print_report,
    resolve_device,
)
from training.errors import TrainingError
from training.options import TrainOptions

__all__ = ["DEFAULT_OUT", "LOSSES_FILE", "SAMPLES_FOLDER", "STATE_FILE", "STATE_FORMAT", "STATE_VERSION",
           "CycleGANTrainer", "TrainResult", "print_report", "read_state", "resolve_device", "train"]

STATE_FILE = "training_state.pt"
STATE_FORMAT = "cg-export.training-state"
#: 2 added ``world_size`` and ``ranks`` (the replay buffers and random states of ranks 1 and up); 1 is read as one
#: process.
STATE_VERSION = 2
DEFAULT_OUT = Path("runs")

TRAINING_STATE = StateFile(
    name=STATE_FILE, format=STATE_FORMAT, version=STATE_VERSION, program="cg-train", noun="training state",
    new_run="--name", keys={"dataset": dict}, networks=("G_AB", "G_BA", "D_A", "D_B"),
)


@dataclass
class TrainResult(RunResult):
    """What a call of :func:`train` left behind: where, and (:class:`~training.engine.RunResult`) how far.

    Attributes:
        run_dir: ``OUT/NAME``.
        generator_AB: Path of ``G_AB.pt`` (A -> B).
        generator_BA: Path of ``G_BA.pt`` (B -> A).
    """

    run_dir: Path
    generator_AB: Path
    generator_BA: Path


def read_state(path: Path) -> dict[str, Any]:
    """Load a training state (``weights_only=True``: plain tensors and numbers only).

    Raises:
        TrainingError: the file is missing, damaged or not a training state.
    """
    return TRAINING_STATE.read(path)


def train(
    dataroot: str | Path,
    name: str,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    report: Reporter | None = None,
    **options: Any,
) -> TrainResult:
    """Train CycleGAN on the unpaired images under ``dataroot``, saving into ``out/name``.

    Started by ``torchrun`` (its ``RANK``/``WORLD_SIZE`` environment is set), this is one process of a
    data-parallel run: ``batch_size`` images per process and step, progress and files from rank 0 only, and on a
    torchrun restart (``TORCHELASTIC_RESTART_COUNT`` > 0) it resumes from the last save as if ``resume`` were given
    (or starts afresh if nothing was saved yet).

    Args:
        dataroot: Data root with ``trainA``/``trainB`` or ``train/A``/``train/B``.
        name: Run name: the folder under ``out``.
        out: Parent folder of runs (default ``runs``).
        resume: Continue the run saved in ``out/name`` (its saved options are used; options given here must
            agree, except ``device``, ``save_every``, ``workers`` and ``log_every``).
        progress: Show a progress bar per epoch (on stderr).
        report: Receives ``(label, text)`` progress lines; default prints them on stdout between progress bars.
        **options: :class:`~training.options.TrainOptions` fields; ``None`` values keep the defaults.

    Returns:
        Where the generators are and how far the run got.

    Raises:
        DatasetError: the data root cannot be used.
        TrainingError: invalid options, or a run folder that cannot be started or resumed as asked.
        ArchitectureError: generator options that do not fit the architecture.
    """
    if not name or Path(name).name != name or name in (".", ".."):
        raise TrainingError(f"--name {name!r}: use a plain folder name such as 'monet2photo'")
    run_dir = Path(out or DEFAULT_OUT).expanduser() / name
    trainer = CycleGANTrainer(Path(dataroot).expanduser(), run_dir, report or print_report, progress,
                              Processes.from_environment())
    trainer.run(resume, options)
    return TrainResult(run_dir, run_dir / "G_AB.pt", run_dir / "G_BA.pt", **trainer.outcome())


class CycleGANTrainer(BaseTrainer):
    """CycleGAN on two folders of unpaired images: what ``cg-train`` adds to the engine.

    Args:
        dataroot: Data root with ``trainA``/``trainB`` or ``train/A``/``train/B``.
        run_dir: ``OUT/NAME``.
        report: Receives ``(label, text)`` progress lines.
        progress: Show a progress bar per epoch.
        processes: This process's place under torchrun.
    """

    state_file = TRAINING_STATE
    options_class = TrainOptions
    loss_names = LOSS_NAMES

    def __init__(self, dataroot: Path, run_dir: Path, report: Reporter, progress: bool,
                 processes: Processes | None = None):
        super().__init__(run_dir, report, progress, processes)
        self.dataroot = dataroot

    # ----------------------------------------------------------------------------------------- setup

    def check_saved(self, state: dict[str, Any]) -> None:
        saved = state["dataset"]
        if Path(saved["root"]) != self.dataroot.resolve():
            # A moved dataset is still the same dataset; say so rather than refuse, the user may have moved it.
            self.report("note", f"this run was trained on {saved['root']} so far; continuing on "
                                f"{self.dataroot.resolve()}")

    def setup(self) -> None:
        self.data = UnpairedImages(self.dataroot, self.options.image_size, self.options.seed)
        # Every rank must see the same images, or their shares of each step would not fit together.
        seen = self.processes.all_gather(self.data.describe()["images"])
        for rank, images in enumerate(seen):
            if images != seen[0]:
                raise TrainingError(f"rank {rank} finds {images} readable images under {self.data.folders.root} but "
                                    f"rank 0 finds {seen[0]}: every process needs the same data")
        data = self.data
        if self.saved_state is not None and self.saved_state["dataset"]["images"] != data.describe()["images"]:
            self.report("note", f"the data root's readable images changed since the last save (then "
                                f"{self.saved_state['dataset']['images']}); the data order from here on differs "
                                "from the original run's")
        counts = ", ".join(f"{d.folder.relative_to(data.folders.root)} {len(d.files)}" for d in data.domains.values())
        self.report("data", f"{data.folders.root}: {counts} images; {data.length} per epoch")
        for domain in data.domains.values():
            if domain.skipped:
                shown = "; ".join(f"{p.name} ({reason})" for p, reason in domain.skipped[:3])
                more = f"; and {len(domain.skipped) - 3} more" if len(domain.skipped) > 3 else ""
                self.report("skipped", f"{len(domain.skipped)} unreadable file(s) in {domain.folder}: {shown}{more}")

    def build_model(self) -> CycleGAN:
        options = self.options
        model = CycleGAN(options, self.device)
        make_data_parallel(model, self.processes)
        field = receptive_field(options.d_layers)
        self.report("model", f"G: {describe_architecture(model.G_AB.config)}; D: {field}x{field} PatchGAN, "
                             f"ndf {options.ndf}")
        if self.device.type != "cuda" and (options.amp or options.channels_last):
            self.report("note", "--amp and --channels-last apply on CUDA only; training in float32 on the CPU")
        self.report_device(model.amp_dtype, *(["channels_last"] if model.memory_format == torch.channels_last else []))
        world = self.processes.world_size
        if world > 1:
            backend = torch.distributed.get_backend()
            self.report("torchrun", f"{world} processes ({backend}), batch {options.batch_size} each: "
                                    f"{world * options.batch_size} images per step, "
                                    f"{self.data.steps_per_epoch(options.batch_size, world)} steps per epoch")
            if self.processes.restart_caveat:
                self.report("note", self.processes.restart_caveat)
        return model

    def restore_rank(self, own: dict[str, Any]) -> None:
        # Ranks above 0: their own replay buffers instead of rank 0's.
        self.model.pool_A.load_state_dict(own["pool_A"], self.device)
        self.model.pool_B.load_state_dict(own["pool_B"], self.device)

    # ----------------------------------------------------------------------------------------- training

    def steps_per_epoch(self) -> int:
        return self.data.steps_per_epoch(self.options.batch_size, self.processes.world_size)

    def epoch_batches(self, steps: int) -> torch.utils.data.DataLoader:
        options, processes = self.options, self.processes
        workers = options.workers
        if workers is None:
            workers = 0 if self.device.type == "cpu" else min(4, os.cpu_count() or 1)
        return torch.utils.data.DataLoader(
            EpochBatches(self.data, self.epoch, options.batch_size, processes.rank, processes.world_size),
            batch_size=None,
            sampler=range(self.step_in_epoch, steps),
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            # Its own generator, so building a loader never draws from torch's global one.
            generator=torch.Generator().manual_seed(options.seed),
        )

    def train_step(self, batch: dict[str, Any]) -> torch.Tensor:
        for path, reason in self.data.mark_unreadable(batch["failed"]):
            self.report("skipped", f"{path}: {reason}; the next image of its domain stands in for it")
        model = self.model
        if self.processes.distributed:
            model.scaler.weight = batch["share"]
        losses = model.train_step(model.prepare(batch["A"]), model.prepare(batch["B"]))
        # The losses of the whole step's images (the same on every rank), so the log means what it means alone.
        return self.processes.weighted_sum(losses, batch["share"])

    def bar_losses(self, losses: dict[str, float]) -> dict[str, str]:
        return {k: f"{v:.3f}" for k, v in losses.items() if k in ("G", "cycle", "D_A", "D_B")}

    def sample_inputs(self) -> dict[str, torch.Tensor]:
        return {d: self.data.fixed_samples(d, self.options.samples) for d in ("A", "B")}

    def sample_rows(self) -> list[list[np.ndarray]]:
        """Rows of (real, translated, translated back) for the fixed A images, then the fixed B images."""
        rows = []
        for domain, there, back in (("A", "AB", "BA"), ("B", "BA", "AB")):
            real = self.fixed[domain]
            translated = self.model.translate(real, there)
            restored = self.model.translate(translated, back)
            images = [to_uint8(t.numpy()) for t in (real, translated, restored)]
            rows += [[column[index] for column in images] for index in range(real.shape[0])]
        return rows

    # ----------------------------------------------------------------------------------------- saving

    def rank_state(self) -> dict[str, Any]:
        return {"pool_A": self.model.pool_A.state_dict(), "pool_B": self.model.pool_B.state_dict()}

    def write_outputs(self, meta: dict[str, Any]) -> None:
        meta = {**meta, "dataset": self.data.describe()}
        save_generator(self.model.G_AB, self.run_dir / "G_AB.pt", {**meta, "direction": "A->B"})
        save_generator(self.model.G_BA, self.run_dir / "G_BA.pt", {**meta, "direction": "B->A"})

    def extra_state(self, ranks: list[dict[str, Any]]) -> dict[str, Any]:
        return {"dataset": self.data.describe(), "world_size": self.processes.world_size, "ranks": ranks}

    def outputs(self) -> list[Path]:
        return [self.run_dir / "G_AB.pt", self.run_dir / "G_BA.pt"]
