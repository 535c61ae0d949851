"""Generator architectures, their registry, and loading/saving of every checkpoint format we accept."""

from cg_export.models import cut, mobile_resnet, resnet, ugatit, unet  # noqa: F401  (registers the architectures)
from cg_export.models.checkpoint import LoadedGenerator, describe_architecture, load_generator, save_generator
from cg_export.models.registry import create_generator, list_generators, register_generator

__all__ = [
    "LoadedGenerator",
    "describe_architecture",
    "create_generator",
    "list_generators",
    "load_generator",
    "register_generator",
    "save_generator",
]
