"""Training options: every default of ``cg-train`` lives here, in one place.

The defaults are the CycleGAN paper's and its reference code's (pytorch-CycleGAN-and-pix2pix, PyTorch-GAN):
200 epochs with a linear learning-rate decay to zero over the last 100, Adam(2e-4, 0.5, 0.999), LSGAN, cycle
weight 10, identity weight 5, a 50-image replay buffer, batch 1, 256x256 crops of images resized to 1.12x.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from cg_export.devices import DEFAULT_DEVICE
from training.discriminator import receptive_field, smallest_input
from training.errors import TrainingError, TrainingOptionError

#: The deepest discriminator ``--d-layers`` builds (286x286 patches, pix2pix's deepest named one).
MAX_D_LAYERS = 5
#: Options that may differ when a run is resumed: they change where and how fast it runs, not what it computes.
RESUMABLE_CHANGES = frozenset({"device", "save_every", "workers", "log_every"})

Options = TypeVar("Options", bound="RunOptions")


class RunOptions:
    """What the option records of every training command share: built from overrides, saved as a dict, replaced.

    Subclasses are frozen dataclasses with a ``decay_epoch`` that defaults to half of ``epochs``, and define
    :meth:`validate`, :attr:`KIND` (for messages) and :attr:`RESUMABLE` (the options a resumed run may change).
    """

    #: What the options configure, as in "unknown training option(s)".
    KIND: ClassVar[str] = "training"
    #: Options that may differ on resume: where and how often, not what is computed.
    RESUMABLE: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_overrides(cls: type[Options], **overrides: Any) -> Options:
        """Defaults with every non-``None`` override applied (how the CLI's unset options reach the library).

        Raises:
            TrainingError: an unknown option or an invalid value.
        """
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TrainingError(f"unknown {cls.KIND} option(s): {', '.join(unknown)}")
        options = cls(**{k: v for k, v in overrides.items() if v is not None})
        if options.decay_epoch is None:  # type: ignore[attr-defined]
            options = dataclasses.replace(options, decay_epoch=options.epochs // 2)  # type: ignore[attr-defined]
        options.validate()
        return options

    @classmethod
    def from_dict(cls: type[Options], values: dict[str, Any]) -> Options:
        """Rebuild options saved by :meth:`as_dict` (unknown keys from newer versions are an error)."""
        return cls.from_overrides(**values)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every option."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def replace(self: Options, **changes: Any) -> Options:
        """A copy with ``changes`` applied and validated."""
        options = dataclasses.replace(self, **changes)  # type: ignore[type-var]
        options.validate()
        return options

    def validate(self) -> None:
        """Check every value.

        Raises:
            TrainingError: naming the first bad option and what it accepts.
        """
        raise NotImplementedError


@dataclass(frozen=True)
class TrainOptions(RunOptions):
    """What a CycleGAN run trains and how. Field names are the library's and the CLI's (``--decay-epoch``).

    Attributes:
        epochs: Total epochs; the learning rate reaches zero at the end of the last one.
        decay_epoch: Epoch (0-based) from which the learning rate decays linearly to zero at ``epochs``;
            ``decay_epoch == epochs`` keeps it constant. ``None`` is half of ``epochs`` (100 of the paper's 200).
        image_size: Side of the square training crops (images are first resized so the shorter side is
            ``int(1.12 * image_size)``, as both reference implementations do).
        batch_size: Images per domain per step.
        arch: Generator registry name (``resnet_9blocks``, ``resnet_upsample``, ``resnet_6blocks``, ``unet_256`` ...).
        n_blocks: Residual blocks of a ResNet generator; ``None`` keeps the architecture's own count.
        ngf: Width of the generator's first layer; ``None`` keeps the architecture's default (64).
        ndf: Width of the PatchGAN discriminators' first layer.
        d_layers: Stride-2 stages of the PatchGAN discriminators: 3 (the paper's) judges 70x70 patches, 2 judges
            34x34 and 1 16x16 (pix2pix's ``--n_layers_D``). On crops not much larger than 70 px the default judges
            the whole crop at once; fewer layers judge local texture and edges.
        lr: Adam learning rate of generators and discriminators.
        beta1: Adam's first-moment decay.
        beta2: Adam's second-moment decay.
        lambda_cyc: Weight of the L1 cycle-consistency loss (each direction).
        lambda_id: Weight of the L1 identity loss (each direction), an absolute weight as in PyTorch-GAN's
            ``lambda_id``. pytorch-CycleGAN-and-pix2pix writes the same thing as ``lambda_identity * lambda_A``
            (0.5 x 10 = 5). 0 turns the identity loss off and skips its two generator passes.
        pool_size: Fakes remembered per direction by the replay buffer; 0 turns it off.
        device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: Mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling).
        channels_last: NHWC memory format on CUDA (faster convolutions on tensor cores).
        seed: Seed of every random choice; ``None`` draws one and records it, so the run can still be resumed exactly.
        save_every: Also save the training state every this many steps (the state is always saved every epoch).
        workers: Image-decoding worker processes; ``None`` uses 0 on the CPU (training needs the cores) and up to
            4 on CUDA. The data order and augmentation do not depend on it.
        log_every: Write averaged losses to ``losses.jsonl`` every this many steps (and once per epoch).
        samples: Images per domain in each epoch's sample grid.
    """

    epochs: int = 200
    decay_epoch: int | None = None
    image_size: int = 256
    batch_size: int = 1
    arch: str = "resnet_9blocks"
    n_blocks: int | None = None
    ngf: int | None = None
    ndf: int = 64
    d_layers: int = 3
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_cyc: float = 10.0
    lambda_id: float = 5.0
    pool_size: int = 50
    device: str = DEFAULT_DEVICE
    amp: bool = False
    channels_last: bool = False
    seed: int | None = None
    save_every: int | None = None
    workers: int | None = None
    log_every: int = 100
    samples: int = 3

    RESUMABLE: ClassVar[frozenset[str]] = RESUMABLE_CHANGES

    def validate(self) -> None:
        """Check every value.

        Raises:
            TrainingOptionError: naming the first bad option (its field) and what it accepts.
        """
        positive = {"epochs": self.epochs, "image_size": self.image_size, "batch_size": self.batch_size,
                    "ndf": self.ndf, "d_layers": self.d_layers, "log_every": self.log_every, "samples": self.samples}
        for name, value in positive.items():
            if int(value) != value or value < 1:
                raise TrainingOptionError(name, repr(value), "must be a positive whole number")
        for name, value in {"ngf": self.ngf, "save_every": self.save_every}.items():
            if value is not None and (int(value) != value or value < 1):
                raise TrainingOptionError(name, repr(value), "must be a positive whole number")
        for name, value in {"n_blocks": self.n_blocks, "workers": self.workers, "pool_size": self.pool_size}.items():
            if value is not None and (int(value) != value or value < 0):
                raise TrainingOptionError(name, repr(value), "must be zero or a positive whole number")
        if self.decay_epoch is None or not 0 <= self.decay_epoch <= self.epochs:
            raise TrainingOptionError(
                "decay_epoch", self.decay_epoch, f"must lie between 0 and {{epochs}} {self.epochs} "
                "(the learning rate decays linearly from it to zero at {epochs})"
            )
        if not self.lr > 0:
            raise TrainingOptionError("lr", repr(self.lr), "must be positive")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise TrainingError("Adam betas must lie in [0, 1)")
        for name in ("lambda_cyc", "lambda_id"):
            if getattr(self, name) < 0:
                raise TrainingOptionError(name, getattr(self, name), "must not be negative")
        if self.d_layers > MAX_D_LAYERS:
            raise TrainingOptionError("d_layers", self.d_layers, f"at most {MAX_D_LAYERS} (judges "
                                      f"{receptive_field(MAX_D_LAYERS)}x{receptive_field(MAX_D_LAYERS)} patches)")
        if self.image_size < smallest_input(self.d_layers):
            # Each stride-2 stage halves the crop and the two last 4x4 convolutions take 2 px more, so a smaller
            # crop leaves the PatchGAN no output, or a single value.
            field = receptive_field(self.d_layers)
            raise TrainingOptionError("image_size", self.image_size, f"too small: the {field}x{field} PatchGAN "
                                      f"({{d_layers}} {self.d_layers}) needs {smallest_input(self.d_layers)} or more")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise TrainingOptionError("seed", self.seed, "must lie in [0, 2**63)")
