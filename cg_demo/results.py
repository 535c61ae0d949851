"""What a demo run did, as typed records: the runner fills them in, the report and ``report.json`` read them.

Both :mod:`cg_demo.runner` and :mod:`cg_demo.report` import this module and not each other. Paths are kept as the
runner wrote them (strings); images made in memory travel with the records so the report never re-reads a file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cg_demo.plan import DemoPlan

if TYPE_CHECKING:
    import numpy as np

    from cg_export.bench import BenchReport

DEMO_FORMAT = "cg-export.demo"
DEMO_VERSION = 1
#: The column every other backend's output is compared with in the samples.
REFERENCE_LABEL = "PyTorch fp32"
#: The distilled student's column (a PyTorch checkpoint, compared with the generator it was distilled from).
STUDENT_LABEL = "student fp32"
#: The column of the generator the demo trained, when the pretrained one is deployed (and the other way round).
TRAINED_HERE_LABEL = "trained here"
PRETRAINED_LABEL = "pretrained"


@dataclass
class StageTime:
    """Wall-clock seconds of one stage."""

    name: str
    seconds: float


@dataclass
class TrainingRecord:
    """The training stage: the generator it made, how long it took, and the losses it logged.

    Attributes:
        generator: Path of the A->B generator checkpoint.
        epochs: Completed epochs.
        steps: Completed optimisation steps.
        seconds: Wall-clock seconds of the training call.
        steps_per_second: ``steps / seconds``.
        losses: The last epoch's mean losses.
        options: The ``train()`` options the demo passed.
        samples_image: The trainer's last sample grid, if it wrote one.
        loss_steps: Step of each logged loss record (for the training plot; not in ``report.json``).
        loss_curves: Each loss's logged values, aligned with ``loss_steps`` (not in ``report.json``).
    """

    generator: str
    epochs: int
    steps: int
    seconds: float
    steps_per_second: float
    losses: dict[str, float]
    options: dict[str, Any]
    samples_image: str | None
    loss_steps: list[int] = field(default_factory=list, repr=False)
    loss_curves: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The ``"training"`` object of ``report.json``."""
        return {"generator": self.generator, "epochs": self.epochs, "steps": self.steps, "seconds": self.seconds,
                "steps_per_second": self.steps_per_second, "losses": self.losses, "options": self.options,
                "samples_image": self.samples_image}


@dataclass
class GeneratorChoice:
    """Which generator the deployment stages use: the one trained here or the shipped pretrained one.

    Attributes:
        deployed: Checkpoint that the student, the exports, the benchmark and the ``PyTorch fp32`` column use.
        deployed_label: :data:`TRAINED_HERE_LABEL` or :data:`PRETRAINED_LABEL`.
        trained_here: The demo's own generator.
        pretrained: The pretrained generator as copied into the demo folder (``None``: not used; ``why`` says why).
        pretrained_record: How the pretrained generator was made (``poster_G_AB.json``), when used.
        distances: Mean abs difference of each generator's output to the held-out poster prints, by label.
        why: One sentence: which one, and why.
    """

    deployed: str
    deployed_label: str
    trained_here: str
    pretrained: str | None = None
    pretrained_record: dict[str, Any] = field(default_factory=dict)
    distances: dict[str, float] = field(default_factory=dict)
    why: str = ""

    @property
    def other(self) -> tuple[str, str] | None:
        """``(label, checkpoint)`` of the generator that is not deployed, if there is one."""
        if self.pretrained is None:
            return None
        if self.deployed_label == PRETRAINED_LABEL:
            return TRAINED_HERE_LABEL, self.trained_here
        return PRETRAINED_LABEL, self.pretrained


@dataclass
class StudentRecord:
    """The distillation stage: a smaller student of the demo's generator, made by ``cg-compress``.

    Attributes:
        path: The student checkpoint (``None`` when it could not be made; ``error`` says why).
        architecture: What the MAC budget chose, in one line.
        macs: The student's MACs of one image at the budget size.
        teacher_macs: The generator's (the teacher's) MACs at the same size.
        ratio: ``teacher_macs / macs``.
        budget_size: Side of the square image the MACs were counted at.
        epochs: Completed distillation epochs.
        steps: Completed distillation steps.
        seconds: Wall-clock seconds of the distillation call.
        command: The ``cg-compress`` command that makes the same student.
        error: Why there is no student.
    """

    path: str | None
    architecture: str = ""
    macs: int | None = None
    teacher_macs: int | None = None
    ratio: float | None = None
    budget_size: int | None = None
    epochs: int = 0
    steps: int = 0
    seconds: float = 0.0
    command: str = ""
    error: str | None = None


@dataclass
class DeploymentRecord:
    """What ``cg-export deploy`` chose among the candidates it made, verified and timed at the demo's main size.

    Attributes:
        folder: The deployment folder (``deploy.json``, its own report, the chosen artifact, ``candidates/``).
        artifact: The chosen artifact's path.
        candidate: The chosen candidate's name (``onnx-int8``).
        runtime: Its runtime.
        precision: Its precision.
        size: ``(height, width)`` deploy verified and timed at.
        why: Deploy's one-line reason for the choice.
    """

    folder: str
    artifact: str
    candidate: str
    runtime: str
    precision: str
    size: tuple[int, int]
    why: str


@dataclass
class ExportOutcome:
    """One ``cg-export`` step: the file it made and its verification, or why there is none."""

    precision: str
    backend: str
    path: str | None
    seconds: float | None = None
    psnr_db: float | None = None
    max_abs_err: float | None = None
    megabytes: float | None = None
    command: str = ""
    error: str | None = None


@dataclass
class SampleOutcome:
    """One stylized photograph on every backend, with each backend's parity against PyTorch on it.

    Attributes:
        photograph: The photograph's name.
        input_path: The photograph as stylized (written PNG).
        target_path: Its true poster-print version (written PNG).
        outputs: Each backend label's output file.
        psnr_db: Each backend label's PSNR against the PyTorch fp32 output.
        photo: The photograph as an RGB uint8 array (not in ``report.json``).
        target: The poster-print version as an array (not in ``report.json``).
        images: Each backend label's output as an array (not in ``report.json``).
    """

    photograph: str
    input_path: str
    target_path: str
    outputs: dict[str, str] = field(default_factory=dict)
    psnr_db: dict[str, float] = field(default_factory=dict)
    photo: np.ndarray | None = field(default=None, repr=False, compare=False)
    target: np.ndarray | None = field(default=None, repr=False, compare=False)
    images: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """One entry of ``report.json``'s ``"samples"``."""
        return {"photograph": self.photograph, "input_path": self.input_path, "target_path": self.target_path,
                "outputs": self.outputs, "psnr_db": self.psnr_db}


#: Mean abs difference (8-bit levels) to the true poster prints at or under which the demo's output counts as having
#: learned the style (issue 18's bar), and the level it aims for.
POSTER_MAE_LIMIT = 20.0
POSTER_MAE_GOAL = 15.0
#: The row of the unchanged photographs in :attr:`LearnedMapping.versions` (the distance training starts from).
PHOTOGRAPH_LABEL = "photograph"


@dataclass(frozen=True)
class PosterDistance:
    """How far one version of the held-out photographs is from their true poster prints (means over photographs).

    Attributes:
        label: ``"photograph"`` (the input itself), ``"PyTorch fp32"`` or a backend's column label.
        mae: Mean absolute difference in 8-bit levels (lower is closer).
        ssim: Structural similarity, 1 for identical images (scikit-image's, 7x7 windows, per channel).
        per_photograph: ``{photograph name: mean abs difference}``.
    """

    label: str
    mae: float
    ssim: float
    per_photograph: dict[str, float] = field(default_factory=dict)


@dataclass
class LearnedMapping:
    """How far training moved held-out photographs towards their true poster prints (8-bit levels and SSIM).

    Attributes:
        photograph_mae: Mean absolute difference of the photographs to their poster prints (``None``: not measured).
        output_mae: The same for the PyTorch model's outputs.
        summary: One sentence for people.
        photograph_ssim: SSIM of the photographs to their poster prints.
        output_ssim: SSIM of the PyTorch model's outputs.
        versions: The photograph, then every backend that stylized them, in the samples' column order.
    """

    photograph_mae: float | None
    output_mae: float | None
    summary: str
    photograph_ssim: float | None = None
    output_ssim: float | None = None
    versions: list[PosterDistance] = field(default_factory=list)

    @property
    def meets_limit(self) -> bool:
        """The model's output is within :data:`POSTER_MAE_LIMIT` of the true poster prints."""
        return self.output_mae is not None and self.output_mae <= POSTER_MAE_LIMIT

    def to_json(self) -> dict[str, Any]:
        """The ``"learned"`` object of ``report.json``."""
        return {**asdict(self), "limit_mae": POSTER_MAE_LIMIT, "goal_mae": POSTER_MAE_GOAL,
                "meets_limit": self.meets_limit}


@dataclass
class Figures:
    """The figures' file names in the demo folder (``None``: not drawn, the reason is in the notes)."""

    bench_plot: str | None = None
    samples_grid: str | None = None
    training_plot: str | None = None


@dataclass
class DemoResult:
    """Everything the demo did, as written to ``report.json``."""

    out: Path
    plan: DemoPlan
    quick: bool
    device: str
    seed: int
    offer_pretrained: bool = True
    threads: int | None = None
    stages: list[StageTime] = field(default_factory=list)
    training: TrainingRecord | None = None
    generators: GeneratorChoice | None = None
    student: StudentRecord | None = None
    deployment: DeploymentRecord | None = None
    learned: LearnedMapping | None = None
    exports: list[ExportOutcome] = field(default_factory=list)
    bench: BenchReport | None = None
    samples: list[SampleOutcome] = field(default_factory=list)
    figures: Figures = field(default_factory=Figures)
    notes: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        """Sum of the stages' wall-clock times."""
        return sum(stage.seconds for stage in self.stages)

    def to_json(self) -> dict[str, Any]:
        """The body of ``report.json``: JSON-safe (infinite PSNR as ``"inf"``, as cg-bench writes it)."""
        bench: dict[str, Any] = {}
        if self.bench is not None:
            bench = {**self.bench.to_json(), "reference": self.bench.reference, "timing": self.bench.timing}
        return _plain({
            "format": DEMO_FORMAT,
            "version": DEMO_VERSION,
            "quick": self.quick,
            "device": self.device,
            "seed": self.seed,
            "plan": asdict(self.plan),
            "stages": [asdict(stage) for stage in self.stages],
            "total_seconds": round(self.total_seconds, 1),
            "training": self.training.to_json() if self.training else {},
            "generators": asdict(self.generators) if self.generators else {},
            "student": asdict(self.student) if self.student else {},
            "learned": self.learned.to_json() if self.learned else {},
            "deployment": asdict(self.deployment) if self.deployment else {},
            "exports": [asdict(export) for export in self.exports],
            "bench": bench,
            "samples": [sample.to_json() for sample in self.samples],
            "figures": asdict(self.figures),
            "notes": self.notes,
            "commands": self.commands,
        })


def _plain(value: Any) -> Any:
    """JSON-safe copy: infinite floats as ``"inf"``, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return value
