"""The report of ``cg-demo``: a sample grid, a training plot, and one document, written as Markdown.

The document is built once, as Markdown, from the typed records of :mod:`cg_demo.results`; ``report.html`` is that
Markdown rendered by markdown-it-py (CommonMark with tables), so ``report.md`` and ``report.html`` always say the
same. Paths in the report are relative to the demo folder, so the folder can be moved or published as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from cg_demo.results import (
    PHOTOGRAPH_LABEL,
    POSTER_MAE_GOAL,
    POSTER_MAE_LIMIT,
    PRETRAINED_LABEL,
    REFERENCE_LABEL,
    STUDENT_LABEL,
    TRAINED_HERE_LABEL,
    DemoResult,
    ExportOutcome,
    SampleOutcome,
)
from cg_export.bench import BenchResult, import_pyplot
from cg_export.errors import CgExportError
from cg_export.files import atomic_output
from cg_export.html import markdown_page
from cg_export.models import create_generator, describe_architecture

# ------------------------------------------------------------------------------------------------------ figures


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1 has only the small bitmap font
        return ImageFont.load_default()


def write_sample_grid(result: DemoResult, path: Path, gap: int = 6) -> str | None:
    """Draw photographs (rows) by versions (columns): the photograph, its true poster print, every backend's output.

    Each backend's tile is captioned with its PSNR against the PyTorch output of the same photograph.

    Returns:
        ``path``'s name relative to the demo folder, or ``None`` when there is nothing to draw.
    """
    samples = [s for s in result.samples if s.outputs]
    if not samples:
        return None
    labels = list(dict.fromkeys(label for s in samples for label in s.outputs))
    columns = ["photograph", "poster print", *labels]
    titles = [*columns[:2], *(_column_title(result, label) for label in labels)]
    tiles = [[s.photo, s.target, *(s.images.get(label) for label in labels)] for s in samples]
    tile_w = max(t.shape[1] for row in tiles for t in row if t is not None)
    row_h = [max(t.shape[0] for t in row if t is not None) for row in tiles]
    font, small = _font(15), _font(13)
    header, caption = 28, 20
    width = len(columns) * tile_w + (len(columns) + 1) * gap
    height = header + sum(h + caption + gap for h in row_h) + gap
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles):
        draw.text((gap + c * (tile_w + gap) + tile_w // 2, header // 2), title, fill="black", font=font, anchor="mm")
    top = header
    for sample, row, h in zip(samples, tiles, row_h):
        for c, tile in enumerate(row):
            left = gap + c * (tile_w + gap)
            if tile is not None:
                canvas.paste(Image.fromarray(tile), (left, top))
            text = _caption(result, sample, columns[c])
            if text:
                draw.text((left + tile_w // 2, top + h + caption // 2), text, fill="#333333", font=small, anchor="mm")
        top += h + caption + gap
    with atomic_output(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path.name


def _column_title(result: DemoResult, label: str) -> str:
    choice = result.generators
    if choice is None or choice.pretrained is None:
        return label
    if label == REFERENCE_LABEL:
        return f"{choice.deployed_label}, PyTorch fp32"
    return f"{label}, PyTorch fp32" if label in (TRAINED_HERE_LABEL, PRETRAINED_LABEL) else label


def _caption(result: DemoResult, sample: SampleOutcome, column: str) -> str:
    if column == "photograph":
        return sample.photograph
    if column.startswith("poster"):
        return ""
    if column == REFERENCE_LABEL:
        return "reference"
    if column in (TRAINED_HERE_LABEL, PRETRAINED_LABEL):
        minutes = _generator_minutes(result, column)
        return "" if minutes is None else f"{minutes:.0f} min of training"
    psnr = sample.psnr_db.get(column)
    return "" if psnr is None else _db(psnr)


def _generator_minutes(result: DemoResult, label: str) -> float | None:
    """Training minutes of the generator trained here or of the pretrained one."""
    if label == TRAINED_HERE_LABEL:
        return result.training.seconds / 60 if result.training else None
    record = result.generators.pretrained_record if result.generators else {}
    return record["seconds"] / 60 if record else None


def write_training_plot(result: DemoResult, path: Path) -> str | None:
    """Plot the generator's losses over training, as the run logged them (needs matplotlib).

    Returns:
        ``path``'s name, or ``None`` (with a note in the result) when matplotlib is missing or nothing was logged.
    """
    training = result.training
    if training is None or not training.loss_steps:
        result.notes.append("training plot not drawn: the run logged no losses")
        return None
    try:
        plt = import_pyplot()
    except CgExportError as exc:
        result.notes.append(f"training plot not drawn: {exc}")
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, label in (("cycle", "cycle L1"), ("identity", "identity L1"), ("G_adv", "G adversarial (LSGAN)"),
                        ("D_A", "D_A"), ("D_B", "D_B")):
        if name in training.loss_curves:
            ax.plot(training.loss_steps, training.loss_curves[name], label=label, linewidth=1.4)
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    ax.set_title("cg-demo training losses", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=3)
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path.name


# ----------------------------------------------------------------------------------------------------- document


def _db(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "identical"
    return f"{float(value):.1f} dB"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _relative(result: DemoResult, path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).relative_to(result.out).as_posix()
    except ValueError:
        return str(path)


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table: the first row is the header; ``|`` in a cell is escaped."""
    header, *body = rows

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(row) for row in body)])


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def _figure(name: str, alt: str) -> str:
    """An image that links to itself, so the HTML page opens it full size on a click."""
    return f"[![{alt}]({name})]({name})"


def to_markdown(result: DemoResult) -> str:
    """The whole report as GitHub-flavoured Markdown, in reading order."""
    plan, figures = result.plan, result.figures
    environment = result.bench.environment if result.bench else {}
    versions = ", ".join(f"{k} {v}" for k, v in environment.get("versions", {}).items())
    stage_list = ", ".join(f"{s.name} {s.seconds:.0f} s" for s in result.stages)
    parts = ["# cg-demo report", _headline(result), _bullets([
        f"Machine: {environment.get('cpu', '?')} ({environment.get('cores', '?')} cores), "
        f"GPU: {environment.get('gpu') or 'none'}",
        f"Software: Python {environment.get('python', '?')}; {versions}",
        f"Run: `cg-demo{' --quick' if result.quick else ''}`, seed {result.seed}, training on {result.device}; "
        f"{result.total_seconds:.0f} s in all ({stage_list})",
    ])]

    parts.append("## Before and after")
    if figures.samples_grid:
        parts.append(_figure(figures.samples_grid, "photographs, their poster prints, and the output of every backend"))
    parts.append(
        f"Rows: {', '.join(s.photograph for s in result.samples)} (scikit-image's photographs that training, "
        "calibration and verification never used), resized to a shorter side of "
        f"{plan.sample_side} px. Columns: the photograph; its poster print, the procedural style that "
        "domain B was made with, so the right answer is known; "
        f"{_generator_columns(result)}each backend's output, captioned with its PSNR against PyTorch fp32 on the "
        "same photograph (8-bit images). Each file is in `stylized/`.")
    parts += _generator_parts(result)
    if result.learned and result.learned.versions:
        parts += ["### How close to the true poster prints", _learned_text(result),
                  markdown_table(_learned_table(result))]

    parts += ["## Exports: parity with PyTorch", *_deployment_parts(result), markdown_table(_export_table(result)),
              "`cg-export deploy` made every candidate this machine can run and verified each against PyTorch fp32 on "
              "the held-out half of the demo's domain-A training images (int8 is calibrated on the other half, never "
              "on the verification photographs), at the size above; a candidate is used in the later stages only at "
              "or above its precision's floor (fp32 50 dB, fp16 40 dB, int8 30 dB, worst photograph). Every verified "
              "artifact is kept (`--keep-all`), so the benchmark below times each of them at every size."]

    parts += ["## Latency and parity on every backend", markdown_table(_bench_table(result))]
    if result.bench and result.bench.timing:
        parts.append(
            f"cg-bench's harness: {result.bench.timing}; latency end to end (host array in, host array out); PSNR and "
            "max abs error against PyTorch fp32 on the CPU on a real photograph. Full table: `bench.md`, `bench.json`. "
            "Latency does not depend on how well the model is trained, only on its architecture and size.")
    if figures.bench_plot:
        parts.append(_figure(figures.bench_plot, "latency by input size and backend"))

    parts += ["## Student: a distilled, smaller generator", *_student_parts(result)]

    parts += ["## Training", _bullets(_training_lines(result))]
    if figures.training_plot:
        parts.append(_figure(figures.training_plot, "training losses"))

    parts += ["## Each step as a command",
              "What the demo ran, as the commands a user runs on their own data (paths as the demo wrote them):",
              "```bash\n" + "\n".join(result.commands) + "\n```"]
    if result.notes:
        parts += ["## Notes", _bullets(result.notes)]
    return "\n\n".join(parts) + "\n"


def _bench_rows(result: DemoResult) -> list[BenchResult]:
    return result.bench.results if result.bench else []


def _generator_columns(result: DemoResult) -> str:
    choice = result.generators
    if choice is None or choice.pretrained is None:
        return "then the generator trained here (PyTorch fp32) and "
    other = choice.other
    assert other is not None
    return (f"then {_generator_name(choice.deployed_label)}, which the student, the exports and the benchmark use "
            f"(PyTorch fp32); {_generator_name(other[0])}, for comparison, captioned with its training time; then ")


def _generator_name(label: str) -> str:
    return "the generator trained here" if label == TRAINED_HERE_LABEL else "the pretrained generator"


def _generator_parts(result: DemoResult) -> list[str]:
    """Which generator the later stages use and why, and how the pretrained one was made."""
    choice = result.generators
    if choice is None:
        return []
    parts = ["### Which generator", f"The later stages use {choice.why}."]
    record = choice.pretrained_record
    if record:
        parts.append(
            f"The pretrained generator (`{Path(choice.pretrained or '').relative_to(result.out)}`, shipped in the "
            "package as `cg_demo/pretrained/poster_G_AB.pt`) is the full demo's recipe, the same data, options "
            f"and seed, trained for {record['epochs']} epochs ({record['steps']} steps) instead of "
            f"{result.plan.epochs}: {record['seconds'] / 60:.0f} min on {record['machine']}, {record['software']}, "
            f"{record['trained']}. `benchmarks/pretrain_demo_generator.py` made it with these commands:")
        parts.append(f"```bash\n{record['data_command']}\n{record['train_command']}\n```")
    return parts


def _learned_text(result: DemoResult) -> str:
    learned, plan = result.learned, result.plan
    assert learned is not None
    steps = result.training.steps if result.training else "?"
    if learned.output_mae is None:
        return f"Not measured: {learned.summary}."
    verdict = ("within" if learned.meets_limit else "outside") + f" the demo's bar of {POSTER_MAE_LIMIT:.0f} levels"
    if learned.output_mae <= POSTER_MAE_GOAL:
        verdict += f" and its goal of {POSTER_MAE_GOAL:.0f}"
    return (f"Domain B is made procedurally, so the right answer for each held-out photograph is known. Mean "
            f"absolute difference (8-bit levels, lower is closer) and SSIM (1 is identical) to it, averaged over the "
            f"{len(result.samples)} photographs: the deployed generator's output (PyTorch fp32) is "
            f"{learned.output_mae:.1f} levels away ({verdict}), the photographs themselves "
            f"{learned.photograph_mae:.1f}. The demo trains a {plan.n_blocks}-block, ngf {plan.ngf} generator for "
            f"{steps} steps of {plan.image_size}-px crops.")


def _learned_table(result: DemoResult) -> list[list[str]]:
    learned = result.learned
    assert learned is not None
    names = list(learned.versions[0].per_photograph) if learned.versions else []
    rows = [["version", "mean abs difference (levels)", "SSIM", *(f"{name} (levels)" for name in names)]]
    for version in learned.versions:
        label = "the photograph itself" if version.label == PHOTOGRAPH_LABEL else _column_title(result, version.label)
        rows.append([label, f"{version.mae:.1f}", f"{version.ssim:.3f}",
                     *(f"{version.per_photograph.get(name, float('nan')):.1f}" for name in names)])
    return rows


def _headline(result: DemoResult) -> str:
    made = [e for e in result.exports if e.path]
    trt = next((e for e in result.exports if e.backend == "TensorRT"), None)
    rows = [r for r in _bench_rows(result) if r.latency is not None]
    training = result.training
    text = (f"Trained a small CycleGAN for {training.steps if training else '?'} steps "
            f"({training.seconds if training else 0:.0f} s on {result.device}), exported it to "
            f"{_made_list(made)}, each verified against PyTorch, "
            "benchmarked every file and stylized photographs it never saw.")
    choice, learned = result.generators, result.learned
    if choice is not None and choice.pretrained is not None:
        minutes = _generator_minutes(result, PRETRAINED_LABEL) or 0
        text += (f" Deployed: {_generator_name(choice.deployed_label)}"
                 + (f" (the same recipe trained for {minutes:.0f} min)" if choice.deployed_label == PRETRAINED_LABEL
                    else "") + ".")
    if learned is not None and learned.output_mae is not None:
        text += (f" Its output is {learned.output_mae:.1f} levels (SSIM {learned.output_ssim:.2f}) from the true "
                 f"poster prints of the held-out photographs, which are {learned.photograph_mae:.1f} from them.")
    if trt is not None and trt.path is None:
        text += " TensorRT: not built here (see the exports table)."
    size = min(((r.height, r.width) for r in rows), default=None)
    if size:
        at_size = [r for r in rows if (r.height, r.width) == size]
        base = next((r for r in at_size if _is_pytorch_fp32(r, result)), None)
        fastest = min((r for r in at_size if not _is_student(result, r)), key=_p50)
        text += f" Fastest at {size[0]}x{size[1]}: {_row_name(fastest, result)}, p50 {_ms(_p50(fastest))} ms"
        if base and fastest is not base:
            text += f" ({_p50(base) / _p50(fastest):.2f}x PyTorch fp32"
            text += f", PSNR {_db(fastest.psnr_db)} against the PyTorch fp32 reference)."
        else:
            text += "."
    return text


def _p50(row: BenchResult) -> float:
    assert row.latency is not None
    return row.latency.p50


def _made_list(made: list[ExportOutcome]) -> str:
    """``ONNX fp32, fp16 and int8 and TensorRT fp16``: the files made, grouped by runtime."""
    by_backend: dict[str, list[str]] = {}
    for export in made:
        by_backend.setdefault("ONNX" if export.backend == "ONNX Runtime" else export.backend, []).append(
            export.precision)
    parts = [f"{backend} {_and(precisions)}" for backend, precisions in by_backend.items()]
    return _and(parts) if parts else "nothing"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _is_student(result: DemoResult, row: BenchResult) -> bool:
    return bool(result.student and result.student.path and row.model == result.student.path)


def _is_pytorch_fp32(row: BenchResult, result: DemoResult) -> bool:
    """The trained generator's PyTorch fp32 row (not the student's): the baseline the speed-ups are relative to."""
    return row.backend == "torch" and row.precision == "fp32" and not _is_student(result, row)


def _is_reference(row: BenchResult, result: DemoResult) -> bool:
    """The PyTorch fp32 CPU row: the reference every other row's parity is measured against."""
    return _is_pytorch_fp32(row, result) and row.device == "cpu"


def _row_name(row: BenchResult, result: DemoResult) -> str:
    if _is_student(result, row):
        return f"student (PyTorch {row.precision or 'fp32'})"
    names = {"torch": "PyTorch", "onnxruntime": "ONNX Runtime", "tensorrt": "TensorRT"}
    backend = names.get(row.backend.split(":")[0], row.backend)
    return f"{backend} {row.precision or ''}".strip()


def _export_table(result: DemoResult) -> list[list[str]]:
    rows = [["precision", "runtime", "file", "MB", "export s", "PSNR vs PyTorch (worst)", "max abs error", "result"]]
    for e in result.exports:
        status = "verified" if e.path else (e.error or "not made")
        rows.append([e.precision, e.backend, f"`{_relative(result, e.path)}`" if e.path else "-",
                     "-" if e.megabytes is None else f"{e.megabytes:.2f}",
                     "-" if e.seconds is None else f"{e.seconds:.1f}", _db(e.psnr_db),
                     "-" if e.max_abs_err is None else f"{e.max_abs_err:.2e}", status])
    return rows


def _bench_table(result: DemoResult) -> list[list[str]]:
    rows = [["model", "backend", "precision", "device", "size", "p50 ms", "p90 ms", "vs PyTorch", "PSNR vs PyTorch",
             "max abs error", "peak MB"]]
    results = _bench_rows(result)
    base = {(r.height, r.width): _p50(r) for r in results if _is_pytorch_fp32(r, result) and r.latency is not None}
    for r in results:
        size = (r.height, r.width)
        first = [f"`{_relative(result, r.model)}`", r.backend, r.precision or "-", r.device or "-",
                 f"{size[0]}x{size[1]}"]
        if r.latency is None:
            rows.append([*first, "-", "-", "-", "-", "-", r.note or "did not run"])
            continue
        speed = "-" if size not in base else f"{base[size] / r.latency.p50:.2f}x"
        rows.append([
            *first, _ms(r.latency.p50), _ms(r.latency.p90), speed,
            "reference" if _is_reference(r, result) else _db(r.psnr_db),
            "-" if r.max_abs_err is None else f"{r.max_abs_err:.2e}",
            "-" if r.peak_mem_mb is None else f"{r.peak_mem_mb:.0f}",
        ])
    return rows


def _deployment_parts(result: DemoResult) -> list[str]:
    """Which artifact deploy chose and why, in its own words."""
    chosen = result.deployment
    if chosen is None:
        return []
    height, width = chosen.size
    return [f"**Deploy chose `{_relative(result, chosen.artifact)}`** ({chosen.runtime} {chosen.precision}) at "
            f"{height}x{width}: {chosen.why}. The deployment folder `{_relative(result, chosen.folder)}/` is what "
            f"`cg-stylize`, `cg-bench` and `runner_for` open directly; its own report is "
            f"`{_relative(result, chosen.folder)}/report.md`."]


def _student_parts(result: DemoResult) -> list[str]:
    """The student section: what the budget chose, and its MACs, latency and PSNR against the teacher per size."""
    student = result.student
    if student is None:
        return ["Not run."]
    if student.path is None:
        return [f"No student was made: {student.error}"]
    rows = [["model", "MACs (G)", "size", "p50 ms", "vs teacher", "PSNR vs teacher"]]
    bench = _bench_rows(result)
    teacher = {(r.height, r.width): r for r in bench if _is_reference(r, result) and r.latency is not None}
    for r in bench:
        if not _is_student(result, r):
            continue
        size, base = (r.height, r.width), teacher.get((r.height, r.width))
        macs = [(base, "teacher (PyTorch fp32)"), (r, "student (PyTorch fp32)")]
        for row, name in macs:
            if row is None or row.latency is None:
                continue
            rows.append([name, "-" if row.macs is None else f"{row.macs / 1e9:.3f}", f"{size[0]}x{size[1]}",
                         _ms(row.latency.p50),
                         "1.00x" if row is base else "-" if base is None else f"{_p50(base) / row.latency.p50:.2f}x",
                         "reference" if row is base else _db(row.psnr_db)])
    text = (f"`cg-compress` distilled the deployed generator (the teacher) into {student.architecture}, in "
            f"{student.steps} step{'s' if student.steps != 1 else ''} "
            f"({student.epochs} epoch{'s' if student.epochs != 1 else ''}, {student.seconds:.0f} s) on domain A's training "
            f"images: `{_relative(result, student.path)}`. The teacher draws the targets, "
            "so only photographs are needed. Below, cg-bench's harness timed both at the benchmark sizes and "
            "measured the student's PSNR against the teacher on a real photograph; its samples are the "
            f"\"{STUDENT_LABEL}\" column of the grid above. After a distillation this short expect a student close to the "
            "teacher but not equal; `cg-compress` with more epochs closes the gap.")
    return [text, markdown_table(rows)] if len(rows) > 1 else [text, "The benchmark did not time the student."]


def _training_lines(result: DemoResult) -> list[str]:
    plan, t = result.plan, result.training
    losses = ", ".join(f"{k} {v:.3f}" for k, v in t.losses.items()) if t else ""
    lines = [
        f"Data: {plan.train_per_domain} images per domain, {plan.data_size} px (`data/`): crops of scikit-image's "
        "astronaut, coffee, chelsea and hubble_deep_field photographs (public domain / CC0); domain B is other crops "
        "of the same photographs in the four-ink poster-print style (median-smoothed; navy, red, pale blue or cream "
        "by brightness, thresholds from each picture's own brightness; dark outlines on strong edges), drawn "
        "independently, so the data is unpaired.",
        f"Model: {describe_architecture(create_generator(plan.arch, ngf=plan.ngf, n_blocks=plan.n_blocks).config)}; "
        f"70x70 PatchGAN discriminators, ndf {plan.ndf}; LSGAN, cycle L1 10, "
        f"{f'identity L1 {plan.lambda_id:g}' if plan.lambda_id else 'no identity loss'}, "
        f"50-image replay buffers, Adam({plan.lr:g}, 0.5, 0.999), learning rate decaying linearly over the second "
        "half.",
        f"{t.epochs if t else '?'} epochs, {t.steps if t else '?'} steps of {plan.image_size}x{plan.image_size} crops "
        f"in {t.seconds if t else 0:.0f} s ({t.steps_per_second if t else 0:.2f} steps/s) on {result.device}; last "
        f"epoch's mean losses: {losses}.",
    ]
    if t and t.samples_image:
        lines.append(f"The trainer's own sample grid of the last epoch (real, translated, translated back): "
                     f"`{_relative(result, t.samples_image)}`.")
    return lines


# ------------------------------------------------------------------------------------------------------- HTML

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.7em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; } th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; } code { background: #f4f4f4; padding: 0 3px; }
pre { background: #f4f4f4; padding: 0.8em; overflow-x: auto; font-size: 13px; }
"""


def to_html(markdown: str, title: str = "cg-demo report") -> str:
    """Render Markdown as one self-contained HTML page (images are linked, relative to the page)."""
    return markdown_page(markdown, title, STYLE)


def write_report(result: DemoResult, markdown_path: Path, html_path: Path) -> None:
    """Write ``report.md`` and, rendered from the same Markdown, ``report.html``; each atomically."""
    markdown = to_markdown(result)
    with atomic_output(markdown_path) as tmp:
        tmp.write_text(markdown)
    with atomic_output(html_path) as tmp:
        tmp.write_text(to_html(markdown))
