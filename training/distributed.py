"""Data-parallel training under ``torchrun``: the processes, their devices, and gradients averaged exactly.

``torchrun`` (PyTorch's launcher, ``python -m torch.distributed.run``) starts one process per device and tells each
its place through the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``TORCHELASTIC_RESTART_COUNT``, and
``MASTER_ADDR``/``MASTER_PORT`` for the rendezvous). :meth:`Processes.from_environment` reads it; without torchrun
(or with a single process) it is :meth:`Processes.single` and nothing here talks to anyone: training is exactly what
it is without this module.

Why gradients are averaged by hand rather than by ``DistributedDataParallel``: one CycleGAN step calls each
generator up to three times (translation, cycle, identity) before a single backward pass, and runs both
discriminators, frozen, inside the generator loss, then again, trainable, in their own step. DDP's reducer
assumes one forward per backward and a fixed set of parameters that receive gradients; meeting it here takes
``find_unused_parameters`` or ``static_graph`` tricks whose correctness depends on DDP internals. Instead
:class:`GradientAveragingScaler` all-reduces each optimiser's complete gradients once, right before that optimiser
steps: after ``loss_G.backward()`` the generators' gradients (the frozen discriminators have none), after the
discriminator backward the discriminators'. Every rank then applies the same averaged gradients from the same
weights, so the weights stay identical on every rank without further communication. Each rank's gradients are
weighted by its share of the step's images, so the average is the gradient of the loss over the whole step's
batch (every loss is a mean over images, and InstanceNorm is per image): two ranks of batch 1 compute what one
process of batch 2 computes, up to float rounding. The cost is that communication does not overlap the backward
pass as DDP's buckets would; one flat all-reduce per optimiser step keeps it to two messages per step.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from cg_export.errors import CgExportError
from training.errors import TrainingError

T = TypeVar("T")

#: How long a rank waits for the others in one collective (rank 0 writing a large save, say) before giving up.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes.

    Attributes:
        rank: 0 to ``world_size - 1``; rank 0 writes every file and every line of output.
        world_size: Processes training together.
        local_rank: Index among the processes of this machine: the CUDA device this process trains on.
        restart_count: How often torchrun has restarted the job (``--max-restarts``); 0 on the first attempt.
        machines: Machines (torchrun agents) in the job.
        max_restarts: torchrun's ``--max-restarts``.
        agent_store: The processes share the key-value store of torchrun's agent (the default since PyTorch 2.5;
            ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` gives every attempt a store of its own instead).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    restart_count: int = 0
    machines: int = 1
    max_restarts: int = 0
    agent_store: bool = False

    @classmethod
    def single(cls) -> Processes:
        """One process on its own (no torchrun)."""
        return cls()

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Processes:
        """Read torchrun's variables; :meth:`single` when they are absent.

        Raises:
            TrainingError: the variables are set but inconsistent.
        """
        env = os.environ if environ is None else environ
        if "WORLD_SIZE" not in env or "RANK" not in env:
            return cls.single()
        try:
            rank, world_size = int(env["RANK"]), int(env["WORLD_SIZE"])
            local_rank = int(env.get("LOCAL_RANK", rank))
            restart_count = int(env.get("TORCHELASTIC_RESTART_COUNT", 0))
            machines = int(env.get("GROUP_WORLD_SIZE", 1))
            max_restarts = int(env.get("TORCHELASTIC_MAX_RESTARTS", 0))
        except ValueError:
            raise TrainingError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets them)") from None
        if not 0 <= rank < world_size:
            raise TrainingError(f"RANK {rank} does not lie in [0, WORLD_SIZE {world_size})")
        agent_store = env.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
        return cls(rank, world_size, local_rank, restart_count, machines, max_restarts, agent_store)

    @property
    def distributed(self) -> bool:
        """More than one process: collectives are needed."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0, the one that writes."""
        return self.rank == 0

    # ----------------------------------------------------------------------------------------- lifetime

    def start(self) -> bool:
        """Join the process group (a no-op for one process or when the caller has joined it already).

        The group gets Gloo for CPU tensors and, where CUDA and NCCL exist, NCCL for CUDA tensors: PyTorch picks
        the backend by each tensor's device, so the device need not be known yet (a resumed run learns it from
        rank 0). Objects (options, saved states) always travel over Gloo.

        Returns:
            Whether this call joined the group (and :meth:`stop` should leave it).
        """
        if not self.distributed or dist.is_initialized():
            return False
        backend = "gloo"
        if torch.cuda.is_available() and dist.is_nccl_available():
            backend = "cpu:gloo,cuda:nccl"
        store, _, _ = next(dist.rendezvous("env://", timeout=COLLECTIVE_TIMEOUT))
        if self.agent_store:
            # torchrun's agent keeps one key-value store for the whole job and hands it to every attempt, so keys
            # the processes of a killed attempt wrote (their addresses) are still there when the restarted ones
            # connect, and a restarted rank may dial a dead peer's old port (pytorch/pytorch#135712; seen here on
            # one machine in most restarts). A prefix per restart keeps each attempt to its own keys. The
            # restart count is the same for every process of one agent; agents on different machines can count
            # differently, hence :attr:`restart_caveat`.
            store = dist.PrefixStore(f"cg-train/attempt-{self.restart_count}", store)
        dist.init_process_group(backend, store=store, rank=self.rank, world_size=self.world_size,
                                timeout=COLLECTIVE_TIMEOUT)
        return True

    @property
    def restart_caveat(self) -> str | None:
        """What to change for restarts to work, when the launch is one where they may not."""
        if self.agent_store and self.machines > 1 and self.max_restarts > 0:
            return ("restarts on several machines need a store per attempt: run torchrun with "
                    "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment on every machine")
        return None

    def stop(self) -> None:
        """Leave the process group."""
        if dist.is_initialized():
            dist.destroy_process_group()

    def device_for(self, device: torch.device) -> torch.device:
        """The device this rank trains on, given the one the options resolved to: CUDA device ``LOCAL_RANK``.

        Raises:
            TrainingError: ``cuda:N`` with several processes per machine, or fewer GPUs than local processes.
        """
        if device.type != "cuda" or not self.distributed:
            return device
        if device.index is not None:
            raise TrainingError(f"--device {device} names one GPU, but under torchrun each process trains on "
                                "cuda:LOCAL_RANK; pass --device cuda (or auto)")
        if self.local_rank >= torch.cuda.device_count():
            raise TrainingError(f"this is local rank {self.local_rank} but only {torch.cuda.device_count()} GPU(s) "
                                "are visible: start at most that many processes per machine (--nproc-per-node)")
        device = torch.device("cuda", self.local_rank)
        torch.cuda.set_device(device)
        return device

    # ----------------------------------------------------------------------------------------- collectives

    def decided_on_main(self, decide: Callable[[], T]) -> T:
        """Run ``decide`` on rank 0 only and hand every rank its result, or its error.

        Used for what only rank 0 may do (reading the run folder, drawing a seed) so that every rank starts from
        the same decision, and a refusal (``CgExportError``) ends every rank with the same one line.
        """
        if not self.distributed:
            return decide()
        payload: list[Any] = [None]
        error: CgExportError | None = None
        if self.is_main:
            try:
                payload = [("result", decide())]
            except CgExportError as exc:
                error = exc
                payload = [("error", type(exc), str(exc))]
        dist.broadcast_object_list(payload, src=0)
        if payload[0][0] == "error":
            if error is not None:
                raise error
            raise payload[0][1](payload[0][2])
        return payload[0][1]

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank."""
        if not self.distributed:
            return value
        payload = [value]
        dist.broadcast_object_list(payload, src=0)
        return payload[0]

    def scatter(self, values: list[Any] | None) -> Any:
        """Rank ``r`` receives ``values[r]`` of rank 0's list (the other ranks pass ``None``)."""
        if not self.distributed:
            return values[0] if values else None
        received: list[Any] = [None]
        dist.scatter_object_list(received, values if self.is_main else None, src=0)
        return received[0]

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` in rank order on rank 0; ``None`` on the other ranks."""
        if not self.distributed:
            return [value]
        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, gathered, dst=0)
        return gathered

    def all_gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` in rank order, on every rank."""
        if not self.distributed:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def weighted_sum(self, values: Tensor, weight: float) -> Tensor:
        """``sum over ranks of weight_r * values_r``, the same on every rank (``values`` itself unchanged).

        With each rank's share of the step's images as its weight, per-rank mean losses become the mean over the
        whole step's images.
        """
        if not self.distributed:
            return values
        total = values * weight
        dist.all_reduce(total)
        return total

    def average_gradients(self, parameters: Iterable[Tensor], weight: float) -> None:
        """Replace every gradient by ``sum over ranks of weight_r * grad_r``, in one all-reduce per dtype.

        Raises:
            RuntimeError: a parameter without a gradient (each rank would flatten a different set).
        """
        if not self.distributed:
            return
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for parameter in parameters:
            if parameter.grad is None:
                raise RuntimeError("a trained parameter got no gradient this step; every rank must reduce the same "
                                   "set of gradients")
            by_dtype.setdefault(parameter.grad.dtype, []).append(parameter.grad)
        for grads in by_dtype.values():
            flat = torch.cat([g.reshape(-1) for g in grads]).mul_(weight)
            dist.all_reduce(flat)
            for grad, chunk in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
                grad.copy_(chunk.view_as(grad))

    def broadcast_tensors(self, tensors: Iterable[Tensor]) -> None:
        """Overwrite ``tensors`` with rank 0's values, in place."""
        if not self.distributed:
            return
        for tensor in tensors:
            dist.broadcast(tensor.data, src=0)


class GradientAveragingScaler(torch.amp.GradScaler):
    """A ``GradScaler`` whose ``step(optimizer)`` first averages that optimiser's gradients over the ranks.

    ``CycleGAN.train_step`` hands each optimiser to ``scaler.step`` right after the backward pass that completes its
    gradients, and nowhere else: that is the one moment when the gradients of exactly that optimiser's parameters
    are final and not yet used, so the all-reduce happens there. It comes before the scaler's own infinity check, so
    with float16 loss scaling every rank sees the same averaged (still scaled) gradients, finds the same infinities
    and skips or takes the same step.

    Args:
        processes: The ranks to average over.
        enabled: Loss scaling on (float16 AMP), as the scaler it replaces.

    Attributes:
        weight: This rank's share of the current step's images; set before every step.
    """

    def __init__(self, processes: Processes, enabled: bool):
        super().__init__("cuda", enabled=enabled)
        self.processes = processes
        self.weight = 1.0 / processes.world_size

    def step(self, optimizer: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> float | None:
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        self.processes.average_gradients(parameters, self.weight)
        return super().step(optimizer, *args, **kwargs)


def make_data_parallel(model: Any, processes: Processes) -> None:
    """Prepare a :class:`~training.cyclegan.CycleGAN` for training on ``processes`` (nothing for one process).

    * its scaler becomes a :class:`GradientAveragingScaler`;
    * ranks above 0 get their own replay-buffer seeds and their own global random stream (rank 0 keeps the
      single-process ones), so their replay choices and any dropout masks are independent draws;
    * every network's weights are set to rank 0's (they are equal already when every rank seeded alike; this
      makes it a fact rather than an assumption, as DDP does).
    """
    if not processes.distributed:
        return
    model.scaler = GradientAveragingScaler(processes, enabled=model.scaler.is_enabled())
    rank = processes.rank
    if rank:
        seed = model.options.seed or 0
        model.pool_A.rng.seed(seed + 1 + 2 * rank)
        model.pool_B.rng.seed(seed + 2 + 2 * rank)
        torch.manual_seed(int(np.random.default_rng([seed, rank]).integers(2**63)))
    for net in model.networks.values():
        processes.broadcast_tensors(net.state_dict().values())
