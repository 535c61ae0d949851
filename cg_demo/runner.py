"""``cg-demo``: the whole pipeline on embedded data, ending in a report.

One call of :func:`run_demo` makes the demo dataset (real photographs and their procedural "poster print" versions,
:mod:`cg_demo.data`), trains a small CycleGAN on it, distils a smaller student from its A->B generator
(``cg-compress``), deploys the generator with ``cg-export deploy`` (ONNX fp32, fp16 and int8, TensorRT and OpenVINO
where installed, each verified against PyTorch and timed at the demo's main size, the fastest that passes chosen,
every candidate kept), benchmarks the generator, the student and every kept artifact at each of the demo's sizes with
``cg-bench``'s harness, stylizes photographs the training never saw with every backend, and writes
``report.md``, ``report.html`` and ``report.json`` (rendered by :mod:`cg_demo.report` from the typed records of
:mod:`cg_demo.results`).

Every stage calls the same library functions as the commands (``cg-train``, ``cg-compress``, ``cg-export deploy``,
``cg-bench``, ``cg-stylize``), and the report lists those commands, so what the demo shows is what a user gets.
A stage that cannot run here (TensorRT without a GPU, an int8 model that misses its parity floor) is reported with
its reason and the rest goes on; nothing is faked.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from cg_demo.data import HELD_OUT_PHOTOGRAPHS, make_demo_dataset, poster_style
from cg_demo.plan import DEFAULT_SEED, FULL_PLAN, QUICK_PLAN, DemoPlan, dataset_options, training_options
from cg_demo.results import (
    PHOTOGRAPH_LABEL,
    PRETRAINED_LABEL,
    REFERENCE_LABEL,
    STUDENT_LABEL,
    TRAINED_HERE_LABEL,
    DemoResult,
    DeploymentRecord,
    ExportOutcome,
    GeneratorChoice,
    LearnedMapping,
    PosterDistance,
    SampleOutcome,
    StageTime,
    StudentRecord,
    TrainingRecord,
)
from cg_export.cli.spelling import flags_for
from cg_export.deploy.choice import OK
from cg_export.errors import CgExportError, OptionError
from cg_export.files import atomic_output
from cg_export.images import sample_photographs
from cg_export.parity import psnr_uint8
from cg_export.threads import check_threads, torch_threads

#: Where the shipped pretrained generator is copied, so every command the report lists names a file in the folder.
PRETRAINED_FOLDER = "pretrained"
#: Written first into the output folder; an earlier demo is recognised by it and replaced, anything else refused.
MARKER = ".cg-demo"
#: What the demo writes into its folder: removed (only these) when an earlier demo is replaced.
DEMO_ENTRIES = ("data", "run", PRETRAINED_FOLDER, "deploy", "models", "stylized", "report.md", "report.html", "report.json", "bench.json",
                "bench.md", "bench.png", "samples.png", "training.png")

#: The deployment folder ``cg-export deploy`` writes (every candidate kept under its ``candidates/``).
DEPLOY_FOLDER = "deploy"

Say = Callable[[str, str], None]


def prepare_output(out: Path, say: Say) -> None:
    """Make ``out`` ready for a demo: create it, or clear an earlier demo's entries (only those).

    Raises:
        CgExportError: ``out`` is a file, or a non-empty folder that no earlier demo made.
    """
    if out.exists() and not out.is_dir():
        raise OptionError("out", out, "is a file; choose a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise OptionError("out", out, "the folder holds files that cg-demo did not write; choose an empty or new "
                              "folder")
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
    pretrained: bool = True,
    threads: int | None = None,
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
        pretrained: Also use the shipped pretrained generator (:mod:`cg_demo.pretrained`, the full plan's recipe
            trained for longer): both are shown, and the later stages use whichever is closer to the true poster
            prints. ``False`` uses only the generator trained here.
        threads: CPU threads of every stage (training, distilling, every runtime); ``None``:
            :func:`cg_export.threads.default_threads`.

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
    seed = DEFAULT_SEED if seed is None else seed
    torch_device = resolve_device(device or "auto")
    prepare_output(out, say)
    check_threads(threads)
    result = DemoResult(out, plan, quick, str(torch_device), seed, offer_pretrained=pretrained, threads=threads)
    steps = (("data", _make_data), ("train", _train), ("choose", _choose_generator), ("student", _student),
             ("export", _export), ("bench", _bench), ("stylize", _stylize), ("report", _report))
    for number, (name, stage) in enumerate(steps, 1):
        say(f"[{number}/{len(steps)}]", STAGE_TITLES[name])
        started = time.perf_counter()
        with torch_threads(threads):  # training and distilling; the runners are given the count themselves
            stage(result, say, progress)
        result.stages.append(StageTime(name, round(time.perf_counter() - started, 1)))
    _write_json(result)
    say("done", f"{result.total_seconds:.0f} s in all; report: {out / 'report.html'} and {out / 'report.md'}")
    return result


STAGE_TITLES = {
    "data": "making the demo dataset (photographs and their poster-print versions)",
    "train": "training a small CycleGAN (cg-train)",
    "choose": "comparing it with the pretrained generator (the same recipe, trained longer) on photographs neither "
              "saw",
    "student": "distilling a smaller student from the generator (cg-compress)",
    "export": "exporting every candidate this machine runs (ONNX fp32 / fp16 / int8, TensorRT and OpenVINO where "
              "installed), verifying each against PyTorch and choosing the fastest that passes (cg-export deploy)",
    "bench": "benchmarking every backend against the PyTorch reference (cg-bench)",
    "stylize": "stylizing photographs the model never saw, on every backend (cg-stylize)",
    "report": "writing the report",
}


# ------------------------------------------------------------------------------------------------------ stages


def _make_data(result: DemoResult, say: Say, progress: bool) -> None:
    plan = result.plan
    root = make_demo_dataset(result.out / "data", **dataset_options(plan, seed=result.seed))
    say("data", f"{root}: trainA/trainB {plan.train_per_domain} images each, {plan.data_size}x{plan.data_size}; "
                f"held out for the samples: {', '.join(HELD_OUT_PHOTOGRAPHS)}")


def _train(result: DemoResult, say: Say, progress: bool) -> None:
    from training.trainer import LOSSES_FILE, train

    plan = result.plan
    options = {**training_options(plan, seed=result.seed, device=result.device), "samples": 2, "log_every": 16}
    started = time.perf_counter()
    trained = train(result.out / "data", "run", out=result.out, progress=progress, report=say, **options)
    seconds = time.perf_counter() - started
    loss_steps, loss_curves = read_loss_curves(trained.run_dir / LOSSES_FILE)
    result.training = TrainingRecord(
        generator=str(trained.generator_AB),
        epochs=trained.epochs_done,
        steps=trained.global_step,
        seconds=round(seconds, 1),
        steps_per_second=round(trained.global_step / seconds, 2),
        losses={k: round(v, 4) for k, v in trained.losses.items()},
        options=options,
        samples_image=_last_sample_grid(trained.run_dir),
        loss_steps=loss_steps,
        loss_curves=loss_curves,
    )
    from training.cli import app as train_app

    flags = " ".join(flags_for(train_app, {k: v for k, v in options.items() if k not in ("samples", "log_every")}))
    result.commands.append(f"cg-train {result.out / 'data'} --name run -o {result.out} {flags}")


def read_loss_curves(log: Path) -> tuple[list[int], dict[str, list[float]]]:
    """The losses a training run logged, for the training plot: ``(steps, {loss name: values})``.

    The per-step records when the run logged any, otherwise the per-epoch means; empty when it logged nothing.
    Losses that are zero in every record (a weight of 0, such as ``--lambda-id 0``) are left out.
    """
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    records = [r for r in records if r.get("kind") == "steps"] or [r for r in records if r.get("kind") == "epoch"]
    # A loss the run did not use (weight 0, logged as 0 throughout) would only draw a flat line at zero.
    names = [name for name in LOSS_CURVES
             if records and all(name in r for r in records) and any(r[name] != 0 for r in records)]
    return [r["step"] for r in records], {name: [r[name] for r in records] for name in names}


#: The losses the training plot draws, in its legend's order.
LOSS_CURVES = ("cycle", "identity", "G_adv", "D_A", "D_B")


def _last_sample_grid(run_dir: Path) -> str | None:
    grids = sorted((run_dir / "samples").glob("epoch_*.png"))
    return str(grids[-1]) if grids else None


def _student(result: DemoResult, say: Say, progress: bool) -> None:
    from training.compress import compress
    from training.errors import TrainingError

    plan = result.plan
    teacher = _deployed(result)
    photos = result.out / "data" / "trainA"
    output = teacher.parent / f"{teacher.stem}_student.pt"
    options = {"ratio": plan.student_ratio, "epochs": plan.student_epochs,
               "batch_size": plan.student_batch, "image_size": plan.image_size,
               "lr": plan.student_lr, "seed": result.seed, "device": result.device}
    from training.compress_cli import app as compress_app

    command = f"cg-compress {teacher} --photos {photos} -o {output} {' '.join(flags_for(compress_app, options))}"
    result.commands.append(command)
    started = time.perf_counter()
    try:
        made = compress(teacher, photos, output=output, progress=progress, report=say, **options)
    except TrainingError as exc:
        # A generator too small for any student within the budget is a finding: report it, the rest goes on.
        result.student = StudentRecord(None, command=command, error=str(exc))
        result.notes.append(f"no student: {exc}")
        say("skipped", f"student: {exc}")
        return
    choice = made.choice
    result.student = StudentRecord(
        path=str(made.student), architecture=choice.describe(), macs=choice.cost.macs,
        teacher_macs=choice.teacher_cost.macs, ratio=round(choice.ratio, 2), budget_size=choice.cost.height,
        epochs=made.epochs_done, steps=made.global_step, seconds=round(time.perf_counter() - started, 1),
        command=command)


def _export(result: DemoResult, say: Say, progress: bool) -> None:
    from cg_export.deploy import deploy

    checkpoint = _deployed(result)
    photos = result.out / "data" / "trainA"
    folder = result.out / DEPLOY_FOLDER
    height, width = result.plan.bench_sizes[0]
    # keep_all: the bench and stylize stages run every verified candidate, not only the chosen one, at every size
    # they use, so TensorRT engines take the range from the smallest to the largest of those sizes.
    sizes = [*result.plan.bench_sizes, *(photo.shape[:2] for _, photo in sample_inputs(result.plan.sample_side))]
    engine_sizes = ((min(h for h, _ in sizes), min(w for _, w in sizes)),
                    (max(h for h, _ in sizes), max(w for _, w in sizes)))
    made = deploy(checkpoint, photos, folder, size=(height, width), keep_all=True, engine_sizes=engine_sizes,
                  duration_s=result.plan.bench_seconds, threads=result.threads, say=say)
    (low_h, low_w), (high_h, high_w) = engine_sizes
    result.commands.append(f"cg-export deploy {checkpoint} --photos {photos} --size {height}x{width} "
                           f"--duration {result.plan.bench_seconds:g} --keep-all --size-range {low_h}x{low_w}:"
                           f"{high_h}x{high_w} -o {folder}")
    chosen = made.decision.chosen
    assert chosen is not None and chosen.artifact is not None  # deploy raises when nothing passes
    result.deployment = DeploymentRecord(str(folder), str(folder / chosen.artifact), chosen.name, chosen.runtime,
                                         chosen.precision, (height, width), made.decision.why)
    for row in made.rows:
        if row.backend == "torch":
            continue  # the checkpoint itself: the reference the others are verified against, not an export
        outcome = ExportOutcome(row.precision, row.runtime, None, command=row.command or "")
        if row.passes and row.artifact is not None:
            path = folder / row.artifact
            outcome.path = str(path)
            outcome.megabytes = round(path.stat().st_size / 1e6, 3)
        elif row.status == OK:
            # Made but below its floor: a finding, reported with its numbers, and kept out of the later stages.
            outcome.error = f"below its {row.floor_db:g} dB floor on the held-out photographs"
        else:
            outcome.error = row.reason or row.status
        outcome.seconds = None if row.export_seconds is None else round(row.export_seconds, 2)
        outcome.psnr_db = row.psnr_db
        outcome.max_abs_err = row.max_abs_err
        result.exports.append(outcome)
    say("chose", made.decision.why)


def _models(result: DemoResult, *, with_other_generator: bool = True) -> list[tuple[str, Path]]:
    """``(column label, file)`` of the deployed generator, the other one (when there are two), the student and every
    file the export stage made, in that order."""
    made = [(f"{'ONNX' if e.backend == 'ONNX Runtime' else e.backend} {e.precision}", Path(e.path))
            for e in result.exports if e.path is not None]
    student = [(STUDENT_LABEL, Path(result.student.path))] if result.student and result.student.path else []
    other = result.generators.other if result.generators and with_other_generator else None
    return [(REFERENCE_LABEL, _deployed(result)), *([(other[0], Path(other[1]))] if other else []), *student, *made]


def _deployed(result: DemoResult) -> Path:
    """The generator the student, the exports and the benchmark use."""
    return Path(result.generators.deployed) if result.generators else Path(_trained(result).generator)


def _choose_generator(result: DemoResult, say: Say, progress: bool) -> None:
    """Copy the shipped pretrained generator in, measure both on the held-out photographs, deploy the closer one."""
    trained = _trained(result).generator
    choice = GeneratorChoice(deployed=trained, deployed_label=TRAINED_HERE_LABEL, trained_here=trained)
    result.generators = choice
    if not result.offer_pretrained:
        choice.why = "the generator trained here (the pretrained one was not asked for: --no-pretrained)"
        say("chose", choice.why)
        return
    from cg_demo.pretrained import pretrained_generator

    try:
        shipped, made = pretrained_generator()
    except CgExportError as exc:
        choice.why = f"the generator trained here: the pretrained one cannot be used ({exc})"
        result.notes.append(f"no pretrained generator: {exc}")
        say("skipped", f"pretrained generator: {exc}")
        return
    copy = result.out / PRETRAINED_FOLDER / "G_AB.pt"
    copy.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(copy) as tmp:
        shutil.copyfile(shipped, tmp)
    choice.pretrained, choice.pretrained_record = str(copy), made.to_json()
    for label, path in ((TRAINED_HERE_LABEL, trained), (PRETRAINED_LABEL, str(copy))):
        distance = measure_generator(path, result.plan.sample_side, device=result.device,
                                     threads=result.threads).output_mae
        assert distance is not None  # both generators are PyTorch checkpoints that just loaded and ran
        choice.distances[label] = distance
    here, there = choice.distances[TRAINED_HERE_LABEL], choice.distances[PRETRAINED_LABEL]
    minutes = (result.training.seconds if result.training else 0) / 60
    if there < here:
        choice.deployed, choice.deployed_label = str(copy), PRETRAINED_LABEL
        choice.why = (f"the pretrained generator ({made.minutes:.0f} min of training, {there:.1f} levels from the "
                      f"true poster prints) over the one trained here ({minutes:.1f} min, {here:.1f} levels)")
    else:
        choice.why = (f"the generator trained here ({minutes:.1f} min, {here:.1f} levels from the true poster prints) "
                      f"over the pretrained one ({made.minutes:.0f} min, {there:.1f} levels)")
    say("chose", choice.why)


def measure_generator(checkpoint: str | Path, sample_side: int, device: str = "cpu",
                      threads: int | None = None) -> LearnedMapping:
    """Stylize the held-out photographs with one model file and measure its distance to their true poster prints.

    The same photographs, sizes and measure as the report's (:func:`sample_inputs`, :func:`measure_learned_mapping`);
    the model's row is :data:`REFERENCE_LABEL`.
    """
    from cg_export.backends import runner_for
    from cg_export.stylize import Stylizer

    samples = []
    with runner_for(checkpoint, device=device, threads=threads) as runner:
        stylizer = Stylizer(runner)
        for name, photo in sample_inputs(sample_side):
            target = np.asarray(poster_style(Image.fromarray(photo)))
            samples.append(SampleOutcome(name, "", "", photo=photo, target=target,
                                         images={REFERENCE_LABEL: stylizer.image(photo)}))
    return measure_learned_mapping(samples)


def _trained(result: DemoResult) -> TrainingRecord:
    if result.training is None:
        raise CgExportError("the demo has no trained generator: the training stage did not run")
    return result.training


def _bench(result: DemoResult, say: Say, progress: bool) -> None:
    from tqdm import tqdm

    from cg_export import bench

    files = [path for _, path in _models(result, with_other_generator=False)]
    targets = bench.targets_from_files(files, device=result.device, threads=result.threads)
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
                                     reference=reference, progress=advance, threads=result.threads)
    finally:
        bar.close()
    bench.write_json(report, result.out / "bench.json")
    bench.write_markdown(report, result.out / "bench.md")
    result.bench = report
    try:
        bench.write_plot(report, result.out / "bench.png")
        result.figures.bench_plot = "bench.png"
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
        poster = np.asarray(poster_style(Image.fromarray(photo)))
        _save_png(photo, source)
        _save_png(poster, target)
        samples.append(SampleOutcome(name, str(source), str(target), photo=photo, target=poster))
    models = _models(result)
    bar = tqdm(total=len(models) * len(samples), unit="image", desc="stylize", disable=not progress, leave=False)
    reference: dict[str, np.ndarray] = {}
    try:
        for label, path in models:
            try:
                with runner_for(path, device=result.device, threads=result.threads) as runner:
                    stylizer = Stylizer(runner)
                    for sample in samples:
                        output = stylizer.image(photos[sample.photograph])
                        written = folder / label.replace(" ", "-") / f"{sample.photograph}.png"
                        _save_png(output, written)
                        sample.outputs[label] = str(written)
                        sample.images[label] = output
                        if label == REFERENCE_LABEL:
                            reference[sample.photograph] = output
                        # Parity is against the deployed generator; the other generator is a different model.
                        if sample.photograph in reference and label not in (TRAINED_HERE_LABEL, PRETRAINED_LABEL):
                            sample.psnr_db[label] = psnr_uint8(reference[sample.photograph], output)
                        bar.update(1)
            except CgExportError as exc:
                result.notes.append(f"{label} could not stylize: {exc}")
                say("skipped", f"{label}: {exc}")
    finally:
        bar.close()
    result.samples = samples
    result.learned = measure_learned_mapping(samples)
    if result.deployment is not None:
        chosen = f"{result.deployment.runtime} {result.deployment.precision}".replace("ONNX Runtime", "ONNX")
        result.commands.append(f"cg-stylize {result.deployment.folder} {folder / 'input'} "
                               f"-o {folder / chosen.replace(' ', '-')}")
    say("learned", result.learned.summary)


def measure_learned_mapping(samples: list[SampleOutcome]) -> LearnedMapping:
    """How far training moved the photographs towards their true poster-print versions.

    Domain B is made procedurally from photographs, so unlike a real CycleGAN dataset the right answer for a held-out
    photograph is known: its poster-print version. Mean absolute difference (8-bit levels) and SSIM to that version
    of the photograph itself (where training starts from), of the PyTorch model's output and of every backend's:
    training helped by as much as the model's distance is below the photograph's.
    """
    from skimage.metrics import structural_similarity

    labels = list(dict.fromkeys(label for sample in samples for label in sample.images))
    distances: dict[str, dict[str, tuple[float, float]]] = {}
    for sample in samples:
        if sample.photo is None or sample.target is None:
            continue
        target = sample.target.astype(np.float32)
        for label, image in [(PHOTOGRAPH_LABEL, sample.photo), *((k, sample.images[k]) for k in labels
                                                                 if k in sample.images)]:
            mae = float(np.abs(image.astype(np.float32) - target).mean())
            ssim = float(structural_similarity(image, sample.target, channel_axis=2, data_range=255))
            distances.setdefault(label, {})[sample.photograph] = (mae, ssim)
    versions = [PosterDistance(label, round(float(np.mean([m for m, _ in by_photo.values()])), 2),
                               round(float(np.mean([s for _, s in by_photo.values()])), 3),
                               {name: round(m, 2) for name, (m, _) in by_photo.items()})
                for label, by_photo in distances.items()]
    found = {version.label: version for version in versions}
    photograph, output = found.get(PHOTOGRAPH_LABEL), found.get(REFERENCE_LABEL)
    if photograph is None or output is None:
        return LearnedMapping(None, None, "not measured: the PyTorch model did not run", versions=versions)
    return LearnedMapping(
        photograph_mae=photograph.mae,
        output_mae=output.mae,
        photograph_ssim=photograph.ssim,
        output_ssim=output.ssim,
        versions=versions,
        summary=(f"distance to the true poster-print versions of the held-out photographs: the photographs "
                 f"{photograph.mae:.1f} levels (mean abs difference), SSIM {photograph.ssim:.2f}; the model's output "
                 f"{output.mae:.1f} levels, SSIM {output.ssim:.2f}"),
    )


def _save_png(image: np.ndarray, path: Path) -> None:
    with atomic_output(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def _report(result: DemoResult, say: Say, progress: bool) -> None:
    from cg_demo import report

    result.figures.samples_grid = report.write_sample_grid(result, result.out / "samples.png")
    result.figures.training_plot = report.write_training_plot(result, result.out / "training.png")
    report.write_report(result, result.out / "report.md", result.out / "report.html")


def _write_json(result: DemoResult) -> None:
    # Written last, after the stage times are complete: its presence means the demo finished.
    with atomic_output(result.out / "report.json") as tmp:
        tmp.write_text(json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n")

