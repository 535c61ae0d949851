"""``cg-demo``: the whole pipeline on embedded data, ending in a report.

One call of :func:`run_demo` makes the demo dataset (real photographs and their procedural "poster print" versions,
:mod:`training.demo_data`), trains a small CycleGAN on it, exports the A->B generator to ONNX in fp32, fp16 and int8
(each verified against PyTorch), builds a TensorRT engine when TensorRT is installed, benchmarks every file it made
with ``cg-bench``'s harness, stylizes photographs the training never saw with every backend, and writes
``report.md``, ``report.html`` and ``report.json`` (rendered by :mod:`training.demo_report`).

Every stage calls the same library functions as the commands (``cg-train``, ``cg-export onnx``, ``cg-export trt``,
``cg-bench``, ``cg-stylize``), and the report lists those commands, so what the demo shows is what a user gets.
A stage that cannot run here (TensorRT without a GPU, an int8 model that misses its parity floor) is reported with
its reason and the rest goes on; nothing is faked.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cg_export.errors import CgExportError, ParityError
from cg_export.files import atomic_output
from cg_export.images import sample_photographs
from cg_export.parity import psnr_uint8
from training.demo_data import HELD_OUT_PHOTOGRAPHS, make_demo_dataset, poster_style

DEMO_FORMAT = "cg-export.demo"
DEMO_VERSION = 1
#: Written first into the output folder; an earlier demo is recognised by it and replaced, anything else refused.
MARKER = ".cg-demo"
#: What the demo writes into its folder: removed (only these) when an earlier demo is replaced.
DEMO_ENTRIES = ("data", "run", "models", "stylized", "report.md", "report.html", "report.json", "bench.json",
                "bench.md", "bench.png", "samples.png", "training.png")

Say = Callable[[str, str], None]


@dataclass(frozen=True)
class DemoPlan:
    """How much the demo does. :data:`FULL_PLAN` is ``cg-demo``, :data:`QUICK_PLAN` is ``cg-demo --quick``.

    Attributes:
        data_size: Side of the square demo images on disk.
        train_per_domain: Training images per domain.
        image_size: Side of the training crops.
        epochs: Training epochs (the learning rate decays linearly to zero over the second half).
        arch: Generator architecture (registry name).
        ngf: Width of the generator's first layer.
        n_blocks: Residual blocks of the generator.
        ndf: Width of the discriminators' first layer.
        lr: Adam learning rate.
        lambda_id: Identity loss weight (the paper's 5 is slow to keep detail in a few hundred steps).
        bench_sizes: ``(height, width)`` sizes to benchmark.
        bench_seconds: Timed seconds per benchmark row.
        sample_side: Shorter side of the photographs stylized for the sample grid.
    """

    data_size: int
    train_per_domain: int
    image_size: int
    epochs: int
    arch: str
    ngf: int
    n_blocks: int
    ndf: int
    lr: float
    lambda_id: float
    bench_sizes: tuple[tuple[int, int], ...]
    bench_seconds: float
    sample_side: int


# Measured on a 2-core CPU: lr 1e-3 and identity weight 10 keep far more detail after ~1,000 steps than the paper's
# 2e-4 and 5 (which need tens of thousands); nearest-neighbour upsampling (resnet_upsample) avoided the checkerboard
# but drew blobs at this length, so the demo keeps the paper's ConvTranspose generator.
FULL_PLAN = DemoPlan(data_size=72, train_per_domain=64, image_size=64, epochs=16, arch="resnet", ngf=16,
                     n_blocks=3, ndf=16, lr=1e-3, lambda_id=10.0, bench_sizes=((256, 256), (512, 512)),
                     bench_seconds=2.0, sample_side=160)
QUICK_PLAN = DemoPlan(data_size=72, train_per_domain=48, image_size=64, epochs=4, arch="resnet", ngf=8,
                      n_blocks=2, ndf=16, lr=1e-3, lambda_id=10.0, bench_sizes=((256, 256),), bench_seconds=0.5,
                      sample_side=128)

PRECISIONS = ("fp32", "fp16", "int8")
#: The column every other backend's output is compared with in the samples.
REFERENCE_LABEL = "PyTorch fp32"


@dataclass
class StageTime:
    """Wall-clock seconds of one stage."""

    name: str
    seconds: float


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
    """One stylized photograph on every backend, with each backend's parity against PyTorch on it."""

    photograph: str
    input_path: str
    target_path: str
    outputs: dict[str, str] = field(default_factory=dict)
    psnr_db: dict[str, float] = field(default_factory=dict)


@dataclass
class DemoResult:
    """Everything the demo did, as written to ``report.json``."""

    out: Path
    plan: DemoPlan
    quick: bool
    device: str
    seed: int
    stages: list[StageTime] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    learned: dict[str, Any] = field(default_factory=dict)
    exports: list[ExportOutcome] = field(default_factory=list)
    bench: dict[str, Any] = field(default_factory=dict)
    samples: list[SampleOutcome] = field(default_factory=list)
    figures: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        """Sum of the stages' wall-clock times."""
        return sum(stage.seconds for stage in self.stages)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (the body of ``report.json``)."""
        return {
            "format": DEMO_FORMAT,
            "version": DEMO_VERSION,
            "quick": self.quick,
            "device": self.device,
            "seed": self.seed,
            "plan": asdict(self.plan),
            "stages": [asdict(stage) for stage in self.stages],
            "total_seconds": round(self.total_seconds, 1),
            "training": self.training,
            "learned": self.learned,
            "exports": [asdict(export) for export in self.exports],
            "bench": self.bench,
            "samples": [asdict(sample) for sample in self.samples],
            "figures": self.figures,
            "notes": self.notes,
            "commands": self.commands,
        }


def prepare_output(out: Path, say: Say) -> None:
    """Make ``out`` ready for a demo: create it, or clear an earlier demo's entries (only those).

    Raises:
        CgExportError: ``out`` is a file, or a non-empty folder that no earlier demo made.
    """
    if out.exists() and not out.is_dir():
        raise CgExportError(f"--out {out}: is a file; choose a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise CgExportError(f"--out {out}: the folder holds files that cg-demo did not write; "
                                "choose an empty or new folder")
        say("replacing", f"the earlier demo in {out}")
        for name in DEMO_ENTRIES:
            entry = out / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("This folder was written by cg-demo; running cg-demo here again replaces it.\n")


def run_demo(
    out: str | Path,
    *,
    quick: bool = False,
    device: str | None = None,
    seed: int | None = None,
    progress: bool = True,
    say: Say | None = None,
    plan: DemoPlan | None = None,
) -> DemoResult:
    """Run the whole pipeline on the embedded demo data and write the report into ``out``.

    Args:
        out: Output folder: new, empty, or an earlier demo's (replaced).
        quick: The smaller plan (:data:`QUICK_PLAN`): about a minute on a 2-core CPU.
        device: Training device: ``auto`` (default: CUDA when present), ``cpu``, ``cuda``.
        seed: Seed of the data and the training (default 0), so two runs on one machine train the same model.
        progress: Show progress bars (on stderr).
        say: Receives ``(label, text)`` progress lines; default prints them on stdout.
        plan: Override the plan (tests use a smaller one); ``quick`` then only labels the report.

    Returns:
        What was made and measured; ``out/report.md`` holds it for people, ``out/report.json`` for programs.

    Raises:
        CgExportError: ``out`` cannot be used, or a stage that every later stage depends on (data, training,
            fp32 export) failed.
    """
    from training.trainer import print_report, resolve_device

    say = say or print_report
    out = Path(out).expanduser()
    plan = plan or (QUICK_PLAN if quick else FULL_PLAN)
    seed = 0 if seed is None else seed
    torch_device = resolve_device(device or "auto")
    prepare_output(out, say)
    result = DemoResult(out, plan, quick, str(torch_device), seed)
    steps = (("data", _make_data), ("train", _train), ("export", _export), ("tensorrt", _tensorrt),
             ("bench", _bench), ("stylize", _stylize), ("report", _report))
    for number, (name, stage) in enumerate(steps, 1):
        say(f"[{number}/{len(steps)}]", STAGE_TITLES[name])
        started = time.perf_counter()
        stage(result, say, progress)
        result.stages.append(StageTime(name, round(time.perf_counter() - started, 1)))
    _write_json(result)
    say("done", f"{result.total_seconds:.0f} s in all; report: {out / 'report.html'} and {out / 'report.md'}")
    return result


STAGE_TITLES = {
    "data": "making the demo dataset (photographs and their poster-print versions)",
    "train": "training a small CycleGAN (cg-train)",
    "export": "exporting to ONNX fp32, fp16 and int8, each verified against PyTorch (cg-export onnx)",
    "tensorrt": "building a TensorRT fp16 engine if TensorRT is installed (cg-export trt)",
    "bench": "benchmarking every backend against the PyTorch reference (cg-bench)",
    "stylize": "stylizing photographs the model never saw, on every backend (cg-stylize)",
    "report": "writing the report",
}


# ------------------------------------------------------------------------------------------------------ stages


def _make_data(result: DemoResult, say: Say, progress: bool) -> None:
    plan = result.plan
    root = make_demo_dataset(result.out / "data", size=plan.data_size, train_per_domain=plan.train_per_domain,
                             test_per_domain=4, seed=result.seed)
    say("data", f"{root}: trainA/trainB {plan.train_per_domain} images each, {plan.data_size}x{plan.data_size}; "
                f"held out for the samples: {', '.join(HELD_OUT_PHOTOGRAPHS)}")


def _train(result: DemoResult, say: Say, progress: bool) -> None:
    from training.trainer import train

    plan = result.plan
    options = {"epochs": plan.epochs, "image_size": plan.image_size, "arch": plan.arch, "ngf": plan.ngf,
               "n_blocks": plan.n_blocks, "ndf": plan.ndf, "lr": plan.lr, "lambda_id": plan.lambda_id, "seed": result.seed,
               "device": result.device, "samples": 2, "log_every": 16}
    started = time.perf_counter()
    trained = train(result.out / "data", "run", out=result.out, progress=progress, report=say, **options)
    seconds = time.perf_counter() - started
    result.training = {
        "generator": str(trained.generator_AB),
        "epochs": trained.epochs_done,
        "steps": trained.global_step,
        "seconds": round(seconds, 1),
        "steps_per_second": round(trained.global_step / seconds, 2),
        "losses": {k: round(v, 4) for k, v in trained.losses.items()},
        "options": options,
        "samples_image": _last_sample_grid(trained.run_dir),
    }
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in options.items() if k not in ("samples", "log_every"))
    result.commands.append(f"cg-train {result.out / 'data'} --name run --out {result.out} {flags}")


def _last_sample_grid(run_dir: Path) -> str | None:
    grids = sorted((run_dir / "samples").glob("epoch_*.png"))
    return str(grids[-1]) if grids else None


def _export(result: DemoResult, say: Say, progress: bool) -> None:
    from cg_export.export.onnx import OnnxExportOptions, export_onnx
    from cg_export.models import load_generator

    checkpoint = Path(result.training["generator"])
    generator = load_generator(checkpoint)
    calib = result.out / "data" / "trainA"
    for precision in PRECISIONS:
        path = result.out / "models" / f"G_AB{'' if precision == 'fp32' else '_' + precision}.onnx"
        flags = {"fp32": "", "fp16": " --fp16", "int8": f" --int8 --calib {calib}"}[precision]
        command = f"cg-export onnx {checkpoint} -o {path}{flags}"
        outcome = ExportOutcome(precision, "ONNX Runtime", None, command=command)
        try:
            made = export_onnx(generator, path, OnnxExportOptions(fp16=precision == "fp16", int8=precision == "int8",
                                                                  calib=calib if precision == "int8" else None))
        except ParityError as exc:
            if precision == "fp32":
                raise
            # A lower precision that misses its floor is a finding, not a crash: report it and go on without it.
            outcome.error = str(exc)
            say("failed", f"{precision}: {exc}")
        else:
            assert made.parity is not None
            outcome.path = str(made.path)
            outcome.seconds = round(made.export_seconds, 2)
            outcome.psnr_db = made.parity.psnr_db
            outcome.max_abs_err = made.parity.max_abs_err
            outcome.megabytes = round(made.path.stat().st_size / 1e6, 3)
            say("exported", f"{precision}: {made.path} ({made.parity.summary()})")
        result.exports.append(outcome)
        result.commands.append(command)


def _tensorrt(result: DemoResult, say: Say, progress: bool) -> None:
    from cg_export.backends.tensorrt import import_tensorrt

    source = result.out / "models" / "G_AB.onnx"
    output = result.out / "models" / "G_AB_fp16.engine"
    command = f"cg-export trt {source} --fp16 -o {output}"
    outcome = ExportOutcome("fp16", "TensorRT", None, command=command)
    result.exports.append(outcome)
    try:
        import_tensorrt()
    except CgExportError as exc:
        outcome.error = str(exc)
        result.commands.append(f"# not run here, TensorRT is not installed: {command}")
        say("skipped", f"TensorRT: {exc}")
        return
    result.commands.append(command)
    from cg_export.export.trt import build_engine

    try:
        built = build_engine(source, output, fp16=True)
    except CgExportError as exc:
        # No GPU, an old driver, a parity miss: the engine is one backend among several, so report and go on.
        outcome.error = str(exc)
        say("failed", f"TensorRT: {exc}")
        return
    outcome.path = str(built.path)
    outcome.seconds = round(built.build_seconds, 2)
    if built.parity is not None:
        outcome.psnr_db = built.parity.psnr_db
        outcome.max_abs_err = built.parity.max_abs_err
    outcome.megabytes = round(built.path.stat().st_size / 1e6, 3)
    say("built", f"{built.path}")


def _models(result: DemoResult) -> list[tuple[str, Path]]:
    """``(column label, file)`` of the checkpoint and of every file the export stages made, in that order."""
    made = [(f"{'ONNX' if e.backend == 'ONNX Runtime' else e.backend} {e.precision}", Path(e.path))
            for e in result.exports if e.path is not None]
    return [(REFERENCE_LABEL, Path(result.training["generator"])), *made]


def _bench(result: DemoResult, say: Say, progress: bool) -> None:
    from tqdm import tqdm

    from cg_export import bench

    files = [path for _, path in _models(result)]
    targets = bench.targets_from_files(files, device=result.device)
    reference = bench.find_reference(files)
    bar = tqdm(total=len(targets) * len(result.plan.bench_sizes), unit="row", desc="bench", disable=not progress,
               leave=False)

    def advance(row: bench.BenchResult) -> None:
        bar.update(1)
        what = f"{Path(row.model).name} {row.backend} {row.precision or '-'} {row.height}x{row.width}"
        if row.latency is None:
            say("skipped", f"{what}: {row.note}")
        else:
            psnr = "" if row.psnr_db is None else f", PSNR {bench.format_value(row.psnr_db)} dB"
            say("timed", f"{what}: p50 {bench.format_ms(row.latency.p50)} ms{psnr}")

    try:
        report = bench.run_benchmark(targets, sizes=result.plan.bench_sizes, duration_s=result.plan.bench_seconds,
                                     reference=reference, progress=advance)
    finally:
        bar.close()
    bench.write_json(report, result.out / "bench.json")
    bench.write_markdown(report, result.out / "bench.md")
    result.bench = report.to_json()
    result.bench["reference"] = report.reference
    result.bench["timing"] = report.timing
    result.figures["bench_plot"] = None
    try:
        bench.write_plot(report, result.out / "bench.png")
        result.figures["bench_plot"] = "bench.png"
    except CgExportError as exc:
        result.notes.append(f"latency plot not drawn: {exc}")
    sizes = " ".join(f"--size {h}x{w}" for h, w in result.plan.bench_sizes)
    if result.device != "cpu":
        sizes += f" --device {result.device}"
    result.commands.append(f"cg-bench {' '.join(str(f) for f in files)} {sizes} --duration {result.plan.bench_seconds:g} "
                           f"--json {result.out / 'bench.json'} --markdown {result.out / 'bench.md'} "
                           f"--plot {result.out / 'bench.png'}")


def sample_inputs(side: int) -> list[tuple[str, np.ndarray]]:
    """The held-out photographs, resized so the shorter side is ``side`` (a multiple of 4 on both sides)."""
    chosen = []
    for name, photo in sample_photographs():
        if name not in HELD_OUT_PHOTOGRAPHS:
            continue
        height, width = photo.shape[:2]
        scale = side / min(height, width)
        size = (max(4, round(width * scale / 4) * 4), max(4, round(height * scale / 4) * 4))
        chosen.append((name, np.asarray(Image.fromarray(photo).resize(size, Image.LANCZOS))))
    return chosen


def _stylize(result: DemoResult, say: Say, progress: bool) -> None:
    from tqdm import tqdm

    from cg_export.backends import runner_for
    from cg_export.stylize import Stylizer

    folder = result.out / "stylized"
    photos = dict(sample_inputs(result.plan.sample_side))
    samples = []
    for name, photo in photos.items():
        source, target = folder / "input" / f"{name}.png", folder / "poster-print" / f"{name}.png"
        _save_png(photo, source)
        _save_png(np.asarray(poster_style(Image.fromarray(photo))), target)
        samples.append(SampleOutcome(name, str(source), str(target)))
    models = _models(result)
    bar = tqdm(total=len(models) * len(samples), unit="image", desc="stylize", disable=not progress, leave=False)
    reference: dict[str, np.ndarray] = {}
    try:
        for label, path in models:
            try:
                with runner_for(path, device=result.device) as runner:
                    stylizer = Stylizer(runner)
                    for sample in samples:
                        output = stylizer.image(photos[sample.photograph])
                        written = folder / label.replace(" ", "-") / f"{sample.photograph}.png"
                        _save_png(output, written)
                        sample.outputs[label] = str(written)
                        if label == REFERENCE_LABEL:
                            reference[sample.photograph] = output
                        if sample.photograph in reference:
                            sample.psnr_db[label] = psnr_uint8(reference[sample.photograph], output)
                        bar.update(1)
            except CgExportError as exc:
                result.notes.append(f"{label} could not stylize: {exc}")
                say("skipped", f"{label}: {exc}")
    finally:
        bar.close()
    result.samples = samples
    result.learned = measure_learned_mapping(samples)
    result.commands.append(f"cg-stylize {result.out / 'models' / 'G_AB_int8.onnx'} {folder / 'input'} "
                           f"-o {folder / 'ONNX-int8'}")
    say("learned", result.learned["summary"])


def measure_learned_mapping(samples: list[SampleOutcome]) -> dict[str, Any]:
    """How far training moved the photographs towards their true poster-print versions.

    Domain B is made procedurally from photographs, so unlike a real CycleGAN dataset the right answer for a held-out
    photograph is known: its poster-print version. Mean absolute difference (8-bit levels) of the photograph itself
    and of the PyTorch model's output to that version: training helped by as much as the second is below the first.
    """
    before, after = [], []
    for sample in samples:
        if REFERENCE_LABEL not in sample.outputs:
            continue
        target = np.asarray(Image.open(sample.target_path).convert("RGB"), dtype=np.float32)
        photo = np.asarray(Image.open(sample.input_path).convert("RGB"), dtype=np.float32)
        output = np.asarray(Image.open(sample.outputs[REFERENCE_LABEL]).convert("RGB"), dtype=np.float32)
        before.append(float(np.abs(photo - target).mean()))
        after.append(float(np.abs(output - target).mean()))
    if not before:
        return {"summary": "not measured: the PyTorch model did not run", "photograph_mae": None, "output_mae": None}
    photo_mae, output_mae = float(np.mean(before)), float(np.mean(after))
    return {
        "photograph_mae": round(photo_mae, 2),
        "output_mae": round(output_mae, 2),
        "summary": (f"mean abs difference to the true poster-print versions of the held-out photographs: "
                    f"{photo_mae:.1f} levels for the photographs, {output_mae:.1f} for the model's output"),
    }


def _save_png(image: np.ndarray, path: Path) -> None:
    with atomic_output(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def _report(result: DemoResult, say: Say, progress: bool) -> None:
    from training import demo_report

    result.figures["samples_grid"] = demo_report.write_sample_grid(result, result.out / "samples.png")
    result.figures["training_plot"] = demo_report.write_training_plot(result, result.out / "training.png")
    demo_report.write_markdown(result, result.out / "report.md")
    demo_report.write_html(result, result.out / "report.html")


def _write_json(result: DemoResult) -> None:
    # Written last, after the stage times are complete: its presence means the demo finished.
    with atomic_output(result.out / "report.json") as tmp:
        tmp.write_text(json.dumps(_plain(result.to_json()), indent=2, allow_nan=False) + "\n")


def _plain(value: Any) -> Any:
    """JSON-safe copy: infinite PSNR (identical outputs) as ``"inf"``, as cg-bench writes it."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return value
