"""``cg-export deploy``: every candidate made, verified on the user's held-out photographs, timed, and one chosen.

Stages, each reported through ``say``: check the inputs (nothing is written before they pass), split the
photographs, compute the PyTorch fp32 reference on the held-out ones, make each candidate of the table
(:mod:`cg_export.deploy.candidates`), verify it at the deployment size, time it with ``cg-bench``'s harness,
choose (:func:`cg_export.deploy.choice.choose`), and write the deployment folder as a whole
(:func:`cg_export.deploy.folder.replaced_folder`). A candidate that fails becomes a row with its reason.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cg_export.deploy.candidates import CANDIDATES, STUDENT_PREFIX, TARGETS, CandidateSpec, ExportJob, candidate_named
from cg_export.deploy.choice import OK, UNAVAILABLE, CandidateRow, Decision, choose
from cg_export.deploy.commands import candidate_command
from cg_export.deploy.distil import find_distiller
from cg_export.deploy.folder import check_output_folder, replaced_folder
from cg_export.deploy.photos import DeployError, DeployOptionError, PhotoSplit, split_photos
from cg_export.export.defaults import DEPLOY_OUTPUT, DEPLOY_SIZE, DEPLOY_TARGET
from cg_export.models import LoadedGenerator, load_generator
from cg_export.parity import DEFAULT_MIN_PSNR, compare_outputs, format_psnr
from cg_export.threads import threads as thread_settings

DEFAULT_SIZE = DEPLOY_SIZE
DEFAULT_TARGET = DEPLOY_TARGET
DEFAULT_OUTPUT = Path(DEPLOY_OUTPUT)
WORK_FOLDER = ".work"
KEPT_FOLDER = "candidates"

Say = Callable[[str, str], None]


@dataclass
class Source:
    """A checkpoint candidates are made from: the teacher (the user's model) or a distilled student."""

    role: str
    generator: LoadedGenerator
    traces: Any = field(default_factory=lambda: _trace_cache())  # one trace for its fp32, fp16 and int8 files

    @property
    def prefix(self) -> str:
        """What its candidates' names start with: nothing for the teacher, ``student-`` for a student."""
        return "" if self.role == "teacher" else STUDENT_PREFIX


def _trace_cache() -> Any:
    from cg_export.export.onnx import TraceCache

    return TraceCache()


@dataclass
class Deployment:
    """What :func:`deploy` made.

    Attributes:
        folder: The deployment folder.
        decision: The chosen row and why.
        rows: Every candidate's row, in table order.
        size: ``(height, width)`` everything was verified and timed at.
        target: The target (``local`` or ``jetson``).
        split: The photographs used (calibration and held-out verification).
        finish_on_device: Commands to run on the target device (``jetson`` without TensorRT here).
        manifest: The contents of ``deploy.json``.
    """

    folder: Path
    decision: Decision
    rows: list[CandidateRow]
    size: tuple[int, int]
    target: str
    split: PhotoSplit
    finish_on_device: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)


def deploy(
    checkpoint: str | Path,
    photos: str | Path,
    output: str | Path | None = None,
    *,
    size: tuple[int, int] | None = None,
    min_psnr_db: float | None = None,
    target: str | None = None,
    student: str | Path | None = None,
    candidates: Sequence[str] | None = None,
    keep_all: bool = False,
    engine_sizes: tuple[tuple[int, int], tuple[int, int]] | None = None,
    warmup: int | None = None,
    iterations: int | None = None,
    duration_s: float | None = None,
    arch: str | None = None,
    threads: int | None = None,
    compress: float | None = None,
    say: Say | None = None,
) -> Deployment:
    """Make every candidate artifact, verify and time each, choose the fastest that passes, write the folder.

    Args:
        checkpoint: The user's generator checkpoint (any format ``load_generator`` reads).
        photos: A folder of the user's photographs: part calibrates int8, the rest (held out) verifies.
        output: The deployment folder (default ``deploy``): new, empty, or an earlier deployment (replaced whole).
        size: ``(height, width)`` to verify and time at (default 256x256); multiples of the model's size multiple.
        min_psnr_db: Lowest worst-photo PSNR against PyTorch fp32 a candidate may have; ``None``: its precision's
            floor (:data:`cg_export.parity.DEFAULT_MIN_PSNR`).
        target: ``local`` (default: what this machine runs) or ``jetson`` (TensorRT finished on the device).
        student: A distilled student checkpoint; its candidates are verified against the teacher.
        candidates: Only these table rows (names such as ``onnx-int8``); default every row for the target.
        keep_all: Keep every candidate's artifact under ``candidates/``, not only the chosen one.
        engine_sizes: ``((min height, min width), (max height, max width))`` TensorRT engines take, for artifacts
            also run at other sizes than ``size`` (they are tuned, verified and timed at ``size``, which must lie in
            the range); default: exactly ``size``.
        warmup: Untimed runs per candidate (cg-bench's default when ``None``).
        iterations: Timed runs per candidate; default as many as fit in ``duration_s``.
        duration_s: Seconds of timed runs per candidate (cg-bench's default when ``None``).
        arch: Force the architecture of the checkpoints.
        threads: CPU threads for every runtime alike (PyTorch, ONNX Runtime, OpenVINO); default: the cores this
            process may use (:func:`cg_export.threads.default_threads`). On a shared machine, 1 keeps the comparison fair:
            spinning thread pools lose far more than single threads when cores are oversubscribed.
        compress: Distil a student with 1/``compress`` of the teacher's MACs (instead of ``student``), on the
            calibration photographs (never the held-out ones), with the distiller installed
            (:func:`cg_export.deploy.distil.find_distiller`: cg-compress); the library itself never trains.
        say: Receives ``(stage, text)`` progress lines; default prints them.

    Returns:
        The decision and every row; the same is in ``<output>/deploy.json``.

    Raises:
        DeployError: bad input (no photographs, too few, a size the model cannot take, an unknown target or
            candidate, an unusable output folder) or no candidate passed; nothing was written.
        CheckpointError: a checkpoint cannot be loaded.
    """
    from cg_export.bench import TimingSettings

    say = say or _print
    target = DEFAULT_TARGET if target is None else target
    if target not in TARGETS:
        raise DeployOptionError("target", repr(target), f"unknown; choose one of {', '.join(TARGETS)}")
    size = DEFAULT_SIZE if size is None else tuple(size)  # type: ignore[assignment]
    output = DEFAULT_OUTPUT if output is None else Path(output).expanduser()
    settings = TimingSettings.create(warmup, iterations, duration_s)
    if threads is not None and threads < 1:
        raise DeployOptionError("threads", threads, "must be 1 or more")
    specs = _select(target, candidates)
    check_output_folder(output)
    teacher = Source("teacher", load_generator(checkpoint, arch=arch))
    sources = [teacher]
    if student is not None and compress is not None:
        raise DeployOptionError("student", None, "give {student} or {compress}, not both")
    distil = None
    if compress is not None:
        if not compress > 1:
            raise DeployOptionError("compress", compress, "the student keeps 1/R of the teacher's MACs; give R above 1")
        distil = find_distiller()
    if student is not None:
        sources.append(Source("student", load_generator(student, arch=arch)))
    if engine_sizes is not None:
        low, high = (tuple(side) for side in engine_sizes)
        if not (low[0] <= size[0] <= high[0] and low[1] <= size[1] <= high[1]) or min(*low) <= 0:
            raise DeployOptionError("engine_sizes", f"{low[0]}x{low[1]}:{high[0]}x{high[1]}", "must be positive and take "
                                    f"{{size}} {size[0]}x{size[1]}")
        engine_sizes = (low, high)  # type: ignore[assignment]
    for source in sources:
        _check_size(source.generator, size)
        if output.resolve() in (source.generator.path.resolve(), *source.generator.path.resolve().parents):
            raise DeployError(f"-o {output}: would overwrite the {source.role} checkpoint; choose another folder")
    photos_folder = Path(photos).expanduser()
    if photos_folder.is_dir() and output.resolve() in (photos_folder.resolve(), *photos_folder.resolve().parents):
        raise DeployError(f"-o {output}: would overwrite the photographs in {photos_folder}; choose another folder")
    needs_calibration = distil is not None or any(spec.precision == "int8" and spec.missing() is None
                                                  for spec in specs)
    split = split_photos(photos_folder, calibrate=needs_calibration)
    for reason in split.skipped:
        say("skipped", reason)
    say("photos", f"{len(split.calibration)} to calibrate int8, {len(split.verification)} held out to verify on "
                  f"({', '.join(split.label(p) for p, _ in split.verification)}), at {size[0]}x{size[1]}")

    with replaced_folder(output) as build, thread_settings(threads):
        work = build / WORK_FOLDER
        calibration = split.write_calibration_folder(work / "calibration")
        if distil is not None:
            say("student", f"distilling a student from the teacher on the {len(split.calibration)} calibration "
                           "photographs")
            made_student = distil(teacher.generator.path, calibration, build / "student.pt", compress, say)
            distilled = Source("student", load_generator(made_student, arch=arch))
            _check_size(distilled.generator, size)
            sources.append(distilled)
        say("reference", f"PyTorch fp32 on the {len(split.verification)} held-out photographs "
                         f"({teacher.generator.description})")
        inputs = [(split.label(path), _model_input(image, size)) for path, image in split.verification]
        reference = _outputs(_runner(teacher.generator.path, (("device", "cpu"),), threads), inputs)
        rows: list[CandidateRow] = []
        made: dict[str, Path] = {}
        outputs: dict[str, list[np.ndarray]] = {}
        for source in sources:
            for spec in specs:
                row = _make_and_verify(spec, source, work, calibration, size, engine_sizes, min_psnr_db, inputs,
                                       reference, made, outputs, threads, say)
                rows.append(row)
        _time_rows(rows, made, specs, size, settings, threads, say)
        decision = choose(rows)
        if decision.chosen is None:
            raise DeployError(decision.why)
        finish = _finish_commands(target, rows, specs, teacher.generator, size, engine_sizes, min_psnr_db)
        kept = _arrange(build, work, rows, made, decision.chosen, keep_all, finish)
        from cg_export.deploy.report import write_deployment

        manifest = write_deployment(
            build, decision=decision, rows=rows, size=size, target=target, split=split, teacher=teacher.generator,
            student=sources[1].generator if len(sources) > 1 else None, min_psnr_db=min_psnr_db,
            settings=settings.describe() + (f", {threads} thread(s) per runtime" if threads else ""),
            finish_on_device=finish, kept=kept,
            chosen_outputs=outputs.get(decision.chosen.name, []),
            reference_outputs=reference, inputs=inputs, say=say)
    say("wrote", f"{output}: {manifest['artifact']} ({decision.chosen.runtime} {decision.chosen.precision}), "
                 "deploy.json, report.md, report.html")
    return Deployment(output, decision, rows, size, target, split, finish, manifest)


# ------------------------------------------------------------------------------------------------------ inputs


def _select(target: str, names: Sequence[str] | None) -> list[CandidateSpec]:
    specs = [spec for spec in CANDIDATES if target in spec.targets]
    if names is None:
        return specs
    known = {spec.name: spec for spec in specs}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise DeployOptionError("candidates", ", ".join(unknown), f"not a candidate for {{target}} {target}; choose "
                                f"from {', '.join(known)}")
    # A converted row needs the row it converts; bring it along so the request can be honoured.
    wanted = set(names)
    for name in names:
        if known[name].needs:
            wanted.add(known[name].needs)  # type: ignore[arg-type]
    return [spec for spec in specs if spec.name in wanted]


def _check_size(generator: LoadedGenerator, size: tuple[int, int]) -> None:
    multiple = generator.model.size_multiple
    height, width = size
    if height <= 0 or width <= 0 or height % multiple or width % multiple:
        raise DeployOptionError("size", (height, width), f"{generator.description} takes sizes that are positive "
                                f"multiples of {multiple}, e.g. {_round(height, multiple)}x{_round(width, multiple)}")


def _round(value: int, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def _model_input(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from cg_export.images import fit_to_size, to_model_input

    return to_model_input([fit_to_size(image, *size)])


# ------------------------------------------------------------------------------------------------------ stages


def _runner(path: Path, options: tuple[tuple[str, object], ...], threads: int | None) -> Any:
    from cg_export.backends import runner_for

    # runner_for passes each backend only the options its row takes: "threads" reaches ONNX Runtime and OpenVINO.
    return runner_for(path, threads=threads, **dict(options))


def _outputs(runner: Any, inputs: list[tuple[str, np.ndarray]]) -> list[np.ndarray]:
    with runner:
        return [runner(batch) for _, batch in inputs]


def _make_and_verify(
    spec: CandidateSpec, source: Source, work: Path, calibration: Path, size: tuple[int, int],
    engine_sizes: tuple[tuple[int, int], tuple[int, int]] | None, min_psnr_db: float | None,
    inputs: list[tuple[str, np.ndarray]], reference: list[np.ndarray],
    made: dict[str, Path], outputs: dict[str, list[np.ndarray]], threads: int | None, say: Say,
) -> CandidateRow:
    name = source.prefix + spec.name
    floor = DEFAULT_MIN_PSNR[spec.precision] if min_psnr_db is None else min_psnr_db
    row = CandidateRow(name, spec.backend, spec.runtime, spec.precision, floor, source=source.role)
    missing = spec.missing()
    if missing is not None:
        say("skipped", f"{name}: not available here ({missing})")
        return row.fail(f"not available here ({missing})", UNAVAILABLE)
    needed = made.get(source.prefix + spec.needs) if spec.needs else None
    folder = work / name
    job = ExportJob(source.generator, folder / f"{name}{spec.suffix}", needed, calibration, size, engine_sizes,
                    trace_cache=source.traces)
    row.command = _command(spec, job, name, source.prefix, verify=False,
                           checkpoint=str(source.generator.path.resolve()))
    if spec.needs and needed is None:
        return row.fail(f"needs {source.prefix + spec.needs}, which was not made")
    folder.mkdir(parents=True)
    started = time.perf_counter()
    try:
        artifact = spec.make(job)
    except Exception as exc:
        # Any exporter's own failure (an op a converter refuses, a quantizer error) is this row's, not the run's.
        say("failed", f"{name}: {exc}")
        return row.fail(f"export failed: {exc}")
    row.export_seconds = time.perf_counter() - started
    row.artifact = artifact.name
    made[name] = artifact
    try:
        got = _outputs(_runner(artifact, spec.runner_options, threads), inputs)
    except Exception as exc:  # a runtime's own error (an op it cannot run): report the row, go on
        say("failed", f"{name}: cannot run: {exc}")
        return row.fail(f"cannot run: {exc}")
    cases = [compare_outputs(label, expected, candidate)
             for (label, _), expected, candidate in zip(inputs, reference, got)]
    row.psnr_per_photo = {case.label: case.psnr_db for case in cases}
    row.max_abs_err = max(case.max_abs_err for case in cases)
    outputs[name] = got
    verdict = "passes" if row.psnr_db >= floor else "below"  # type: ignore[operator]
    say("verified", f"{name}: worst-photo PSNR {format_psnr(row.psnr_db)} ({verdict} its {floor:g} dB floor), "  # type: ignore[arg-type]
                    f"max abs error {row.max_abs_err:.2e}; made in {row.export_seconds:.1f} s")
    return row


def _time_rows(rows: list[CandidateRow], made: dict[str, Path], specs: list[CandidateSpec], size: tuple[int, int],
               settings: Any, threads: int | None, say: Say) -> None:
    from cg_export.bench import BenchTarget, run_benchmark

    options = {spec.name: spec.runner_options for spec in specs}
    verified = [row for row in rows if row.status == OK and row.psnr_per_photo]
    say("timing", f"{len(verified)} candidates at {size[0]}x{size[1]}, batch 1, with cg-bench's harness "
                  f"({settings.describe()})")
    by_label = {row.name: row for row in verified}
    targets = [BenchTarget(row.name, lambda p=made[row.name], o=options[row.name.removeprefix(STUDENT_PREFIX)]:
                           _runner(p, o, threads), made[row.name]) for row in verified]

    def timed(result: Any) -> None:
        row = by_label[result.model]
        if result.latency is None:
            row.fail(f"cannot be timed: {result.note}")
            say("failed", f"{row.name}: {row.reason}")
            return
        row.latency, row.compute = result.latency, result.compute
        say("timed", f"{row.name}: p50 {result.latency.p50:.2f} ms, p90 {result.latency.p90:.2f} ms at "
                     f"{size[0]}x{size[1]}")

    run_benchmark(targets, sizes=[size], batches=[1], warmup=settings.warmup, iterations=settings.iterations,
                  duration_s=None if settings.iterations is not None else settings.duration_s, progress=timed)


def _finish_commands(target: str, rows: list[CandidateRow], specs: list[CandidateSpec], generator: LoadedGenerator,
                     size: tuple[int, int], engine_sizes: tuple[tuple[int, int], tuple[int, int]] | None,
                     min_psnr_db: float | None) -> list[str]:
    """For a device target whose runtime is missing here: the commands that finish the candidates there."""
    if target != "jetson":
        return []
    commands = []
    by_name = {row.name: row for row in rows}
    for spec in specs:
        row = by_name.get(spec.name)
        needed = by_name.get(spec.needs) if spec.needs else None
        if row is None or row.status != UNAVAILABLE or needed is None or needed.status != OK:
            continue
        job = ExportJob(generator, Path(row.name + spec.suffix), None, Path("calib"), size, engine_sizes)
        # Made where deploy could not verify it: the command verifies on the device, at the run's floor.
        commands.append(_command(spec, job, row.name, "", verify=True, checkpoint="", min_psnr_db=min_psnr_db))
        commands.append(f"cg-bench {row.name}{spec.suffix} --size {size[0]}x{size[1]}")
    return commands


def _command(spec: CandidateSpec, job: ExportJob, name: str, prefix: str, *, verify: bool, checkpoint: str,
             min_psnr_db: float | None = None) -> str:
    """The candidate's command with its files named as deploy names them (run in the deployment folder)."""
    source = checkpoint
    if spec.needs:
        source = f"{prefix}{spec.needs}{candidate_named(spec.needs).suffix}"
    return candidate_command(spec, job, source=source, output=f"{name}{spec.suffix}", calibration="calib/",
                             verify=verify, min_psnr_db=min_psnr_db)


def _arrange(build: Path, work: Path, rows: list[CandidateRow], made: dict[str, Path], chosen: CandidateRow,
             keep_all: bool, finish: list[str]) -> list[str]:
    """Move the chosen artifact (with the files written beside it) to the folder's top; keep or drop the rest.

    Returns:
        The names of the candidates whose artifacts were kept under ``candidates/``.
    """
    for item in made[chosen.name].parent.iterdir():
        shutil.move(str(item), build / item.name)
    chosen.artifact = made[chosen.name].name
    # The files the device commands convert must travel with the folder, whatever else is dropped.
    needed_there = {row.artifact for row in rows if row.artifact and any(row.artifact in c.split() for c in finish)}
    kept = []
    for row in rows:
        if row is chosen or row.name not in made:
            continue
        if keep_all or row.artifact in needed_there:
            if row.artifact in needed_there:
                # The device commands name the file bare: they run in the deployment folder.
                for item in made[row.name].parent.iterdir():
                    shutil.move(str(item), build / item.name)
            else:
                (build / KEPT_FOLDER).mkdir(exist_ok=True)
                shutil.move(str(made[row.name].parent), build / KEPT_FOLDER / row.name)
                row.artifact = f"{KEPT_FOLDER}/{row.name}/{made[row.name].name}"
            kept.append(row.name)
        else:
            row.artifact = None
    shutil.rmtree(work)
    return kept


def _print(label: str, text: str) -> None:
    print(f"{label:<10}{text}", flush=True)


__all__ = ["DEFAULT_OUTPUT", "DEFAULT_SIZE", "DEFAULT_TARGET", "Deployment", "deploy"]
