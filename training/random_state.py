"""Every random state a training run depends on, captured as tensors and plain numbers.

A saved training state must load with ``torch.load(..., weights_only=True)``, which refuses arbitrary Python
objects, so NumPy arrays and Python's ``random`` tuples are stored as tensors and rebuilt on load.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def python_random_state(rng: random.Random | None = None) -> dict[str, Any]:
    """A ``random.Random`` state (the module's own when ``rng`` is ``None``) as a tensor and plain numbers."""
    version, internal, gauss = (rng or random).getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def restore_python_random(rng: random.Random | None, state: dict[str, Any]) -> None:
    """Inverse of :func:`python_random_state` (``rng`` ``None`` restores the ``random`` module's generator)."""
    (rng or random).setstate((int(state["version"]), tuple(state["internal"].tolist()), state["gauss"]))


def capture_global_rng() -> dict[str, Any]:
    """The global generators of Python, NumPy, torch's CPU and every visible CUDA device."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": python_random_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_global_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_global_rng`. CUDA states are restored only for devices that exist now."""
    restore_python_random(None, state["python"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available():
        for device, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, device)
