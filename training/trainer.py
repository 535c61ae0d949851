"""The training loop of ``cg-train``: data, steps, progress, sample grids, losses log, saving and exact resuming.

A run lives in ``OUT/NAME/``:

* ``G_AB.pt``, ``G_BA.pt``: the generators in the toolkit's checkpoint format (``cg-export onnx G_AB.pt`` takes them
  as they are), ``meta`` = ``{epoch, step, losses, dataset, options, direction}``;
* ``samples/epoch_NNN.png``: rows of (real, translated, translated back) for a few fixed images of each domain;
* ``losses.jsonl``: one JSON object per line, averaged losses every ``log_every`` steps and per epoch;
* ``training_state.pt``: everything needed to continue (networks, optimisers, schedulers, replay buffers, loss
  scaler, every random state, the position in the data order), loadable with ``torch.load(weights_only=True)``.

Saves happen at the end of every epoch and every ``save_every`` steps, each file written atomically, the training
state last (it is the commit point: whatever is on disk after a crash is a consistent earlier save). Resuming
restores that save and truncates the losses log to where it was, so with a fixed seed on the CPU an interrupted
and resumed run ends bit for bit where an uninterrupted one does.

Under ``torchrun`` (see :mod:`training.distributed`) every process trains its own share of each step's images and
the gradients are averaged; rank 0 alone reads and writes the run folder and prints, the training state holds
every rank's replay buffers and random states, and a job that torchrun restarts continues from the last save.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from cg_export.files import atomic_output
from cg_export.images import to_uint8
from cg_export.models import describe_architecture, save_generator
from training.cyclegan import LOSS_NAMES, CycleGAN
from training.data import EpochBatches, UnpairedImages
from training.discriminator import receptive_field
from training.distributed import Processes, make_data_parallel
from training.errors import TrainingError, TrainingOptionError
from training.options import RESUMABLE_CHANGES, TrainOptions
from training.random_state import capture_global_rng, restore_global_rng, seed_everything

STATE_FILE = "training_state.pt"
STATE_FORMAT = "cg-export.training-state"
#: 2 added ``world_size`` and ``ranks`` (the replay buffers and random states of ranks 1 and up); 1 is read as one
#: process.
STATE_VERSION = 2
LOSSES_FILE = "losses.jsonl"
SAMPLES_FOLDER = "samples"
DEFAULT_OUT = Path("runs")

Reporter = Callable[[str, str], None]


@dataclass
class TrainResult:
    """What a call of :func:`train` left behind.

    Attributes:
        run_dir: ``OUT/NAME``.
        generator_AB: Path of ``G_AB.pt`` (A -> B).
        generator_BA: Path of ``G_BA.pt`` (B -> A).
        epochs_done: Completed epochs.
        global_step: Completed optimisation steps.
        losses: The last averaged losses.
        resumed_from: ``(epoch, step within epoch)`` the run continued from, ``None`` for a fresh run.
        already_finished: ``resume`` found a finished run and did nothing.
    """

    run_dir: Path
    generator_AB: Path
    generator_BA: Path
    epochs_done: int
    global_step: int
    losses: dict[str, float]
    resumed_from: tuple[int, int] | None = None
    already_finished: bool = False


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> CUDA when PyTorch sees a GPU, else the CPU; ``cpu``, ``cuda``, ``cuda:N`` are checked.

    Raises:
        TrainingError: an unknown device, or a CUDA device that is not there.
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise TrainingOptionError("device", repr(spec), "use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingOptionError("device", spec, "PyTorch sees no CUDA GPU here; use {device} cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainingOptionError("device", spec, f"only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def read_state(path: Path) -> dict[str, Any]:
    """Load a training state (``weights_only=True``: plain tensors and numbers only).

    Raises:
        TrainingError: the file is missing, damaged or not a training state.
    """
    if not path.is_file():
        raise TrainingError(f"{path.parent}: no saved training state to resume ({path.name} is missing); "
                            "start the run without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to unpickle means the same thing to the user
        raise TrainingError(f"{path}: cannot read the training state ({type(exc).__name__}); "
                            "it is damaged: start a new run with another --name") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainingError(f"{path}: not a cg-train training state")
    if state.get("version", 0) > STATE_VERSION:
        raise TrainingError(f"{path}: written by a newer cg-train (state version {state['version']}); upgrade")
    damaged = "it is damaged: start a new run with another --name"
    missing = [key for key in _STATE_KEYS if key not in state]
    wrong = [key for key, kind in _STATE_KEYS.items() if key in state and not isinstance(state[key], kind)]
    if missing or wrong:
        what = "lacks " + ", ".join(missing) if missing else "has a malformed " + ", ".join(wrong)
        raise TrainingError(f"{path}: the training state {what}; {damaged}")
    for name in ("G_AB", "G_BA", "D_A", "D_B"):
        weights = state["model"].get(name)
        if not isinstance(weights, dict):
            raise TrainingError(f"{path}: the training state holds no {name} weights; {damaged}")
        for key, tensor in weights.items():
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise TrainingError(f"{path}: {name}.{key} holds NaN or infinite values (training diverged); "
                                    "resume from an earlier copy or start a new --name")
    return state


# What a training state must hold (and of what type) before a run is rebuilt from it.
_STATE_KEYS: dict[str, type | tuple[type, ...]] = {
    "options": dict, "dataset": dict, "epoch": int, "step_in_epoch": int, "global_step": int,
    "elapsed_seconds": (int, float), "last_losses": dict, "loss_sums": dict, "log_bytes": int, "model": dict,
    "rng": dict,
}


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
    processes = Processes.from_environment()
    joined = processes.start()
    run = _Run(run_dir, report or print_report, progress, processes)
    # A failing rank leaves without a goodbye: it exits, and torchrun stops the others and reports it.
    result = run.start(Path(dataroot).expanduser(), resume, options)
    if joined:
        processes.stop()
    return result


def print_report(label: str, text: str) -> None:
    """Print an aligned ``label  text`` progress line on stdout without breaking the progress bars (on stderr)."""
    # tqdm.write keeps progress bars intact; the flush lets a parent process read each line as it happens.
    tqdm.write(f"{label:<10}{text}", file=sys.stdout)
    sys.stdout.flush()


class _Run:
    """One training run's mutable state between saves."""

    def __init__(self, run_dir: Path, report: Reporter, progress: bool, processes: Processes | None = None):
        self.processes = processes or Processes.single()
        self.run_dir = run_dir
        self.report = report if self.processes.is_main else _silent
        self.progress = progress and self.processes.is_main
        self.state_path = run_dir / STATE_FILE
        self.log_path = run_dir / LOSSES_FILE
        # The state being resumed, as rank 0 read it (``None`` on other ranks, and for a fresh run).
        self.saved_state: dict[str, Any] | None = None
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.elapsed = 0.0
        self.last_losses: dict[str, float] = {}
        self.window_sum = torch.zeros(len(LOSS_NAMES))
        self.window_count = 0
        self.epoch_sum = torch.zeros(len(LOSS_NAMES))
        self.epoch_count = 0

    # ----------------------------------------------------------------------------------------- setup

    def start(self, dataroot: Path, resume: bool, overrides: dict[str, Any]) -> TrainResult:
        processes = self.processes
        # Only rank 0 reads the run folder (on several machines it may exist on rank 0's alone); every rank then
        # starts from its decision, or stops with its refusal.
        options, resuming, finished = processes.decided_on_main(lambda: self._decide(dataroot, resume, overrides))
        if finished is not None:
            return self._result(options, finished, already_finished=True)
        state = self._share_state(self.saved_state) if resuming else None
        self.options = options
        self.device = processes.device_for(resolve_device(options.device))
        self.data = UnpairedImages(dataroot, options.image_size, options.seed)
        self._check_data_agrees()
        self._report_data()
        seed_everything(options.seed)
        self.model = CycleGAN(options, self.device)
        make_data_parallel(self.model, processes)
        if self.device.type == "cuda":
            # Fixed input sizes: let cuDNN pick the fastest convolution algorithms once.
            torch.backends.cudnn.benchmark = True
        self._report_setup()
        resumed_from = None
        if state is not None:
            self._restore(state)
            resumed_from = (self.epoch, self.step_in_epoch)
            self.report("resumed", f"from epoch {self.epoch + 1} step {self.step_in_epoch} "
                                   f"(global step {self.global_step}) of {self.run_dir}")
        if processes.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.fixed = {d: self.data.fixed_samples(d, options.samples) for d in ("A", "B")}
        self._loop()
        result = self._result(options, None)
        result.resumed_from = resumed_from
        self.report("done", f"{options.epochs} epochs, {self.global_step} steps: {result.generator_AB}, "
                            f"{result.generator_BA}")
        return result

    def _decide(self, dataroot: Path, resume: bool, overrides: dict[str, Any]
                ) -> tuple[TrainOptions, bool, dict[str, Any] | None]:
        """Rank 0 only: the options, whether a saved state (kept in ``saved_state``) is resumed, and for a finished
        run what :meth:`_result` needs of its state (else ``None``)."""
        processes = self.processes
        if processes.restart_count and not resume:
            # torchrun reran the command after a failure: continue what the failed attempt saved, if it saved.
            resume = self.state_path.exists()
            self.report("restart", f"torchrun restart {processes.restart_count}: "
                                   + ("resuming from the last save" if resume else "nothing was saved; starting over"))
        if resume:
            state = read_state(self.state_path)
            options = self._resumed_options(state, overrides)
            if state.get("finished"):
                self.report("finished", f"{self.run_dir} already completed {state['epoch']} of "
                                        f"{options.epochs} epochs; nothing to do")
                return options, False, _summary(state)
            saved_world = int(state.get("world_size", 1))
            if saved_world != processes.world_size:
                raise TrainingError(
                    f"{self.run_dir} was trained by {saved_world} process(es) and this is {processes.world_size}: "
                    f"resume it with {saved_world} in all (torchrun --nnodes x --nproc-per-node), the data order "
                    "and replay buffers are per process"
                )
            self._check_same_data(state, dataroot)
            self.saved_state = state
            return options, True, None
        if self.state_path.exists():
            raise TrainingError(
                f"{self.run_dir} already holds a run; pass --resume to continue it, or choose another --name"
            )
        options = TrainOptions.from_overrides(**overrides)
        if options.seed is None:
            # A drawn seed is recorded like a given one, so even an unseeded run resumes exactly.
            options = options.replace(seed=random.SystemRandom().randrange(2**31))
        return options, False, None

    def _share_state(self, state: dict[str, Any] | None) -> dict[str, Any]:
        """Rank 0's saved state on every rank (``state`` is ``None`` elsewhere), each rank's own part (replay
        buffers, random state) as ``own``."""
        processes = self.processes
        if not processes.distributed:
            return state
        own = None
        if processes.is_main:
            parts = [None, *state.pop("ranks")]
            own = processes.scatter(parts)
            processes.broadcast(state)
        else:
            own = processes.scatter(None)
            state = processes.broadcast(None)
        state["own"] = own
        return state

    def _check_data_agrees(self) -> None:
        """Every rank must see the same images, or their shares of each step would not fit together."""
        seen = self.processes.all_gather(self.data.describe()["images"])
        for rank, images in enumerate(seen):
            if images != seen[0]:
                raise TrainingError(f"rank {rank} finds {images} readable images under {self.data.folders.root} but "
                                    f"rank 0 finds {seen[0]}: every process needs the same data")

    def _resumed_options(self, state: dict[str, Any], overrides: dict[str, Any]) -> TrainOptions:
        saved = TrainOptions.from_dict(state["options"])
        unknown = sorted(set(overrides) - set(saved.as_dict()))
        if unknown:
            raise TrainingError(f"unknown training option(s): {', '.join(unknown)}")
        conflicts = [
            f"--{k.replace('_', '-')} {v} (saved: {getattr(saved, k)})"
            for k, v in overrides.items()
            if v is not None and k not in RESUMABLE_CHANGES and v != getattr(saved, k)
        ]
        if conflicts:
            raise TrainingError(
                f"{self.run_dir} was started with other options: {', '.join(conflicts)}; drop them to resume "
                "(only --device, --save-every, --workers and --log-every may change), or start a new --name"
            )
        changes = {k: v for k, v in overrides.items() if v is not None and k in RESUMABLE_CHANGES}
        return saved.replace(**changes)

    def _check_same_data(self, state: dict[str, Any], dataroot: Path) -> None:
        saved = state["dataset"]
        if Path(saved["root"]) != dataroot.resolve():
            # A moved dataset is still the same dataset; say so rather than refuse, the user may have moved it.
            self.report("note", f"this run was trained on {saved['root']} so far; continuing on {dataroot.resolve()}")

    def _report_data(self) -> None:
        data = self.data
        counts = ", ".join(f"{d.folder.relative_to(data.folders.root)} {len(d.files)}" for d in data.domains.values())
        self.report("data", f"{data.folders.root}: {counts} images; {data.length} per epoch")
        for domain in data.domains.values():
            if domain.skipped:
                shown = "; ".join(f"{p.name} ({reason})" for p, reason in domain.skipped[:3])
                more = f"; and {len(domain.skipped) - 3} more" if len(domain.skipped) > 3 else ""
                self.report("skipped", f"{len(domain.skipped)} unreadable file(s) in {domain.folder}: {shown}{more}")

    def _report_setup(self) -> None:
        options, model = self.options, self.model
        field = receptive_field(options.d_layers)
        self.report("model", f"G: {describe_architecture(model.G_AB.config)}; D: {field}x{field} PatchGAN, "
                             f"ndf {options.ndf}")
        extras = []
        if model.amp_dtype is not None:
            extras.append(f"mixed precision {str(model.amp_dtype).removeprefix('torch.')}")
        if model.memory_format == torch.channels_last:
            extras.append("channels_last")
        if self.device.type != "cuda" and (options.amp or options.channels_last):
            self.report("note", "--amp and --channels-last apply on CUDA only; training in float32 on the CPU")
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        self.report("device", f"{self.device} ({name}){'; ' + ', '.join(extras) if extras else ''}; "
                              f"seed {options.seed}")
        world = self.processes.world_size
        if world > 1:
            backend = torch.distributed.get_backend()
            self.report("torchrun", f"{world} processes ({backend}), batch {options.batch_size} each: "
                                    f"{world * options.batch_size} images per step, "
                                    f"{self.data.steps_per_epoch(options.batch_size, world)} steps per epoch")
            if self.processes.restart_caveat:
                self.report("note", self.processes.restart_caveat)

    def _restore(self, state: dict[str, Any]) -> None:
        saved = state["dataset"]["images"]
        if saved != {d: len(v.files) for d, v in self.data.domains.items()}:
            self.report("note", f"the data root's readable images changed since the last save (then {saved}); "
                                "the data order from here on differs from the original run's")
        try:
            self.model.load_state_dict(state["model"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:  # missing keys, size mismatch, bad optimiser
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise TrainingError(f"{self.state_path}: the training state does not fit the run's networks ({first}); "
                                "it is damaged or from another run: start a new one with another --name") from None
        restore_global_rng(state["rng"])
        own = state.get("own")
        if own is not None:
            # Ranks above 0: their own replay buffers and random state instead of rank 0's.
            self.model.pool_A.load_state_dict(own["pool_A"], self.device)
            self.model.pool_B.load_state_dict(own["pool_B"], self.device)
            restore_global_rng(own["rng"])
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        self.global_step, self.elapsed = int(state["global_step"]), float(state["elapsed_seconds"])
        self.last_losses = dict(state["last_losses"])
        sums = state["loss_sums"]
        self.window_sum, self.window_count = sums["window"].clone(), int(sums["window_count"])
        self.epoch_sum, self.epoch_count = sums["epoch"].clone(), int(sums["epoch_count"])
        # Lines logged after the save describe steps that will now be trained again: drop them.
        if (self.processes.is_main and self.log_path.exists()
                and self.log_path.stat().st_size > int(state["log_bytes"])):
            with open(self.log_path, "r+b") as log:
                log.truncate(int(state["log_bytes"]))

    # ----------------------------------------------------------------------------------------- training

    def _loop(self) -> None:
        options, processes = self.options, self.processes
        steps = self.data.steps_per_epoch(options.batch_size, processes.world_size)
        workers = options.workers
        if workers is None:
            workers = 0 if self.device.type == "cpu" else min(4, os.cpu_count() or 1)
        self.window_sum, self.epoch_sum = self.window_sum.to(self.device), self.epoch_sum.to(self.device)
        self.session_started, self.elapsed_before = time.perf_counter(), self.elapsed
        # A fresh run starts a fresh log: lines left by an attempt killed before its first save describe nothing kept.
        # Ranks above 0 write no log (os.devnull keeps the code paths the same).
        log_path = self.log_path if processes.is_main else os.devnull
        with open(log_path, "ab" if self.global_step else "wb") as self.log:
            while self.epoch < options.epochs:
                loader = torch.utils.data.DataLoader(
                    EpochBatches(self.data, self.epoch, options.batch_size, processes.rank, processes.world_size),
                    batch_size=None,
                    sampler=range(self.step_in_epoch, steps),
                    num_workers=workers,
                    pin_memory=self.device.type == "cuda",
                    # Its own generator, so building a loader never draws from torch's global one.
                    generator=torch.Generator().manual_seed(options.seed),
                )
                bar = tqdm(total=steps, initial=self.step_in_epoch, desc=f"epoch {self.epoch + 1}/{options.epochs}",
                           unit="it", disable=not self.progress, dynamic_ncols=True, mininterval=0.5, leave=False)
                with bar:
                    for batch in loader:
                        self._train_step(batch, bar)
                        if (options.save_every and self.global_step % options.save_every == 0
                                and self.step_in_epoch < steps):
                            self._save()
                self._end_epoch()

    def _train_step(self, batch: dict[str, Any], bar: tqdm) -> None:
        for path, reason in self.data.mark_unreadable(batch["failed"]):
            self.report("skipped", f"{path}: {reason}; the next image of its domain stands in for it")
        model = self.model
        if self.processes.distributed:
            model.scaler.weight = batch["share"]
        losses = model.train_step(model.prepare(batch["A"]), model.prepare(batch["B"]))
        # The losses of the whole step's images (the same on every rank), so the log means what it means alone.
        losses = self.processes.weighted_sum(losses, batch["share"])
        self.window_sum += losses
        self.window_count += 1
        self.epoch_sum += losses
        self.epoch_count += 1
        self.step_in_epoch += 1
        self.global_step += 1
        # Reading losses back waits for the GPU, so do it only as often as the bar and the log need them.
        if self.global_step % self.options.log_every == 0:
            self.last_losses = self._log("steps", self.window_sum / self.window_count)
            self.window_sum.zero_()
            self.window_count = 0
            bar.set_postfix(_short(self.last_losses), refresh=False)
        elif self.progress and self.global_step % 10 == 0 and self.window_count:
            bar.set_postfix(_short(_as_dict(self.window_sum / self.window_count)), refresh=False)
        bar.update(1)

    def _end_epoch(self) -> None:
        model = self.model
        lr = model.learning_rate
        averages = self._log("epoch", self.epoch_sum / max(1, self.epoch_count), lr=lr,
                             elapsed_s=round(self._elapsed_now(), 1))
        self.last_losses = averages
        self.epoch_sum.zero_()
        self.epoch_count = 0
        model.end_epoch()
        self.epoch += 1
        self.step_in_epoch = 0
        if self.processes.is_main:
            grid = self._write_samples()
            text = "  ".join(f"{k} {v:.3f}" for k, v in averages.items())
            self.report(f"epoch {self.epoch}", f"{text}  lr {lr:.2e}  samples {grid.name}")
        self._save()

    def _log(self, kind: str, averages: torch.Tensor, **extra: Any) -> dict[str, float]:
        values = _as_dict(averages)
        record = {"kind": kind, "epoch": self.epoch + 1, "step": self.global_step, **values, **extra}
        if kind == "steps":
            record["lr"] = self.model.learning_rate
        self.log.write((json.dumps(record) + "\n").encode())
        return values

    def _write_samples(self) -> Path:
        """Rows of (real, translated, translated back) for the fixed A images, then the fixed B images."""
        rows = []
        for domain, there, back in (("A", "AB", "BA"), ("B", "BA", "AB")):
            real = self.fixed[domain]
            translated = self.model.translate(real, there)
            restored = self.model.translate(translated, back)
            images = [to_uint8(t.numpy()) for t in (real, translated, restored)]
            for index in range(real.shape[0]):
                rows.append(_hstack([images[0][index], images[1][index], images[2][index]]))
        grid = np.concatenate(_with_gaps(rows, axis=0), axis=0)
        path = self.run_dir / SAMPLES_FOLDER / f"epoch_{self.epoch:03d}.png"
        with atomic_output(path) as tmp:
            Image.fromarray(grid).save(tmp, format="PNG")
        return path

    # ----------------------------------------------------------------------------------------- saving

    def _elapsed_now(self) -> float:
        """Training seconds of the whole run, over every session that resumed it."""
        return self.elapsed_before + time.perf_counter() - self.session_started

    def _save(self) -> None:
        # Every rank hands rank 0 what differs between ranks; rank 0 alone writes, and the others go on at once
        # (the next step's all-reduce waits for rank 0 to finish writing).
        model, processes = self.model, self.processes
        own: dict[str, Any] = {"rng": capture_global_rng()}
        if not processes.is_main:
            own.update(pool_A=model.pool_A.state_dict(), pool_B=model.pool_B.state_dict())
        parts = processes.gather(own)
        if not processes.is_main:
            return
        self.elapsed = self._elapsed_now()
        options = self.options
        finished = self.epoch >= options.epochs
        self.log.flush()
        meta = {
            "epoch": self.epoch,
            "step": self.global_step,
            "losses": self.last_losses,
            "dataset": self.data.describe(),
            "options": options.as_dict(),
            "trainer": "cg-train",
        }
        save_generator(self.model.G_AB, self.run_dir / "G_AB.pt", {**meta, "direction": "A->B"})
        save_generator(self.model.G_BA, self.run_dir / "G_BA.pt", {**meta, "direction": "B->A"})
        state = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "options": options.as_dict(),
            "dataset": self.data.describe(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "finished": finished,
            "elapsed_seconds": self.elapsed,
            "last_losses": self.last_losses,
            "loss_sums": {"window": self.window_sum.cpu(), "window_count": self.window_count,
                          "epoch": self.epoch_sum.cpu(), "epoch_count": self.epoch_count},
            "log_bytes": self.log.tell(),
            "model": self.model.state_dict(),
            "rng": own["rng"],
            "world_size": processes.world_size,
            "ranks": parts[1:],
        }
        # The state goes last: it is the commit point, and the generator files above are never older than it.
        with atomic_output(self.state_path) as tmp:
            torch.save(state, tmp)
        where = f"epoch {self.epoch + 1} step {self.step_in_epoch}"
        if not self.step_in_epoch:
            where = f"end of epoch {self.epoch}"
        self.report("saved", f"{where} (global step {self.global_step}) in {self.run_dir}")

    def _result(self, options: TrainOptions, state: dict[str, Any] | None, already_finished: bool = False
                ) -> TrainResult:
        if state is not None:
            epochs, step, losses = int(state["epoch"]), int(state["global_step"]), dict(state["last_losses"])
        else:
            epochs, step, losses = self.epoch, self.global_step, self.last_losses
        return TrainResult(self.run_dir, self.run_dir / "G_AB.pt", self.run_dir / "G_BA.pt", epochs, step, losses,
                           already_finished=already_finished)


def _summary(state: dict[str, Any]) -> dict[str, Any]:
    """What :meth:`_Run._result` reads of a finished run's state (so the whole state need not travel to every rank)."""
    return {key: state[key] for key in ("epoch", "global_step", "last_losses")}


def _silent(label: str, text: str) -> None:
    """The reporter of ranks above 0: rank 0 speaks for the run."""


def _as_dict(values: torch.Tensor) -> dict[str, float]:
    return {name: round(float(v), 5) for name, v in zip(LOSS_NAMES, values.tolist(), strict=True)}


def _short(losses: dict[str, float]) -> dict[str, str]:
    return {k: f"{v:.3f}" for k, v in losses.items() if k in ("G", "cycle", "D_A", "D_B")}


def _hstack(images: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(_with_gaps(images, axis=1), axis=1)


def _with_gaps(images: list[np.ndarray], axis: int, gap: int = 2) -> list[np.ndarray]:
    """Interleave white strips of ``gap`` pixels between images along ``axis``."""
    shape = list(images[0].shape)
    shape[axis] = gap
    strip = np.full(shape, 255, dtype=np.uint8)
    result: list[np.ndarray] = []
    for index, image in enumerate(images):
        if index:
            result.append(strip)
        result.append(image)
    return result
