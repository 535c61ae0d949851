"""Unpaired two-domain image data: finding the domains, vetting the files, and a reproducible data order.

Both common layouts are read: ``ROOT/trainA`` + ``ROOT/trainB`` (pytorch-CycleGAN-and-pix2pix) and
``ROOT/train/A`` + ``ROOT/train/B`` (PyTorch-GAN). Every photograph file (the suffixes of
:data:`cg_export.images.IMAGE_SUFFIXES`) counts, in sub-folders too; grayscale, palette, RGBA and CMYK images are
converted to RGB.

Reproducibility is by construction rather than by saved iterator state: the order of an epoch is a permutation
drawn from ``(seed, epoch, domain)`` and the crop and flip of the image at position ``i`` from
``(seed, epoch, domain, i)``. Any step of any epoch can therefore be rebuilt exactly, in any process, which is what
makes a resumed run (even one resumed in the middle of an epoch) identical to an uninterrupted one, and what lets
worker processes decode images in whatever order they like.

Under torchrun, :class:`EpochShards` splits every step's positions between the processes (ranks) without overlap:
each rank builds only its own images, from the same ``(seed, epoch)`` order, so no rank needs to talk to another
about data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from cg_export.errors import ImageError
from cg_export.images import IMAGE_SUFFIXES, check_pixels, fit_to_size, load_image, to_model_input
from training.errors import DatasetError

#: ``(folder of A, folder of B, label)`` for each layout we read, in the order they are looked for.
LAYOUTS = (("trainA", "trainB", "trainA/trainB"), ("train/A", "train/B", "train/A, train/B"))

#: How much larger than the crop the shorter side is resized to (286 for 256, as in the reference code).
LOAD_SCALE = 1.12

_DOMAIN_IDS = {"A": 0, "B": 1}


@dataclass(frozen=True)
class DomainFolders:
    """Where the two domains of a data root are.

    Attributes:
        root: The data root the user named.
        layout: ``"trainA/trainB"`` or ``"train/A, train/B"``.
        a: Folder of domain A's images.
        b: Folder of domain B's images.
    """

    root: Path
    layout: str
    a: Path
    b: Path


def find_domains(root: str | Path) -> DomainFolders:
    """Locate domain A and B under ``root`` in either layout.

    Raises:
        DatasetError: ``root`` is missing or not a folder, or lacks one or both domain folders.
    """
    root = Path(root).expanduser()
    expected = "trainA/ and trainB/ (or train/A/ and train/B/)"
    if not root.exists():
        raise DatasetError(f"{root}: no such folder; pass a dataset root that holds {expected}")
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file; pass a dataset root folder that holds {expected}")
    for a_name, b_name, label in LAYOUTS:
        a, b = root / a_name, root / b_name
        if a.is_dir() and b.is_dir():
            return DomainFolders(root, label, a, b)
        if a.is_dir() or b.is_dir():
            present, missing = (a_name, b_name) if a.is_dir() else (b_name, a_name)
            raise DatasetError(
                f"{root}: has {present}/ but no {missing}/; CycleGAN needs images of both domains"
            )
    raise DatasetError(f"{root}: found neither trainA/, trainB/ nor train/A/, train/B/ inside; expected {expected}")


@dataclass
class ImageDomain:
    """The usable images of one domain and the files that were skipped.

    Attributes:
        name: ``"A"`` or ``"B"``.
        folder: Where the images were found.
        files: Readable images, sorted by path (the order never depends on the file system).
        skipped: ``(file, reason)`` of image files that cannot be read, found when scanning or later on decoding.
    """

    name: str
    folder: Path
    files: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def scan_domain(name: str, folder: Path) -> ImageDomain:
    """List a domain's images and vet each one (Pillow opens it and checks its structure).

    Raises:
        DatasetError: the folder holds no images, or none of them can be read.
    """
    candidates = sorted(
        p for p in folder.rglob("*")
        # Names starting with a dot are hidden files, such as the '._photo.jpg' resource forks macOS leaves behind.
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in candidates:
        reason = _unreadable_reason(path)
        if reason is None:
            files.append(path)
        else:
            skipped.append((path, reason))
    if not files:
        if skipped:
            example, reason = skipped[0]
            raise DatasetError(
                f"{folder}: none of its {len(skipped)} image file(s) can be read (e.g. {example.name}: {reason}); "
                f"domain {name} needs readable images"
            )
        raise DatasetError(f"{folder}: holds no images (looked for .jpg, .png, .webp, ...); domain {name} is empty")
    return ImageDomain(name, folder, files, skipped)


def _unreadable_reason(path: Path) -> str | None:
    try:
        with Image.open(path) as image:
            check_pixels(path, *image.size, None)
            image.verify()
    except ImageError as exc:
        return str(exc).split(": ", 1)[-1]
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return str(exc) or type(exc).__name__
    return None


def resized_for_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (bicubic) so the shorter side is ``int(LOAD_SCALE * size)``, keeping the aspect ratio."""
    load = int(LOAD_SCALE * size)
    height, width = image.shape[:2]
    scale = load / min(height, width)
    new_h, new_w = max(load, round(height * scale)), max(load, round(width * scale))
    return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BICUBIC))


def augment(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Training augmentation: resize to 1.12x, random ``size`` x ``size`` crop, random horizontal flip.

    Args:
        image: uint8 HxWx3.
        size: Crop side.
        rng: Source of the crop position and the flip.

    Returns:
        uint8 ``size`` x ``size`` x 3.
    """
    resized = resized_for_crop(image, size)
    top = int(rng.integers(0, resized.shape[0] - size + 1))
    left = int(rng.integers(0, resized.shape[1] - size + 1))
    crop = resized[top : top + size, left : left + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


class UnpairedImages:
    """Two image domains and the reproducible order and augmentation of every epoch.

    An epoch visits ``max(len(A), len(B))`` images of each domain (the smaller domain is cycled through
    several fresh permutations), in batches of ``batch_size``; the last batch may be smaller.

    Args:
        root: Data root in either layout.
        image_size: Side of the training crops.
        seed: Seed of the data order and of the augmentation.

    Raises:
        DatasetError: see :func:`find_domains` and :func:`scan_domain`.
    """

    def __init__(self, root: str | Path, image_size: int, seed: int):
        self.folders = find_domains(root)
        self.image_size = image_size
        self.seed = seed
        self.domains = {"A": scan_domain("A", self.folders.a), "B": scan_domain("B", self.folders.b)}
        self.length = max(len(d.files) for d in self.domains.values())

    def steps_per_epoch(self, batch_size: int, world_size: int = 1) -> int:
        """Optimisation steps in one epoch (``batch_size`` images per process and step, ``world_size`` processes)."""
        return EpochShards(self.length, batch_size, world_size).steps

    def epoch_order(self, epoch: int, domain: str) -> np.ndarray:
        """Indices into ``domains[domain].files`` for every position of ``epoch`` (length :attr:`length`)."""
        count = len(self.domains[domain].files)
        rng = np.random.default_rng([self.seed, epoch, _DOMAIN_IDS[domain]])
        rounds = -(-self.length // count)
        return np.concatenate([rng.permutation(count) for _ in range(rounds)])[: self.length]

    def load(self, domain: str, index: int) -> tuple[np.ndarray, list[tuple[str, str]]]:
        """Decode image ``index`` of ``domain``; an image that fails to decode is replaced by the next one.

        Scanning catches most broken files; a truncated JPEG, say, only shows when decoded. Replacing it by
        its successor (a choice that depends on nothing but the files) keeps the data order reproducible.

        Returns:
            ``(uint8 HxWx3 image, [(file, reason) of each image that failed on the way])``.

        Raises:
            DatasetError: no image of the domain decodes.
        """
        files = self.domains[domain].files
        failed: list[tuple[str, str]] = []
        for offset in range(len(files)):
            path = files[(index + offset) % len(files)]
            try:
                return load_image(path), failed
            except ImageError as exc:
                failed.append((str(path), str(exc).split(": ", 1)[-1]))
        raise DatasetError(f"{self.domains[domain].folder}: none of its images can be decoded ({failed[0][1]})")

    def batch(self, epoch: int, step: int, batch_size: int, orders: dict[str, np.ndarray] | None = None
              ) -> dict[str, Any]:
        """The augmented images of ``step`` in ``epoch``, as ``{"A": tensor, "B": tensor, "failed": [...]}``.

        Args:
            epoch: 0-based epoch.
            step: 0-based step within the epoch.
            batch_size: Images per domain per step.
            orders: :meth:`epoch_order` of both domains, when the caller has them already.
        """
        positions = EpochShards(self.length, batch_size).positions(step, rank=0)
        return self.images_at(epoch, positions, orders)

    def images_at(self, epoch: int, positions: range, orders: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """The augmented images at ``positions`` of ``epoch``'s order, as :meth:`batch` returns them."""
        orders = orders or {d: self.epoch_order(epoch, d) for d in self.domains}
        result: dict[str, Any] = {"failed": []}
        for domain in self.domains:
            crops = []
            for position in positions:
                image, failed = self.load(domain, int(orders[domain][position]))
                result["failed"] += failed
                rng = np.random.default_rng([self.seed, epoch, _DOMAIN_IDS[domain], position])
                crops.append(augment(image, self.image_size, rng))
            result[domain] = torch.from_numpy(to_model_input(crops))
        return result

    def fixed_samples(self, domain: str, count: int) -> torch.Tensor:
        """The first ``count`` images of ``domain`` resized and centre-cropped (no randomness): sample-grid inputs."""
        files = self.domains[domain].files
        images = []
        for index in range(min(count, len(files))):
            image, _ = self.load(domain, index)
            images.append(fit_to_size(image, self.image_size, self.image_size))
        return torch.from_numpy(to_model_input(images))

    def mark_unreadable(self, failures: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Record files that failed to decode; returns those not recorded before (to report each file once)."""
        # Failed files stay in ``files``: removing them would shift every index and so the data order.
        new = []
        for path, reason in failures:
            for domain in self.domains.values():
                if Path(path) in domain.files and all(str(p) != path for p, _ in domain.skipped):
                    domain.skipped.append((Path(path), reason))
                    new.append((path, reason))
        return new

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for checkpoints' ``meta`` and the run log."""
        return {
            "root": str(self.folders.root.resolve()),
            "layout": self.folders.layout,
            "images": {name: len(d.files) for name, d in self.domains.items()},
            "skipped": {name: len(d.skipped) for name, d in self.domains.items()},
        }


@dataclass(frozen=True)
class EpochShards:
    """Which positions of an epoch each of ``world_size`` processes trains at each step.

    Step ``s`` covers the ``world_size * batch_size`` positions from ``s * world_size * batch_size``; rank ``r``
    takes the ``r``-th run of ``batch_size`` of them, so two ranks of batch 1 see exactly the images one process of
    batch 2 sees. The epoch's last step splits what is left as evenly as possible (shares differ by at most one);
    should fewer positions be left than there are ranks, they join the step before, so that every rank has at least
    one image in every step and no position is dropped or repeated. With one process this is the plain order in
    batches of ``batch_size``, the last one possibly smaller.

    Attributes:
        length: Positions in the epoch (:attr:`UnpairedImages.length`).
        batch_size: Images per process and step.
        world_size: Processes.

    Raises:
        DatasetError: fewer positions than processes.
    """

    length: int
    batch_size: int
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.length < self.world_size:
            raise DatasetError(f"an epoch holds {self.length} image(s) per domain, fewer than the {self.world_size} "
                               "processes: each process needs at least one image per step; use fewer processes")

    @property
    def steps(self) -> int:
        """Optimisation steps in the epoch."""
        per_step = self.batch_size * self.world_size
        steps = -(-self.length // per_step)
        if steps > 1 and self.length - (steps - 1) * per_step < self.world_size:
            steps -= 1
        return steps

    def step_range(self, step: int) -> range:
        """The positions of ``step`` over all ranks."""
        per_step = self.batch_size * self.world_size
        start = step * per_step
        return range(start, self.length if step == self.steps - 1 else start + per_step)

    def positions(self, step: int, rank: int) -> range:
        """The positions rank ``rank`` trains at ``step`` (0-based)."""
        span = self.step_range(step)
        if len(span) == self.batch_size * self.world_size:
            start = span.start + rank * self.batch_size
            return range(start, start + self.batch_size)
        base, extra = divmod(len(span), self.world_size)
        start = span.start + rank * base + min(rank, extra)
        return range(start, start + base + (rank < extra))


class EpochBatches(torch.utils.data.Dataset):
    """One rank's steps of one epoch as a map-style dataset (item ``i`` is step ``i``), for a ``DataLoader``.

    Workers may build items in any order: each one depends only on ``(seed, epoch, step, rank)``. Each item also
    says what share of the step's images it holds (``"share"``), the weight of this rank's gradients in the average.
    """

    def __init__(self, data: UnpairedImages, epoch: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.data = data
        self.epoch = epoch
        self.rank = rank
        self.shards = EpochShards(data.length, batch_size, world_size)
        self.orders = {d: data.epoch_order(epoch, d) for d in data.domains}

    def __len__(self) -> int:
        return self.shards.steps

    def __getitem__(self, step: int) -> dict[str, Any]:
        positions = self.shards.positions(step, self.rank)
        batch = self.data.images_at(self.epoch, positions, self.orders)
        batch["share"] = len(positions) / len(self.shards.step_range(step))
        return batch
