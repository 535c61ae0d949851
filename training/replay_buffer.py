"""The replay buffer ("image pool") of CycleGAN (Shrivastava et al. 2017): discriminators see older fakes too.

Until it holds ``size`` images the buffer stores every fake and returns it. Once full, each new fake is, with
probability 0.5, swapped for a random stored one (which is returned instead), else returned as it is. This damps
the oscillation between generator and discriminator. Each buffer owns its random generator, so its choices are
reproducible and part of the saved training state.
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import Tensor

from training.random_state import python_random_state, restore_python_random


class ReplayBuffer:
    """A pool of up to ``size`` past fakes, one image per entry.

    Args:
        size: Images remembered; 0 disables the buffer (fakes pass straight through).
        seed: Seed of the buffer's own random choices.
    """

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.images: list[Tensor] = []
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.images)

    def push_and_pop(self, fakes: Tensor) -> Tensor:
        """Store the batch ``fakes`` (N, C, H, W) and return a batch of the same shape for the discriminator.

        The returned tensor is detached: the discriminator step must not reach back into the generators.
        """
        fakes = fakes.detach()
        if self.size == 0:
            return fakes
        returned = []
        for image in fakes.unbind(0):
            image = image.clone()
            if len(self.images) < self.size:
                self.images.append(image)
                returned.append(image)
            elif self.rng.random() < 0.5:
                slot = self.rng.randrange(self.size)
                returned.append(self.images[slot])
                self.images[slot] = image
            else:
                returned.append(image)
        return torch.stack(returned)

    def state_dict(self) -> dict[str, Any]:
        """Contents and random state as tensors and plain numbers (loadable with ``weights_only=True``)."""
        images = torch.stack([i.cpu() for i in self.images]) if self.images else torch.empty(0)
        return {"size": self.size, "images": images, "rng": python_random_state(self.rng)}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        """Restore what :meth:`state_dict` returned, moving the stored images to ``device``."""
        self.size = int(state["size"])
        self.images = [i.to(device) for i in state["images"].unbind(0)] if state["images"].numel() else []
        restore_python_random(self.rng, state["rng"])

