"""Generator registry: every architecture is built by name, with its defaults in one place.

A generator module exposes ``config``: a JSON-serialisable dict ``{"name": ..., **kwargs}`` such that
``create_generator(**config)`` rebuilds the same architecture. That dict is what checkpoints and ONNX
metadata record, so a file always says how to rebuild the network that produced it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from cg_export.errors import ArchitectureError
from cg_export.models.safety import check_parameter_count, planned_generator

GeneratorFactory = Callable[..., nn.Module]

_REGISTRY: dict[str, GeneratorFactory] = {}


def register_generator(name: str) -> Callable[[GeneratorFactory], GeneratorFactory]:
    """Register a factory under ``name`` so ``create_generator(name, ...)`` can build it.

    Args:
        name: Registry name, e.g. ``"resnet_9blocks"``.

    Returns:
        A decorator that registers and returns the factory unchanged.
    """

    def decorate(factory: GeneratorFactory) -> GeneratorFactory:
        if name in _REGISTRY:
            raise ValueError(f"generator {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorate


def list_generators() -> list[str]:
    """Names of every registered generator architecture, sorted."""
    return sorted(_REGISTRY)


def create_generator(name: str, **kwargs: Any) -> nn.Module:
    """Build a generator by registry name.

    Args:
        name: A name from :func:`list_generators`.
        **kwargs: Architecture arguments (``ngf``, ``n_blocks``, ``in_channels`` ...) overriding the defaults.

    Returns:
        The generator, in eval mode, with a ``config`` attribute that rebuilds it.

    Raises:
        ArchitectureError: the name is unknown, the arguments do not fit the architecture, or the network would
            be absurdly large (:data:`cg_export.models.safety.MAX_PARAMETERS`).
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ArchitectureError(
            f"unknown architecture {name!r}; choose one of: {', '.join(list_generators())}"
        ) from None
    try:
        # Planned on the meta device first (shapes, no storage), so an absurd ngf is refused, not allocated.
        planned = planned_generator(factory, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ArchitectureError(f"bad arguments for architecture {name!r}: {exc}") from None
    check_parameter_count(name, planned, kwargs)
    model = factory(**kwargs)
    return model.eval()
