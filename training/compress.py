"""``cg-compress``: distil a CycleGAN generator (the teacher) into a small mobile ResNet student.

The recipe is GAN Compression's (Li et al., CVPR 2020) without its supernet search: the teacher turns photographs
of its input domain into targets, so distillation is paired training on unpaired data. The student minimises

* ``lambda_recon`` x L1(student(x), teacher(x)) (reconstruction of the teacher's output);
* ``lambda_distill`` x the sum over a few trunk positions of MSE(mapping(student feature), teacher feature), each
  mapping a learned 1x1 convolution from the student's width to the teacher's (feature distillation);
* with ``discriminator`` given, ``lambda_gan`` x LSGAN(D(student(x)), real); D starts from the teacher's
  discriminator and keeps learning to tell the teacher's outputs (real) from the student's (fake).

Defaults are those of GAN Compression's horse2zebra script: Adam(2e-4, 0.5, 0.999), 100 epochs constant and 100
decaying linearly to zero, lambda_recon 10, lambda_distill 0.01, lambda_gan 1, LSGAN.

A run lives beside the student file ``student.pt`` in ``student_compress/``: ``losses.jsonl``, ``samples/epoch_NNN.png``
(rows of photo | teacher | student) and ``compress_state.pt`` (everything needed to resume exactly, loadable with
``torch.load(weights_only=True)``). The loop, saving and exact resume are :mod:`training.engine`'s, shared with
``cg-train``; the data order and the augmentation of every step are drawn from ``(seed, epoch, position)``, so a
resumed run ends bit for bit where an uninterrupted one does on the CPU, its log included.
"""

from __future__ import annotations

import functools
import io
import json
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cg_export.errors import ImageError
from cg_export.formats import is_checkpoint
from cg_export.images import fit_to_size, load_image, to_model_input, to_uint8
from cg_export.macs import ModelCost, count_cost, format_count
from cg_export.models import describe_architecture, load_generator, save_generator
from cg_export.models.init import init_weights
from cg_export.models.mobile_resnet import NAME as STUDENT_FAMILY
from cg_export.models.registry import create_generator
from training.cyclegan import LinearDecay
from training.data import augment, scan_domain
from training.discriminator import PatchDiscriminator, lsgan_loss
from training.distributed import Processes
from training.engine import (
    LOSSES_FILE,
    SAMPLES_FOLDER,
    BaseTrainer,
    Reporter,
    RunResult,
    StateFile,
    cpu_copy,
    print_report,
)
from training.errors import DatasetError, TrainingError, TrainingOptionError
from training.options import RunOptions
from training.precision import amp_dtype, autocast, loss_scaler

STATE_FILE = "compress_state.pt"
STATE_FORMAT = "cg-export.compress-state"
STATE_VERSION = 1
RUN_SUFFIX = "_compress"
DEFAULT_RATIO = 10.0
#: The per-step losses, in the order :meth:`_Distiller.train_step` returns them.
LOSS_NAMES = ("total", "recon", "distill", "gan", "D")
#: Student widths and depths the budget search considers: ngf 4, 6, ... 32, then 36, 40, ... 128; 1 to 9 blocks.
SEARCH_NGF = tuple(range(4, 32, 2)) + tuple(range(32, 129, 4))
SEARCH_BLOCKS = tuple(range(1, 10))
#: Options that may differ on --resume: where and how often, not what is computed.
RESUMABLE_CHANGES = frozenset({"device", "save_every", "log_every"})

__all__ = ["LOSSES_FILE", "SAMPLES_FOLDER", "STATE_FILE", "CompressOptions", "CompressResult", "StudentChoice",
           "StudentTrainer", "choose_student", "compress", "read_state"]

COMPRESS_STATE = StateFile(
    name=STATE_FILE, format=STATE_FORMAT, version=STATE_VERSION, program="cg-compress", noun="compression run state",
    new_run="-o", keys={"teacher": dict, "has_discriminator": bool}, networks=("student", "mappings"),
)


@dataclass(frozen=True)
class CompressOptions(RunOptions):
    """What a distillation run trains and how. Field names are the library's and the CLI's.

    Attributes:
        ratio: Pick the largest student with at most 1/ratio of the teacher's MACs. With ``ratio``, ``macs``,
            ``ngf`` and ``n_blocks`` all unset, ``ratio`` is 10.
        macs: Pick the largest student with at most this many MACs (at ``budget_size``).
        ngf: Fix the student's width (the budget then chooses its depth, unless ``n_blocks`` is fixed too).
        n_blocks: Fix the student's residual block count (the budget then chooses its width).
        budget_size: Side of the square image at which MACs are counted and compared.
        epochs: Total epochs (one epoch visits every photograph once).
        decay_epoch: Epoch from which the learning rate decays linearly to zero at ``epochs``; ``None`` is half.
        image_size: Side of the square training crops (photographs are resized to 1.12x, then cropped and flipped).
        batch_size: Photographs per step.
        lr: Adam learning rate of the student, its mappings and the discriminator.
        beta1: Adam's first-moment decay.
        beta2: Adam's second-moment decay.
        lambda_recon: Weight of the L1 loss to the teacher's output.
        lambda_distill: Weight of the feature-distillation MSE.
        lambda_gan: Weight of the adversarial loss (used only with a discriminator).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        amp: Mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling); ignored on the CPU.
        seed: Seed of every random choice; ``None`` draws one and records it.
        save_every: Also save every this many steps (always at the end of each epoch).
        log_every: Log averaged losses every this many steps (and once per epoch).
        samples: Photographs in each epoch's sample grid.
    """

    ratio: float | None = None
    macs: int | None = None
    ngf: int | None = None
    n_blocks: int | None = None
    budget_size: int = 256
    epochs: int = 200
    decay_epoch: int | None = None
    image_size: int = 256
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_recon: float = 10.0
    lambda_distill: float = 0.01
    lambda_gan: float = 1.0
    device: str = "auto"
    amp: bool = False
    seed: int | None = None
    save_every: int | None = None
    log_every: int = 100
    samples: int = 3

    KIND: ClassVar[str] = "compression"
    RESUMABLE: ClassVar[frozenset[str]] = RESUMABLE_CHANGES

    def validate(self) -> None:
        """Check every value.

        Raises:
            TrainingOptionError: naming the first bad option (its field) and what it accepts.
        """
        for name in ("budget_size", "epochs", "image_size", "batch_size", "log_every", "samples"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise TrainingOptionError(name, repr(value), "must be a positive whole number")
        for name in ("ngf", "n_blocks", "save_every", "macs"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 1):
                raise TrainingOptionError(name, repr(value), "must be a positive whole number")
        if self.ratio is not None and self.macs is not None:
            raise TrainingOptionError("ratio", None, "give {ratio} or {macs}, not both: each sets the student's MAC "
                                      "budget")
        if self.ratio is not None and not self.ratio > 1:
            raise TrainingOptionError("ratio", self.ratio, "must be above 1: the student must be smaller than the "
                                      "teacher")
        if self.decay_epoch is None or not 0 <= self.decay_epoch <= self.epochs:
            raise TrainingOptionError("decay_epoch", self.decay_epoch, f"must lie between 0 and {{epochs}} {self.epochs}")
        if not self.lr > 0:
            raise TrainingOptionError("lr", repr(self.lr), "must be positive")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise TrainingError("Adam betas must lie in [0, 1)")
        for name in ("lambda_recon", "lambda_distill", "lambda_gan"):
            if getattr(self, name) < 0:
                raise TrainingOptionError(name, getattr(self, name), "must not be negative")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise TrainingOptionError("seed", self.seed, "must lie in [0, 2**63)")


def _flag(name: str) -> str:
    return name.replace("_", "-")


# ------------------------------------------------------------------------------------------------ student choice


@dataclass(frozen=True)
class StudentChoice:
    """The student architecture a budget selected, with both networks' costs.

    Attributes:
        config: The student's architecture config (``create_generator(**config)`` builds it).
        cost: The student's MACs and parameters at the budget size.
        teacher_cost: The teacher's, at the same size.
        budget: The MAC budget the student had to fit.
        rule: How the budget was set, e.g. ``"1/10 of the teacher's MACs"``.
    """

    config: dict[str, Any]
    cost: ModelCost
    teacher_cost: ModelCost
    budget: int
    rule: str

    @property
    def ratio(self) -> float:
        """Teacher MACs / student MACs."""
        return self.teacher_cost.macs / self.cost.macs

    def describe(self) -> str:
        """One line saying what was chosen and why."""
        return (f"{describe_architecture(self.config)}: {self.cost.describe()}, {self.ratio:.1f}x fewer MACs than "
                f"the teacher's {format_count(self.teacher_cost.macs)} (budget {format_count(self.budget)}, "
                f"{self.rule})")


def choose_student(teacher_config: dict[str, Any], *, ratio: float | None = None, macs: int | None = None,
                   ngf: int | None = None, n_blocks: int | None = None, budget_size: int = 256) -> StudentChoice:
    """Pick the widest mobile ResNet student at the teacher's depth that fits the MAC budget.

    The budget is ``macs``, else 1/``ratio`` of the teacher's MACs; with neither, 1/10, unless both ``ngf`` and
    ``n_blocks`` are fixed (then the student only has to be smaller than the teacher). The depth is ``n_blocks``,
    else the teacher's residual block count (at most 9; 9 for a U-Net teacher), lowered one block at a time only
    when no width fits; the width is ``ngf``, else the widest of :data:`SEARCH_NGF` that fits. Keeping the depth is
    GAN Compression's choice (its students keep all 9 blocks and narrow the channels): the most MACs within a budget
    would be a wide 2-block student, whose receptive field is much smaller than the teacher's. MACs are counted by
    ptflops (:func:`cg_export.macs.count_cost`) at ``budget_size`` x ``budget_size``.

    Raises:
        TrainingError: no student fits, or the fixed student is not smaller than the teacher.
    """
    teacher_cost = count_cost(teacher_config, budget_size)
    both_fixed = ngf is not None and n_blocks is not None
    if macs is not None:
        budget, rule = int(macs), "--macs"
    elif ratio is not None or not both_fixed:
        ratio = DEFAULT_RATIO if ratio is None else ratio
        budget, rule = int(teacher_cost.macs / ratio), f"1/{ratio:g} of the teacher's MACs"
    else:
        budget, rule = teacher_cost.macs - 1, "smaller than the teacher"
    channels = {"in_channels": int(teacher_config.get("in_channels", 3)),
                "out_channels": int(teacher_config.get("out_channels", 3))}
    if teacher_config.get("upsample") == "nearest":
        # A teacher that upsamples without ConvTranspose has no checkerboard; its student keeps it that way.
        channels["upsample"] = "nearest"
    widths = (ngf,) if ngf is not None else SEARCH_NGF
    teacher_depth = int(teacher_config.get("n_blocks", max(SEARCH_BLOCKS)))
    depths = (n_blocks,) if n_blocks is not None else tuple(range(min(max(teacher_depth, 1), max(SEARCH_BLOCKS)), 0, -1))

    def candidate(width: int, depth: int) -> tuple[ModelCost, dict[str, Any]]:
        with torch.device("meta"):  # only its config is wanted: allocate no weights
            config = dict(create_generator(STUDENT_FAMILY, ngf=width, n_blocks=depth, **channels).config)
        return _cached_cost(json.dumps(config, sort_keys=True), budget_size), config

    candidates = []
    for depth in depths:
        low, high = 0, len(widths) - 1
        while low < high:  # MACs grow with the width: the widest that fits (index 0 when none does)
            middle = (low + high + 1) // 2
            if candidate(widths[middle], depth)[0].macs <= budget:
                low = middle
            else:
                high = middle - 1
        candidates.append(candidate(widths[low], depth))
        if candidates[-1][0].macs <= budget:
            break
    fitting = [(cost, config) for cost, config in candidates if cost.macs <= budget]
    where = f"at {budget_size}x{budget_size}"
    if not fitting:
        smallest_cost, smallest = min(candidates, key=lambda item: item[0].macs)
        if both_fixed and macs is None and ratio is None:
            raise TrainingError(
                f"the student {describe_architecture(smallest)} has {format_count(smallest_cost.macs)} MACs {where}, "
                f"not fewer than the teacher's {format_count(teacher_cost.macs)}: choose a smaller --ngf or --n-blocks"
            )
        raise TrainingError(
            f"no {STUDENT_FAMILY} student fits {format_count(budget)} MACs {where} ({rule}; the teacher has "
            f"{format_count(teacher_cost.macs)}): the smallest one considered, ngf {smallest['ngf']} with "
            f"{smallest['n_blocks']} blocks, needs {format_count(smallest_cost.macs)}; allow more MACs"
        )
    cost, config = fitting[0]
    if cost.macs >= teacher_cost.macs:
        raise TrainingError(
            f"the student {describe_architecture(config)} has {format_count(cost.macs)} MACs {where}, not fewer "
            f"than the teacher's {format_count(teacher_cost.macs)}: ask for a smaller student"
        )
    return StudentChoice(config, cost, teacher_cost, budget, rule)


@functools.lru_cache(maxsize=1024)
def _cached_cost(config_json: str, size: int) -> ModelCost:
    return count_cost(json.loads(config_json), size)


# ------------------------------------------------------------------------------------------------ photographs


class Photographs:
    """One folder of photographs of the teacher's input domain, in a reproducible order and augmentation.

    The order of epoch ``e`` is a permutation drawn from ``(seed, e)`` and the crop and flip of position ``i`` from
    ``(seed, e, i)``, so any step can be rebuilt exactly (what an exact resume needs).

    Raises:
        DatasetError: the folder is missing or holds no readable images.
    """

    def __init__(self, folder: str | Path, image_size: int, seed: int):
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            what = "is a file" if folder.exists() else "no such folder"
            raise DatasetError(f"{folder}: {what}; pass a folder of photographs of the teacher's input domain")
        self.folder = folder
        self.domain = scan_domain("A (the teacher's input)", folder)
        self.image_size = image_size
        self.seed = seed

    @property
    def files(self) -> list[Path]:
        """Readable images, sorted by path."""
        return self.domain.files

    def steps_per_epoch(self, batch_size: int) -> int:
        """Optimisation steps in one epoch."""
        return -(-len(self.files) // batch_size)

    def _load(self, index: int) -> np.ndarray:
        # A file that fails to decode (a truncated JPEG passes the scan) is replaced by its successor.
        for offset in range(len(self.files)):
            try:
                return load_image(self.files[(index + offset) % len(self.files)])
            except ImageError:
                continue
        raise DatasetError(f"{self.folder}: none of its images can be decoded")

    def batch(self, epoch: int, step: int, batch_size: int) -> Tensor:
        """The augmented photographs of ``step`` in ``epoch``, float32 NCHW in [-1, 1]."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.files))
        positions = range(step * batch_size, min((step + 1) * batch_size, len(self.files)))
        crops = [augment(self._load(int(order[p])), self.image_size, np.random.default_rng([self.seed, epoch, p]))
                 for p in positions]
        return torch.from_numpy(to_model_input(crops))

    def fixed_samples(self, count: int) -> Tensor:
        """The first ``count`` photographs resized and centre-cropped: the sample grid's inputs."""
        images = [fit_to_size(self._load(i), self.image_size, self.image_size) for i in range(min(count, len(self.files)))]
        return torch.from_numpy(to_model_input(images))

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for checkpoints' ``meta``."""
        return {"root": str(self.folder.resolve()), "images": len(self.files), "skipped": len(self.domain.skipped)}


# ------------------------------------------------------------------------------------------------ discriminator


def load_discriminator(path: str | Path) -> PatchDiscriminator:
    """Load a PatchGAN discriminator state dict (pytorch-CycleGAN-and-pix2pix ``latest_net_D_B.pth`` layout).

    ``ndf``, the layer count and the input channels are read from the weights.

    Raises:
        TrainingError: the file is missing, unreadable, or not such a discriminator.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise TrainingOptionError("discriminator", path, "no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except Exception:  # any unpickling failure means the same thing to the user
        raise TrainingOptionError("discriminator", path, "not a PyTorch state dict that loads safely") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TrainingOptionError("discriminator", path, "not a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    convs = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"model\.(\d+)\.weight", k))
                   and state[k].dim() == 4)
    weights = [state[f"model.{i}.weight"] for i in convs]
    if len(weights) < 2 or any(w.shape[-1] != 4 for w in weights) or weights[-1].shape[0] != 1:
        raise TrainingOptionError("discriminator", path, "not a PatchGAN discriminator (4x4 convolutions ending in one "
                                  "channel, as latest_net_D_B.pth); a generator file goes first, as the teacher")
    model = PatchDiscriminator(in_channels=int(weights[0].shape[1]), ndf=int(weights[0].shape[0]),
                               n_layers=len(weights) - 2)
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()
                               if not k.endswith((".running_mean", ".running_var", ".num_batches_tracked"))})
    except RuntimeError as exc:
        raise TrainingOptionError("discriminator", path, "the weights do not fit a PatchGAN "
                                  f"({str(exc).splitlines()[0]})") from None
    return model


# ------------------------------------------------------------------------------------------------ features


def residual_blocks(generator: nn.Module) -> list[nn.Module]:
    """The residual blocks of a ResNet-style generator's trunk, in order ([] for other architectures)."""
    body = getattr(generator, "model", None)
    if not isinstance(body, nn.Sequential):
        return []
    return [m for m in body if hasattr(m, "conv_block") or hasattr(m, "block")]


def feature_points(generator: nn.Module) -> list[nn.Module]:
    """Where features are distilled: the trunk's input, and the outputs of the blocks at 1/3, 2/3 and the end.

    GAN Compression distils ``model.9``, ``.12``, ``.15``, ``.18`` of the 9-block generator: the same positions.
    A shallow trunk repeats a block; [] when the generator has no residual trunk (a U-Net).
    """
    blocks = residual_blocks(generator)
    if not blocks:
        return []
    body = list(generator.model)
    return [body[body.index(blocks[0]) - 1]] + [blocks[max(1, round(f * len(blocks))) - 1] for f in (1 / 3, 2 / 3, 1.0)]


def feature_pairs(teacher: nn.Module, student: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """``(teacher module, student module)`` at the same relative depths, each pair once."""
    pairs: list[tuple[nn.Module, nn.Module]] = []
    for pair in zip(feature_points(teacher), feature_points(student)):
        if not any(pair[0] is t and pair[1] is s for t, s in pairs):
            pairs.append(pair)
    return pairs


class _Features:
    """Forward hooks recording the outputs of a few modules."""

    def __init__(self, modules: list[nn.Module]):
        self.values: list[Tensor] = [torch.empty(0)] * len(modules)
        for index, module in enumerate(modules):
            module.register_forward_hook(self._hook(index))

    def _hook(self, index: int) -> Callable[..., None]:
        def record(module: nn.Module, inputs: Any, output: Tensor) -> None:
            self.values[index] = output
        return record


# ------------------------------------------------------------------------------------------------ the run


@dataclass
class CompressResult(RunResult):
    """What a call of :func:`compress` left behind: what, where, and (:class:`~training.engine.RunResult`) how far.

    Attributes:
        student: Path of the student checkpoint.
        run_dir: Folder of the losses log, sample grids and the resumable state.
        choice: The student architecture and its cost.
    """

    student: Path
    run_dir: Path
    choice: StudentChoice


def default_student_path(teacher: str | Path) -> Path:
    """``G_AB.pt`` -> ``G_AB_student.pt`` beside it."""
    teacher = Path(teacher)
    return teacher.with_name(f"{teacher.stem}_student.pt")


def run_dir_for(student: str | Path) -> Path:
    """``out/G_AB_student.pt`` -> ``out/G_AB_student_compress/``: where the run's log, samples and state go."""
    student = Path(student)
    return student.with_name(f"{student.stem}{RUN_SUFFIX}")


def compress(
    teacher: str | Path,
    photos: str | Path,
    *,
    output: str | Path | None = None,
    discriminator: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    report: Reporter | None = None,
    **options: Any,
) -> CompressResult:
    """Distil ``teacher`` into a mobile ResNet student on the photographs in ``photos``.

    Every input is checked before anything is written: a bad teacher, photo folder, discriminator or budget
    raises a one-line error and leaves the disk as it was.

    Args:
        teacher: Generator checkpoint in any format ``cg-export`` loads.
        photos: Folder of photographs of the teacher's input domain (sub-folders too).
        output: Student checkpoint to write (default ``TEACHER_student.pt`` beside the teacher).
        discriminator: Optional PatchGAN state dict (the teacher's ``D_B``) adding the adversarial loss.
        resume: Continue the run saved beside ``output`` (its options are used; options given here must agree,
            except ``device``, ``save_every`` and ``log_every``).
        progress: Show a progress bar per epoch (on stderr).
        report: Receives ``(label, text)`` progress lines; default prints them on stdout.
        **options: :class:`CompressOptions` fields; ``None`` values keep the defaults.

    Returns:
        Where the student is, what it is and how far the run got.

    Raises:
        CheckpointError: the teacher is not a generator (a discriminator, say) or cannot be read.
        DatasetError: the photo folder is missing or holds no images.
        TrainingError: invalid options, no student fits the budget, or a run that cannot be started or resumed.
    """
    teacher, photos = Path(teacher).expanduser(), Path(photos).expanduser()
    output = Path(output).expanduser() if output is not None else default_student_path(teacher)
    if not is_checkpoint(output):
        raise TrainingOptionError("output", output, "the student is a PyTorch checkpoint; name it *.pt")
    for source in (teacher, Path(discriminator) if discriminator else None):
        if source is not None and output.resolve() == source.resolve():
            raise TrainingOptionError("output", output, "that is an input file; write the student elsewhere")
    if Processes.from_environment().distributed:
        raise TrainingError("cg-compress trains in one process: start it without torchrun")
    trainer = StudentTrainer(teacher, photos, discriminator, output, report or print_report, progress)
    trainer.run(resume, options)
    return CompressResult(output, trainer.run_dir, trainer.choice, **trainer.outcome())


def read_state(path: Path) -> dict[str, Any]:
    """Load a compression run's state (``weights_only=True``).

    Raises:
        TrainingError: the file is missing, damaged or not a compression state.
    """
    return COMPRESS_STATE.read(path)


class StudentTrainer(BaseTrainer):
    """Distillation of a teacher into a student on one folder of photographs: what ``cg-compress`` adds to the
    engine.

    Args:
        teacher: The teacher's checkpoint.
        photos: Folder of photographs of the teacher's input domain.
        discriminator: Optional PatchGAN state dict adding the adversarial loss.
        output: The student checkpoint to write; the run folder is :func:`run_dir_for` it.
        report: Receives ``(label, text)`` progress lines.
        progress: Show a progress bar per epoch.
    """

    state_file = COMPRESS_STATE
    options_class = CompressOptions
    loss_names = LOSS_NAMES
    loss_decimals = 6
    report_decimals = 4

    def __init__(self, teacher: Path, photos: Path, discriminator: str | Path | None, output: Path,
                 report: Reporter, progress: bool):
        super().__init__(run_dir_for(output), report, progress)
        self.teacher_path = teacher
        self.photos = photos
        self.discriminator_path = discriminator
        self.output = output

    # ----------------------------------------------------------------------------------------- setup

    def check_inputs(self, state: dict[str, Any] | None) -> None:
        options = self.options
        loaded = load_generator(self.teacher_path)
        if state is not None and loaded.sha256 != state["teacher"]["sha256"]:
            raise TrainingError(f"{self.teacher_path}: not the teacher this run was started with "
                                f"({state['teacher']['path']}); pass that file to resume")
        self.teacher_file = loaded
        self.data = Photographs(self.photos, options.image_size, options.seed)
        self.choice = choose_student(loaded.config, ratio=options.ratio, macs=options.macs, ngf=options.ngf,
                                     n_blocks=options.n_blocks, budget_size=options.budget_size)
        multiple = int(getattr(loaded.model, "size_multiple", 4))
        if options.image_size % multiple:
            raise TrainingOptionError("image_size", options.image_size, "does not fit the teacher: it must be a "
                                      f"multiple of {multiple}")
        self.D = load_discriminator(self.discriminator_path) if self.discriminator_path is not None else None
        if state is not None and (self.D is not None) != bool(state["has_discriminator"]):
            raise TrainingError("this run was started " + ("with" if state["has_discriminator"] else "without")
                                + " --discriminator; resume it the same way")

    def setup(self) -> None:
        self.report("teacher", f"{self.teacher_path}: {self.teacher_file.description}")
        self.report("student", self.choice.describe())
        skipped = self.data.domain.skipped
        self.report("data", f"{self.data.folder}: {len(self.data.files)} photographs"
                            + (f" ({len(skipped)} unreadable skipped)" if skipped else ""))

    def build_model(self) -> _Distiller:
        options = self.options
        model = _Distiller(options, self.device, self.teacher_file.model, self.choice.config, self.D)
        if model.amp_dtype is None and options.amp:
            self.report("note", "--amp applies on CUDA only; distilling in float32 on the CPU")
        self.report_device(model.amp_dtype)
        points = len(model.mappings)
        losses = f"recon x{options.lambda_recon:g}"
        losses += f", {points} feature maps x{options.lambda_distill:g}" if points else (
            ", no feature distillation (the teacher has no residual trunk)")
        if model.D is not None:
            losses += f", GAN x{options.lambda_gan:g}"
        self.report("losses", losses)
        return model

    # ----------------------------------------------------------------------------------------- training

    def steps_per_epoch(self) -> int:
        return self.data.steps_per_epoch(self.options.batch_size)

    def epoch_batches(self, steps: int) -> Iterator[Tensor]:
        for step in range(self.step_in_epoch, steps):
            yield self.data.batch(self.epoch, step, self.options.batch_size)

    def train_step(self, batch: Tensor) -> Tensor:
        return self.model.train_step(batch.to(self.device, non_blocking=True))

    def sample_inputs(self) -> Tensor:
        return self.data.fixed_samples(self.options.samples)

    def sample_rows(self) -> list[list[np.ndarray]]:
        """One row per fixed photograph: photo | teacher | student."""
        teacher, student = self.model.translate(self.fixed)
        columns = [to_uint8(t.numpy()) for t in (self.fixed, teacher, student)]
        return [[column[i] for column in columns] for i in range(self.fixed.shape[0])]

    # ----------------------------------------------------------------------------------------- saving

    def _teacher_record(self) -> dict[str, Any]:
        return {"path": str(self.teacher_file.path.resolve()), "sha256": self.teacher_file.sha256,
                "architecture": self.teacher_file.config, "macs": self.choice.teacher_cost.macs}

    def write_outputs(self, meta: dict[str, Any]) -> None:
        choice = self.choice
        save_generator(self.model.student, self.output, {
            **meta, "dataset": self.data.describe(), "teacher": self._teacher_record(), "macs": choice.cost.macs,
            "params": choice.cost.params, "macs_size": self.options.budget_size,
            "macs_ratio": round(choice.ratio, 3)})

    def extra_state(self, ranks: list[dict[str, Any]]) -> dict[str, Any]:
        return {"teacher": self._teacher_record(), "has_discriminator": self.model.D is not None}

    def outputs(self) -> list[Path]:
        return [self.output]


class _Distiller:
    """Teacher (frozen), student, 1x1 feature mappings, optional discriminator, optimisers and schedules."""

    def __init__(self, options: CompressOptions, device: torch.device, teacher: nn.Module,
                 student_config: dict[str, Any], D: nn.Module | None):
        self.options = options
        self.device = device
        config = dict(student_config)
        self.student = init_weights(create_generator(config.pop("name"), **config)).to(device).train()
        self.teacher = teacher.to(device).eval().requires_grad_(False)
        pairs = feature_pairs(self.teacher, self.student)
        self.teacher_features = _Features([t for t, _ in pairs])
        self.student_features = _Features([s for _, s in pairs])
        widths = self._feature_widths()
        self.mappings = nn.ModuleList(nn.Conv2d(s, t, kernel_size=1) for s, t in widths)
        init_weights(self.mappings).to(device).train()
        self.D = D.to(device).train() if D is not None else None
        self.amp_dtype = amp_dtype(device, options.amp)
        betas = (options.beta1, options.beta2)
        self.optimizer_G = torch.optim.Adam([*self.student.parameters(), *self.mappings.parameters()],
                                            lr=options.lr, betas=betas)
        decay = LinearDecay(options.epochs, options.decay_epoch)
        self.scheduler_G = torch.optim.lr_scheduler.LambdaLR(self.optimizer_G, decay)
        if self.D is not None:
            self.optimizer_D = torch.optim.Adam(self.D.parameters(), lr=options.lr, betas=betas)
            self.scheduler_D = torch.optim.lr_scheduler.LambdaLR(self.optimizer_D, decay)
        self.scaler = loss_scaler(self.amp_dtype)

    def _feature_widths(self) -> list[tuple[int, int]]:
        if not self.teacher_features.values:
            return []
        probe = torch.zeros(1, int(self.student.config.get("in_channels", 3)), 16, 16, device=self.device)
        with torch.no_grad():
            self.teacher(probe)
            self.student(probe)
        return [(int(s.shape[1]), int(t.shape[1]))
                for s, t in zip(self.student_features.values, self.teacher_features.values)]

    @property
    def learning_rate(self) -> float:
        """The student's current learning rate."""
        return float(self.optimizer_G.param_groups[0]["lr"])

    def train_step(self, photos: Tensor) -> Tensor:
        """One step of the student (and of the discriminator, if any).

        Returns:
            The detached losses in :data:`LOSS_NAMES` order, on the training device (no host sync).
        """
        options = self.options
        zero = torch.zeros((), device=self.device)
        with torch.no_grad(), autocast(self.device, self.amp_dtype):
            target = self.teacher(photos)
            teacher_features = [t.detach() for t in self.teacher_features.values]
        if self.D is not None:
            self.D.requires_grad_(False)
        with autocast(self.device, self.amp_dtype):
            output = self.student(photos)
            loss_recon = F.l1_loss(output.float(), target.float())
            loss_distill = zero
            for mapping, s, t in zip(self.mappings, self.student_features.values, teacher_features):
                loss_distill = loss_distill + F.mse_loss(mapping(s).float(), t.float())
            loss_gan = lsgan_loss(self.D(output), True) if self.D is not None else zero
            total = (options.lambda_recon * loss_recon + options.lambda_distill * loss_distill
                     + options.lambda_gan * loss_gan)
        self.optimizer_G.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer_G)
        loss_D = zero
        if self.D is not None:
            self.D.requires_grad_(True)
            with autocast(self.device, self.amp_dtype):
                loss_D = 0.5 * (lsgan_loss(self.D(target), True) + lsgan_loss(self.D(output.detach()), False))
            self.optimizer_D.zero_grad(set_to_none=True)
            self.scaler.scale(loss_D).backward()
            self.scaler.step(self.optimizer_D)
        self.scaler.update()
        return torch.stack([total, loss_recon, loss_distill, loss_gan, loss_D]).detach().float()

    def end_epoch(self) -> None:
        """Advance the learning-rate schedules by one epoch."""
        self.scheduler_G.step()
        if self.D is not None:
            self.scheduler_D.step()

    @torch.no_grad()
    def translate(self, photos: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher and student outputs for ``photos``, float32 on the CPU (the student briefly in eval mode)."""
        self.student.eval()
        try:
            photos = photos.to(self.device)
            return self.teacher(photos).float().cpu(), self.student(photos).float().cpu()
        finally:
            self.student.train()

    def state_dict(self) -> dict[str, Any]:
        """Everything that evolves while training, as CPU tensors and plain numbers."""
        state: dict[str, Any] = {
            "student": cpu_copy(self.student.state_dict()), "mappings": cpu_copy(self.mappings.state_dict()),
            "optimizer_G": cpu_copy(self.optimizer_G.state_dict()), "scheduler_G": self.scheduler_G.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        if self.D is not None:
            state.update({"D": cpu_copy(self.D.state_dict()), "optimizer_D": cpu_copy(self.optimizer_D.state_dict()),
                          "scheduler_D": self.scheduler_D.state_dict()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.student.load_state_dict(state["student"])
        self.mappings.load_state_dict(state["mappings"])
        self.optimizer_G.load_state_dict(state["optimizer_G"])
        self.scheduler_G.load_state_dict(state["scheduler_G"])
        if self.D is not None:
            self.D.load_state_dict(state["D"])
            self.optimizer_D.load_state_dict(state["optimizer_D"])
            self.scheduler_D.load_state_dict(state["scheduler_D"])
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])

