"""The one training engine behind ``cg-train`` and ``cg-compress``: run state, saving, exact resume, torchrun,
logging, progress and sample grids.

:class:`BaseTrainer` owns the loop; a trainer subclasses it and supplies only what differs: how its inputs are
checked and its data and networks built, one step's losses, the images of its sample grid, and the files and extra
state it saves (:class:`training.trainer.CycleGANTrainer`, :class:`training.compress.StudentTrainer`).

A run folder holds:

* ``losses.jsonl``: one JSON object per line, averaged losses every ``log_every`` steps and once per epoch. It holds
  no wall-clock time, so a resumed run's log is byte for byte the uninterrupted run's;
* ``samples/epoch_NNN.png``: the trainer's sample rows after every epoch;
* the training state (``training_state.pt``, ``compress_state.pt``): everything needed to continue (networks,
  optimisers, schedulers, loss sums, every random state, the position in the data order, the log's length),
  loadable with ``torch.load(weights_only=True)``.

Saves happen at the end of every epoch and every ``save_every`` steps, each file written atomically, the training
state last (it is the commit point: whatever is on disk after a crash is a consistent earlier save). Resuming
restores that save and truncates the log to where it was, so with a fixed seed on the CPU an interrupted and
resumed run ends bit for bit where an uninterrupted one does: the same weights, log and training state. The one
exception is the state's ``elapsed_seconds``, the training time of the run's sessions so far: it is wall-clock time
and differs by nature. Bit-exactness also needs the same number of CPU threads in every session (the split of a
multi-threaded reduction decides its rounding): a resumed session with another count is told so.

Under ``torchrun`` (see :mod:`training.distributed`) rank 0 alone reads and writes the run folder and prints; every
rank hands rank 0 its own random state (and whatever :meth:`BaseTrainer.rank_state` adds) at each save, and a job
that torchrun restarts continues from the last save.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from cg_export.files import atomic_output
from training.distributed import Processes
from training.errors import TrainingError, TrainingOptionError
from training.options import RunOptions
from training.random_state import capture_global_rng, restore_global_rng, seed_everything

LOSSES_FILE = "losses.jsonl"
SAMPLES_FOLDER = "samples"

Reporter = Callable[[str, str], None]


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


def interrupted_line(state_path: Path) -> str:
    """What ``cg-train`` and ``cg-compress`` say when stopped: whether ``--resume`` can continue the run, which only
    the training state (the engine's commit point, written last) decides."""
    if state_path.is_file():
        return "interrupted; the last save is intact: continue with the same command and --resume"
    return "interrupted; nothing was saved yet: start it again without --resume"


def print_report(label: str, text: str) -> None:
    """Print an aligned ``label  text`` progress line on stdout without breaking the progress bars (on stderr)."""
    # tqdm.write keeps progress bars intact; the flush lets a parent process read each line as it happens.
    tqdm.write(f"{label:<10}{text}", file=sys.stdout)
    sys.stdout.flush()


def _silent(label: str, text: str) -> None:
    """The reporter of ranks above 0: rank 0 speaks for the run."""


def cpu_copy(value: Any) -> Any:
    """``value`` (a state dict, possibly nested) with every tensor detached and copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_copy(v) for v in value)
    return value


@dataclass(kw_only=True)
class RunResult:
    """How far a run got: what the result record of every trainer holds (keyword-only, after its own fields).

    Attributes:
        epochs_done: Completed epochs.
        global_step: Completed optimisation steps.
        losses: The last averaged losses.
        resumed_from: ``(epoch, step within epoch)`` the run continued from, ``None`` for a fresh run.
        already_finished: ``resume`` found a finished run and did nothing.
    """

    epochs_done: int
    global_step: int
    losses: dict[str, float]
    resumed_from: tuple[int, int] | None = None
    already_finished: bool = False


# What every training state holds (and of what type), whichever trainer wrote it.
_STATE_KEYS: dict[str, type | tuple[type, ...]] = {
    "options": dict, "epoch": int, "step_in_epoch": int, "global_step": int, "elapsed_seconds": (int, float),
    "last_losses": dict, "loss_sums": dict, "log_bytes": int, "model": dict, "rng": dict,
}


@dataclass(frozen=True)
class StateFile:
    """One trainer's training-state file: its name, format tag, version and what it must hold.

    Attributes:
        name: File name in the run folder.
        format: The ``format`` tag the file carries.
        version: The newest version this code writes and reads.
        program: The command that writes it, for messages.
        noun: What a user resumes, as in "no saved training state to resume".
        new_run: The option that starts another run, as in "choose another --name".
        keys: Keys (and types) the state must hold besides those every training state holds.
        networks: Entries of ``model`` that must be weight dicts of finite values.
    """

    name: str
    format: str
    version: int
    program: str
    noun: str
    new_run: str
    keys: dict[str, type | tuple[type, ...]]
    networks: tuple[str, ...]

    def read(self, path: Path) -> dict[str, Any]:
        """Load a training state (``weights_only=True``: plain tensors and numbers only) and check it.

        Raises:
            TrainingError: the file is missing, damaged, not this trainer's state, or holds diverged weights.
        """
        if not path.is_file():
            raise TrainingError(f"{path.parent}: no saved {self.noun} to resume ({path.name} is missing); "
                                "start the run without --resume")
        damaged = f"it is damaged: start a new run with another {self.new_run}"
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # any failure to unpickle means the same thing to the user
            raise TrainingError(f"{path}: cannot read the {self.noun} ({type(exc).__name__}); {damaged}") from None
        if not isinstance(state, dict) or state.get("format") != self.format:
            raise TrainingError(f"{path}: not a {self.program} {self.noun}")
        if state.get("version", 0) > self.version:
            raise TrainingError(f"{path}: written by a newer {self.program} (state version {state['version']}); "
                                "upgrade")
        expected = {"options": dict, **self.keys, **_STATE_KEYS}  # in the order a damaged file is described
        missing = [key for key in expected if key not in state]
        wrong = [key for key, kind in expected.items() if key in state and not isinstance(state[key], kind)]
        if missing or wrong:
            what = "lacks " + ", ".join(missing) if missing else "has a malformed " + ", ".join(wrong)
            raise TrainingError(f"{path}: the {self.noun} {what}; {damaged}")
        for name in self.networks:
            weights = state["model"].get(name)
            if not isinstance(weights, dict):
                raise TrainingError(f"{path}: the {self.noun} holds no {name} weights; {damaged}")
            for key, tensor in weights.items():
                if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
                    raise TrainingError(f"{path}: {name}.{key} holds NaN or infinite values (training diverged); "
                                        f"resume from an earlier copy or start a new run with another {self.new_run}")
        return state


class BaseTrainer:
    """One training run: the loop, its counters and loss sums, the log, saving, resuming and torchrun.

    A subclass sets the class attributes and implements the hooks that raise ``NotImplementedError``; the others
    have defaults. :meth:`run` calls them in this order: :meth:`check_saved` (rank 0, when resuming),
    :meth:`check_inputs`, :meth:`setup`, :meth:`build_model` (after seeding), :meth:`restore_rank` (when resuming),
    :meth:`sample_inputs` (rank 0), then per epoch :meth:`epoch_batches` and per step :meth:`train_step`; at each
    save :meth:`rank_state`, :meth:`write_outputs` and :meth:`extra_state`; :meth:`sample_rows` after each epoch.

    The model :meth:`build_model` returns needs ``state_dict()``, ``load_state_dict(state)``, ``end_epoch()`` (the
    learning-rate schedules) and ``learning_rate``.

    Args:
        run_dir: Folder of the log, samples and training state.
        report: Receives ``(label, text)`` progress lines (rank 0 only).
        progress: Show a progress bar per epoch (rank 0 only).
        processes: This process's place under torchrun; one process alone by default.
    """

    #: The training-state file this trainer writes and resumes.
    state_file: ClassVar[StateFile]
    #: The options record of this trainer.
    options_class: ClassVar[type[RunOptions]]
    #: The names of the losses :meth:`train_step` returns, in its order.
    loss_names: ClassVar[tuple[str, ...]]
    #: Decimals of the losses in the log and the checkpoints' ``meta``.
    loss_decimals: ClassVar[int] = 5
    #: Decimals of the losses in the per-epoch report line.
    report_decimals: ClassVar[int] = 3

    def __init__(self, run_dir: Path, report: Reporter, progress: bool, processes: Processes | None = None):
        self.processes = processes or Processes.single()
        self.run_dir = run_dir
        self.report = report if self.processes.is_main else _silent
        self.progress = progress and self.processes.is_main
        self.state_path = run_dir / self.state_file.name
        self.log_path = run_dir / LOSSES_FILE
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.elapsed = 0.0
        self.last_losses: dict[str, float] = {}
        self.window_sum = torch.zeros(len(self.loss_names))
        self.window_count = 0
        self.epoch_sum = torch.zeros(len(self.loss_names))
        self.epoch_count = 0
        self.resumed_from: tuple[int, int] | None = None
        self.already_finished = False
        # The state being resumed, as rank 0 read it (``None`` on other ranks, and for a fresh run).
        self.saved_state: dict[str, Any] | None = None

    # ----------------------------------------------------------------------------------------- hooks

    def check_saved(self, state: dict[str, Any]) -> None:
        """Rank 0, resuming: refuse a saved state this session cannot continue (beyond its options)."""

    def check_inputs(self, state: dict[str, Any] | None) -> None:
        """Every rank, before anything is written: load and check the inputs (against ``state`` when resuming)."""

    def setup(self) -> None:
        """Load the data and report it; :attr:`device` and :attr:`options` are set."""
        raise NotImplementedError

    def build_model(self) -> Any:
        """Build (and report) the networks and optimisers, from torch's freshly seeded global generator."""
        raise NotImplementedError

    def restore_rank(self, own: dict[str, Any]) -> None:
        """Ranks above 0, resuming: restore what :meth:`rank_state` saved for this rank."""

    def steps_per_epoch(self) -> int:
        """Optimisation steps in one epoch."""
        raise NotImplementedError

    def epoch_batches(self, steps: int) -> Iterable[Any]:
        """The batches of steps ``step_in_epoch`` to ``steps - 1`` of epoch :attr:`epoch`."""
        raise NotImplementedError

    def train_step(self, batch: Any) -> torch.Tensor:
        """One optimisation step; the detached losses of the whole step (every rank's images), on the device."""
        raise NotImplementedError

    def sample_inputs(self) -> Any:
        """Rank 0: the fixed inputs of every epoch's sample grid."""
        raise NotImplementedError

    def sample_rows(self) -> list[list[np.ndarray]]:
        """Rank 0: the rows of the sample grid, each a list of HxWx3 uint8 images of one size."""
        raise NotImplementedError

    def rank_state(self) -> dict[str, Any]:
        """Ranks above 0: what differs from rank 0's state besides the random state (saved in ``ranks``)."""
        return {}

    def write_outputs(self, meta: dict[str, Any]) -> None:
        """Rank 0: write the run's model files with ``meta`` (before the training state, which commits them)."""
        raise NotImplementedError

    def extra_state(self, ranks: list[dict[str, Any]]) -> dict[str, Any]:
        """Rank 0: what this trainer's training state holds besides the engine's (``ranks``: ranks 1 and up)."""
        return {}

    def outputs(self) -> list[Path]:
        """The model files the run writes, for the last report line."""
        raise NotImplementedError

    def bar_losses(self, losses: dict[str, float]) -> dict[str, str]:
        """The losses the progress bar shows."""
        return {k: f"{v:.3f}" for k, v in losses.items()}

    def report_device(self, amp_dtype: torch.dtype | None, *extras: str) -> None:
        """Report the device, its mixed precision and ``extras`` (what else the trainer adds), and the seed."""
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        if amp_dtype is not None:
            extras = (f"mixed precision {str(amp_dtype).removeprefix('torch.')}", *extras)
        self.report("device", f"{self.device} ({name}){'; ' + ', '.join(extras) if extras else ''}; "
                              f"seed {self.options.seed}")

    # ----------------------------------------------------------------------------------------- the run

    def run(self, resume: bool, overrides: dict[str, Any]) -> None:
        """Start or resume the run and train it to its last epoch (or find it finished).

        Under torchrun this joins the process group first (unless the caller has) and leaves it at the end; a
        failing rank leaves without a goodbye: it exits, and torchrun stops the others and reports it.
        """
        joined = self.processes.start()
        self._run(resume, overrides)
        if joined:
            self.processes.stop()

    def outcome(self) -> dict[str, Any]:
        """The :class:`RunResult` fields of this run, after :meth:`run`."""
        return {"epochs_done": self.epoch, "global_step": self.global_step, "losses": self.last_losses,
                "resumed_from": self.resumed_from, "already_finished": self.already_finished}

    def _run(self, resume: bool, overrides: dict[str, Any]) -> None:
        processes = self.processes
        # Only rank 0 reads the run folder (on several machines it may exist on rank 0's alone); every rank then
        # starts from its decision, or stops with its refusal.
        options, resuming, finished = processes.decided_on_main(lambda: self._decide(resume, overrides))
        self.options = options
        state = self._share_state(self.saved_state) if resuming else None
        self.check_inputs(state)
        if finished is not None:
            self.epoch, self.global_step = int(finished["epoch"]), int(finished["global_step"])
            self.last_losses = dict(finished["last_losses"])
            self.already_finished = True
            self.report("finished", f"{self.run_dir} already completed {self.epoch} of {options.epochs} epochs; "
                                    "nothing to do")
            return
        self.device = processes.device_for(resolve_device(options.device))
        self.setup()
        seed_everything(options.seed)
        self.model = self.build_model()
        if self.device.type == "cuda":
            # Fixed input sizes: let cuDNN pick the fastest convolution algorithms once.
            torch.backends.cudnn.benchmark = True
        if state is not None:
            self._restore(state)
            self.resumed_from = (self.epoch, self.step_in_epoch)
            self.report("resumed", f"from epoch {self.epoch + 1} step {self.step_in_epoch} "
                                   f"(global step {self.global_step}) of {self.run_dir}")
        if processes.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.fixed = self.sample_inputs()
        self._loop()
        self.report("done", f"{options.epochs} epochs, {self.global_step} steps: "
                            + ", ".join(str(path) for path in self.outputs()))

    def _decide(self, resume: bool, overrides: dict[str, Any]) -> tuple[RunOptions, bool, dict[str, Any] | None]:
        """Rank 0 only: the options, whether a saved state (kept in ``saved_state``) is resumed, and for a finished
        run what :meth:`_run` reports of its state (else ``None``)."""
        processes = self.processes
        if processes.restart_count and not resume:
            # torchrun reran the command after a failure: continue what the failed attempt saved, if it saved.
            resume = self.state_path.exists()
            self.report("restart", f"torchrun restart {processes.restart_count}: "
                                   + ("resuming from the last save" if resume else "nothing was saved; starting over"))
        if resume:
            state = self.state_file.read(self.state_path)
            options = self._resumed_options(state, overrides)
            if state.get("finished"):
                # Only what the report needs: the whole state need not travel to every rank.
                return options, False, {key: state[key] for key in ("epoch", "global_step", "last_losses")}
            saved_world = int(state.get("world_size", 1))
            if saved_world != processes.world_size:
                raise TrainingError(
                    f"{self.run_dir} was trained by {saved_world} process(es) and this is {processes.world_size}: "
                    f"resume it with {saved_world} in all (torchrun --nnodes x --nproc-per-node), the data order "
                    "and random states are per process"
                )
            self.check_saved(state)
            self.saved_state = state
            return options, True, None
        if self.state_path.exists():
            raise TrainingError(f"{self.run_dir} already holds a run; pass --resume to continue it, or choose "
                                f"another {self.state_file.new_run}")
        options = self.options_class.from_overrides(**overrides)
        if options.seed is None:  # type: ignore[attr-defined]
            # A drawn seed is recorded like a given one, so even an unseeded run resumes exactly.
            options = options.replace(seed=random.SystemRandom().randrange(2**31))
        return options, False, None

    def _resumed_options(self, state: dict[str, Any], overrides: dict[str, Any]) -> RunOptions:
        saved = self.options_class.from_dict(state["options"])
        unknown = sorted(set(overrides) - set(saved.as_dict()))
        if unknown:
            raise TrainingError(f"unknown {saved.KIND} option(s): {', '.join(unknown)}")
        conflicts = [
            f"--{k.replace('_', '-')} {v} (saved: {getattr(saved, k)})"
            for k, v in overrides.items()
            if v is not None and k not in saved.RESUMABLE and v != getattr(saved, k)
        ]
        if conflicts:
            flags = [f"--{name.replace('_', '-')}" for name in sorted(saved.RESUMABLE)]
            raise TrainingError(
                f"{self.run_dir} was started with other options: {', '.join(conflicts)}; drop them to resume "
                f"(only {', '.join(flags[:-1])} and {flags[-1]} may change), or start a new run with another "
                f"{self.state_file.new_run}"
            )
        return saved.replace(**{k: v for k, v in overrides.items() if v is not None and k in saved.RESUMABLE})

    def _share_state(self, state: dict[str, Any] | None) -> dict[str, Any]:
        """Rank 0's saved state on every rank (``state`` is ``None`` elsewhere), each rank's own part (random
        state, :meth:`rank_state`) as ``own``."""
        processes = self.processes
        if not processes.distributed:
            return state  # type: ignore[return-value]
        if processes.is_main:
            own = processes.scatter([None, *state.pop("ranks")])
            processes.broadcast(state)
        else:
            own = processes.scatter(None)
            state = processes.broadcast(None)
        state["own"] = own
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:  # missing keys, size mismatch, bad optimiser
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise TrainingError(f"{self.state_path}: the {self.state_file.noun} does not fit the run's networks "
                                f"({first}); it is damaged or from another run: start a new one with another "
                                f"{self.state_file.new_run}") from None
        restore_global_rng(state["rng"])
        own = state.get("own")
        if own is not None:
            # Ranks above 0: their own random state (and parts) instead of rank 0's.
            restore_global_rng(own["rng"])
            self.restore_rank(own)
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        self.global_step, self.elapsed = int(state["global_step"]), float(state["elapsed_seconds"])
        self.last_losses = dict(state["last_losses"])
        sums = state["loss_sums"]
        self.window_sum, self.window_count = sums["window"].clone(), int(sums["window_count"])
        self.epoch_sum, self.epoch_count = sums["epoch"].clone(), int(sums["epoch_count"])
        saved_threads = state.get("threads")
        if self.device.type == "cpu" and saved_threads is not None and saved_threads != torch.get_num_threads():
            self.report("note", f"this run was trained with {saved_threads} CPU thread(s) and this session has "
                                f"{torch.get_num_threads()}: it continues correctly, but not bit for bit as it "
                                f"would have (pass --threads {saved_threads} for that)")
        # Lines logged after the save describe steps that will now be trained again: drop them.
        if (self.processes.is_main and self.log_path.exists()
                and self.log_path.stat().st_size > int(state["log_bytes"])):
            with open(self.log_path, "r+b") as log:
                log.truncate(int(state["log_bytes"]))

    # ----------------------------------------------------------------------------------------- training

    def _loop(self) -> None:
        options = self.options
        steps = self.steps_per_epoch()
        self.window_sum, self.epoch_sum = self.window_sum.to(self.device), self.epoch_sum.to(self.device)
        self.session_started, self.elapsed_before = time.perf_counter(), self.elapsed
        # A fresh run starts a fresh log: lines left by an attempt killed before its first save describe nothing kept.
        # Ranks above 0 write no log (os.devnull keeps the code paths the same).
        log_path = self.log_path if self.processes.is_main else os.devnull
        with open(log_path, "ab" if self.global_step else "wb") as self.log:
            while self.epoch < options.epochs:
                bar = tqdm(total=steps, initial=self.step_in_epoch, desc=f"epoch {self.epoch + 1}/{options.epochs}",
                           unit="it", disable=not self.progress, dynamic_ncols=True, mininterval=0.5, leave=False)
                with bar:
                    for batch in self.epoch_batches(steps):
                        self._count(self.train_step(batch), bar)
                        if (options.save_every and self.global_step % options.save_every == 0
                                and self.step_in_epoch < steps):
                            self._save()
                self._end_epoch()

    def _count(self, losses: torch.Tensor, bar: tqdm) -> None:
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
            bar.set_postfix(self.bar_losses(self.last_losses), refresh=False)
        elif self.progress and self.global_step % 10 == 0 and self.window_count:
            bar.set_postfix(self.bar_losses(self._as_dict(self.window_sum / self.window_count)), refresh=False)
        bar.update(1)

    def _end_epoch(self) -> None:
        lr = self.model.learning_rate
        averages = self._log("epoch", self.epoch_sum / max(1, self.epoch_count), lr=lr)
        self.last_losses = averages
        self.epoch_sum.zero_()
        self.epoch_count = 0
        self.model.end_epoch()
        self.epoch += 1
        self.step_in_epoch = 0
        if self.processes.is_main:
            grid = self._write_samples()
            text = "  ".join(f"{k} {v:.{self.report_decimals}f}" for k, v in averages.items())
            self.report(f"epoch {self.epoch}", f"{text}  lr {lr:.2e}  samples {grid.name}  "
                                               f"{self._elapsed_now():.0f} s")
        self._save()

    def _as_dict(self, values: torch.Tensor) -> dict[str, float]:
        return {name: round(float(v), self.loss_decimals)
                for name, v in zip(self.loss_names, values.tolist(), strict=True)}

    def _log(self, kind: str, averages: torch.Tensor, **extra: Any) -> dict[str, float]:
        values = self._as_dict(averages)
        record = {"kind": kind, "epoch": self.epoch + 1, "step": self.global_step, **values, **extra}
        if kind == "steps":
            record["lr"] = self.model.learning_rate
        self.log.write((json.dumps(record) + "\n").encode())
        return values

    def _write_samples(self) -> Path:
        rows = [_join(row, axis=1) for row in self.sample_rows()]
        path = self.run_dir / SAMPLES_FOLDER / f"epoch_{self.epoch:03d}.png"
        with atomic_output(path) as tmp:
            Image.fromarray(_join(rows, axis=0)).save(tmp, format="PNG")
        return path

    # ----------------------------------------------------------------------------------------- saving

    def _elapsed_now(self) -> float:
        """Training seconds of the whole run, over every session that resumed it."""
        return self.elapsed_before + time.perf_counter() - self.session_started

    def _save(self) -> None:
        # Every rank hands rank 0 what differs between ranks; rank 0 alone writes, and the others go on at once
        # (the next step's all-reduce waits for rank 0 to finish writing).
        processes = self.processes
        own: dict[str, Any] = {"rng": capture_global_rng()}
        if not processes.is_main:
            own.update(self.rank_state())
        parts = processes.gather(own)
        if not processes.is_main:
            return
        self.elapsed = self._elapsed_now()
        options = self.options
        self.log.flush()
        self.write_outputs({"epoch": self.epoch, "step": self.global_step, "losses": self.last_losses,
                            "options": options.as_dict(), "trainer": self.state_file.program})
        state = {
            "format": self.state_file.format,
            "version": self.state_file.version,
            "options": options.as_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "finished": self.epoch >= options.epochs,
            "elapsed_seconds": self.elapsed,
            "last_losses": self.last_losses,
            "loss_sums": {"window": self.window_sum.cpu(), "window_count": self.window_count,
                          "epoch": self.epoch_sum.cpu(), "epoch_count": self.epoch_count},
            "log_bytes": self.log.tell(),
            "model": self.model.state_dict(),
            "rng": own["rng"],
            "threads": torch.get_num_threads(),
            **self.extra_state(parts[1:]),
        }
        # The state goes last: it is the commit point, and the model files above are never older than it.
        with atomic_output(self.state_path) as tmp:
            torch.save(state, tmp)
        where = f"epoch {self.epoch + 1} step {self.step_in_epoch}"
        if not self.step_in_epoch:
            where = f"end of epoch {self.epoch}"
        self.report("saved", f"{where} (global step {self.global_step}) in {self.run_dir}")


def _join(images: list[np.ndarray], axis: int, gap: int = 2) -> np.ndarray:
    """Concatenate uint8 images along ``axis`` with white strips of ``gap`` pixels between them."""
    shape = list(images[0].shape)
    shape[axis] = gap
    strip = np.full(shape, 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for index, image in enumerate(images):
        parts += [strip, image] if index else [image]
    return np.concatenate(parts, axis=axis)
