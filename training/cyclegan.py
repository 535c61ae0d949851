"""CycleGAN itself: two generators, two PatchGAN discriminators, their optimisers and one training step.

Naming: ``G_AB`` translates domain A to B and ``G_BA`` back; ``D_A`` judges whether an image is a real A and
``D_B`` whether it is a real B (PyTorch-GAN's names; pytorch-CycleGAN-and-pix2pix calls them G_A, G_B, D_B, D_A).

One step, as in the reference code:

1. generators: ``fake_B = G_AB(A)``, ``fake_A = G_BA(B)``, cycles ``G_BA(fake_B)`` and ``G_AB(fake_A)``;
   loss = LSGAN(D_B(fake_B), 1) + LSGAN(D_A(fake_A), 1)
   + lambda_cyc * (|G_BA(fake_B) - A| + |G_AB(fake_A) - B|)
   + lambda_id * (|G_BA(A) - A| + |G_AB(B) - B|); one Adam step for both generators.
2. discriminators, each on its real images and on a fake drawn through its replay buffer:
   0.5 * (LSGAN(D(real), 1) + LSGAN(D(fake), 0)); one Adam step for both.

LSGAN is the mean squared error to the target label. L1 losses are means over pixels. ``lambda_id`` is an absolute
weight (PyTorch-GAN's ``lambda_id``); the default 5 equals pytorch-CycleGAN-and-pix2pix's
``lambda_identity * lambda_A`` = 0.5 x 10.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cg_export.models import create_generator
from cg_export.models.init import init_weights
from training.discriminator import PatchDiscriminator, lsgan_loss
from training.engine import cpu_copy
from training.errors import TrainingOptionError
from training.options import TrainOptions
from training.precision import amp_dtype, autocast, loss_scaler
from training.replay_buffer import ReplayBuffer

#: The per-step losses, in the order :meth:`CycleGAN.train_step` returns them.
LOSS_NAMES = ("G", "G_adv", "cycle", "identity", "D_A", "D_B")


class LinearDecay:
    """Learning-rate factor: 1 until ``decay_epoch``, then linearly down to 0 at ``epochs``.

    A class rather than a lambda so ``LambdaLR.state_dict()`` records its numbers.
    """

    def __init__(self, epochs: int, decay_epoch: int):
        self.epochs = epochs
        self.decay_epoch = decay_epoch

    def __call__(self, epoch: int) -> float:
        if self.epochs == self.decay_epoch:
            return 1.0
        return max(0.0, 1.0 - max(0, epoch - self.decay_epoch) / (self.epochs - self.decay_epoch))


def generator_kwargs(options: TrainOptions) -> dict[str, Any]:
    """Registry arguments of the generator the options ask for (unset ones keep the architecture's defaults)."""
    return {k: v for k, v in {"ngf": options.ngf, "n_blocks": options.n_blocks}.items() if v is not None}


class CycleGAN:
    """The four networks, two optimisers, two schedulers, two replay buffers and the AMP loss scaler.

    Weights are initialised N(0, 0.02) from torch's global generator: seed it first for a reproducible run.

    Args:
        options: What to build (architecture, widths, learning rate, loss weights, AMP, channels_last ...).
        device: Where to train.

    Raises:
        ArchitectureError: the generator options do not fit the architecture.
        TrainingError: the image size does not fit the generator.
    """

    def __init__(self, options: TrainOptions, device: torch.device):
        self.options = options
        self.device = device
        self.G_AB = init_weights(create_generator(options.arch, **generator_kwargs(options)))
        self.G_BA = init_weights(create_generator(options.arch, **generator_kwargs(options)))
        multiple = int(getattr(self.G_AB, "size_multiple", 1))
        if options.image_size % multiple:
            raise TrainingOptionError("image_size", options.image_size,
                                      f"does not fit {options.arch}: it must be a multiple of {multiple}")
        self.D_A = init_weights(PatchDiscriminator(ndf=options.ndf, n_layers=options.d_layers))
        self.D_B = init_weights(PatchDiscriminator(ndf=options.ndf, n_layers=options.d_layers))
        cuda = device.type == "cuda"
        self.memory_format = torch.channels_last if cuda and options.channels_last else torch.contiguous_format
        for net in self.networks.values():
            net.to(device=device, memory_format=self.memory_format).train()
        self.amp_dtype = amp_dtype(device, options.amp)
        betas = (options.beta1, options.beta2)
        self.optimizer_G = torch.optim.Adam(
            itertools.chain(self.G_AB.parameters(), self.G_BA.parameters()), lr=options.lr, betas=betas
        )
        self.optimizer_D = torch.optim.Adam(
            itertools.chain(self.D_A.parameters(), self.D_B.parameters()), lr=options.lr, betas=betas
        )
        decay = LinearDecay(options.epochs, options.decay_epoch)
        self.scheduler_G = torch.optim.lr_scheduler.LambdaLR(self.optimizer_G, decay)
        self.scheduler_D = torch.optim.lr_scheduler.LambdaLR(self.optimizer_D, decay)
        seed = options.seed or 0
        # Fakes of domain A (from G_BA) feed D_A; fakes of B feed D_B.
        self.pool_A = ReplayBuffer(options.pool_size, seed=seed + 1)
        self.pool_B = ReplayBuffer(options.pool_size, seed=seed + 2)
        self.scaler = loss_scaler(self.amp_dtype)

    @property
    def networks(self) -> dict[str, nn.Module]:
        """The four networks by name."""
        return {"G_AB": self.G_AB, "G_BA": self.G_BA, "D_A": self.D_A, "D_B": self.D_B}

    @property
    def learning_rate(self) -> float:
        """The generators' current learning rate."""
        return float(self.optimizer_G.param_groups[0]["lr"])

    def prepare(self, images: Tensor) -> Tensor:
        """Move a batch to the training device and memory format."""
        return images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def train_step(self, real_A: Tensor, real_B: Tensor) -> Tensor:
        """One optimisation step of generators then discriminators.

        Args:
            real_A: Batch of domain A, float32 NCHW in [-1, 1], on the training device.
            real_B: Batch of domain B, same size.

        Returns:
            The detached losses in :data:`LOSS_NAMES` order, float32 on the training device (no host sync).
        """
        options = self.options
        for net in (self.D_A, self.D_B):
            net.requires_grad_(False)
        with autocast(self.device, self.amp_dtype):
            fake_B = self.G_AB(real_A)
            fake_A = self.G_BA(real_B)
            loss_adv = lsgan_loss(self.D_B(fake_B), True) + lsgan_loss(self.D_A(fake_A), True)
            loss_cycle = F.l1_loss(self.G_BA(fake_B), real_A) + F.l1_loss(self.G_AB(fake_A), real_B)
            if options.lambda_id > 0:
                loss_identity = F.l1_loss(self.G_BA(real_A), real_A) + F.l1_loss(self.G_AB(real_B), real_B)
            else:
                loss_identity = torch.zeros((), device=self.device)
            loss_G = loss_adv + options.lambda_cyc * loss_cycle + options.lambda_id * loss_identity
        self.optimizer_G.zero_grad(set_to_none=True)
        self.scaler.scale(loss_G).backward()
        self.scaler.step(self.optimizer_G)

        for net in (self.D_A, self.D_B):
            net.requires_grad_(True)
        pooled_A = self.pool_A.push_and_pop(fake_A)
        pooled_B = self.pool_B.push_and_pop(fake_B)
        with autocast(self.device, self.amp_dtype):
            loss_D_A = 0.5 * (lsgan_loss(self.D_A(real_A), True) + lsgan_loss(self.D_A(pooled_A), False))
            loss_D_B = 0.5 * (lsgan_loss(self.D_B(real_B), True) + lsgan_loss(self.D_B(pooled_B), False))
        self.optimizer_D.zero_grad(set_to_none=True)
        self.scaler.scale(loss_D_A + loss_D_B).backward()
        self.scaler.step(self.optimizer_D)
        self.scaler.update()
        return torch.stack([loss_G, loss_adv, loss_cycle, loss_identity, loss_D_A, loss_D_B]).detach().float()

    def end_epoch(self) -> None:
        """Advance both learning-rate schedules by one epoch."""
        self.scheduler_G.step()
        self.scheduler_D.step()

    @torch.no_grad()
    def translate(self, images: Tensor, direction: str) -> Tensor:
        """``G_AB`` (``direction="AB"``) or ``G_BA`` applied in eval mode, float32 on the CPU."""
        generator = self.G_AB if direction == "AB" else self.G_BA
        was_training = generator.training
        generator.eval()
        try:
            return generator(self.prepare(images)).float().cpu()
        finally:
            generator.train(was_training)

    def state_dict(self) -> dict[str, Any]:
        """Everything that evolves while training, as tensors and plain numbers (CPU tensors)."""
        state: dict[str, Any] = {name: cpu_copy(net.state_dict()) for name, net in self.networks.items()}
        state.update({
            "optimizer_G": cpu_copy(self.optimizer_G.state_dict()),
            "optimizer_D": cpu_copy(self.optimizer_D.state_dict()),
            "scheduler_G": self.scheduler_G.state_dict(),
            "scheduler_D": self.scheduler_D.state_dict(),
            "pool_A": self.pool_A.state_dict(),
            "pool_B": self.pool_B.state_dict(),
            "scaler": self.scaler.state_dict(),
        })
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (possibly saved on another device)."""
        for name, net in self.networks.items():
            net.load_state_dict(state[name])
        # Optimizer.load_state_dict moves the moments to each parameter's device itself.
        self.optimizer_G.load_state_dict(state["optimizer_G"])
        self.optimizer_D.load_state_dict(state["optimizer_D"])
        self.scheduler_G.load_state_dict(state["scheduler_G"])
        self.scheduler_D.load_state_dict(state["scheduler_D"])
        self.pool_A.load_state_dict(state["pool_A"], self.device)
        self.pool_B.load_state_dict(state["pool_B"], self.device)
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])

