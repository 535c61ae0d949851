"""The report of ``cg-demo``: a sample grid, a training plot, and one document rendered as Markdown and as HTML.

The document is built once as a list of blocks (headings, paragraphs, tables, images, code) from the
:class:`~training.demo.DemoResult`, then rendered twice, so ``report.md`` and ``report.html`` always say the same.
Paths in the report are relative to the demo folder, so the folder can be moved or published as it is.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cg_export.errors import CgExportError
from cg_export.files import atomic_output
from training.demo import REFERENCE_LABEL, DemoResult, SampleOutcome
from training.trainer import LOSSES_FILE

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
    tiles = [[_read(s.input_path), _read(s.target_path), *(_read(s.outputs.get(label)) for label in labels)]
             for s in samples]
    tile_w = max(t.shape[1] for row in tiles for t in row if t is not None)
    row_h = [max(t.shape[0] for t in row if t is not None) for row in tiles]
    font, small = _font(15), _font(13)
    header, caption = 28, 20
    width = len(columns) * tile_w + (len(columns) + 1) * gap
    height = header + sum(h + caption + gap for h in row_h) + gap
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(columns):
        draw.text((gap + c * (tile_w + gap) + tile_w // 2, header // 2), title, fill="black", font=font, anchor="mm")
    top = header
    for sample, row, h in zip(samples, tiles, row_h):
        for c, tile in enumerate(row):
            left = gap + c * (tile_w + gap)
            if tile is not None:
                canvas.paste(Image.fromarray(tile), (left, top))
            text = _caption(sample, columns[c])
            if text:
                draw.text((left + tile_w // 2, top + h + caption // 2), text, fill="#333333", font=small, anchor="mm")
        top += h + caption + gap
    with atomic_output(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path.name


def _caption(sample: SampleOutcome, column: str) -> str:
    if column == "photograph":
        return sample.photograph
    if column.startswith("poster"):
        return ""
    if column == REFERENCE_LABEL:
        return "reference"
    psnr = sample.psnr_db.get(column)
    return "" if psnr is None else _db(psnr)


def _read(path: str | None) -> np.ndarray | None:
    return None if path is None else np.asarray(Image.open(path).convert("RGB"))


def write_training_plot(result: DemoResult, path: Path) -> str | None:
    """Plot the generator's losses over training from the run's ``losses.jsonl`` (needs matplotlib).

    Returns:
        ``path``'s name, or ``None`` (with a note in the result) when matplotlib is missing or nothing was logged.
    """
    from cg_export.bench import import_pyplot

    log = Path(result.training["generator"]).parent / LOSSES_FILE
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    records = [r for r in records if r.get("kind") == "steps"] or [r for r in records if r.get("kind") == "epoch"]
    if not records:
        result.notes.append("training plot not drawn: the run logged no losses")
        return None
    try:
        plt = import_pyplot()
    except CgExportError as exc:
        result.notes.append(f"training plot not drawn: {exc}")
        return None
    steps = [r["step"] for r in records]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, label in (("cycle", "cycle L1"), ("identity", "identity L1"), ("G_adv", "G adversarial (LSGAN)"),
                        ("D_A", "D_A"), ("D_B", "D_B")):
        ax.plot(steps, [r[name] for r in records], label=label, linewidth=1.4)
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


@dataclass
class Block:
    """One piece of the report: ``kind`` is heading, text, table, image, code or list."""

    kind: str
    content: Any
    extra: Any = None


def _db(value: float | str | None) -> str:
    if value is None:
        return "-"
    if value == "inf" or (isinstance(value, float) and math.isinf(value)):
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


def build_document(result: DemoResult) -> list[Block]:
    """The report as blocks, in reading order."""
    blocks = [Block("heading", "cg-demo report", 1), Block("text", _headline(result))]
    env = result.bench.get("environment", {})
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
    stage_list = ", ".join(f"{s.name} {s.seconds:.0f} s" for s in result.stages)
    blocks.append(Block("list", [
        f"Machine: {env.get('cpu', '?')} ({env.get('cores', '?')} cores), GPU: {env.get('gpu') or 'none'}",
        f"Software: Python {env.get('python', '?')}; {versions}",
        f"Run: `cg-demo{' --quick' if result.quick else ''}`, seed {result.seed}, training on {result.device}; "
        f"{result.total_seconds:.0f} s in all ({stage_list})",
    ]))

    blocks += [Block("heading", "Before and after", 2)]
    if result.figures.get("samples_grid"):
        blocks.append(Block("image", result.figures["samples_grid"], "photographs, their poster prints, and the "
                                                                      "output of every backend"))
    blocks.append(Block("text", (
        f"Rows: {', '.join(s.photograph for s in result.samples)} (scikit-image's photographs that training, "
        "calibration and verification never used), resized to a shorter side of "
        f"{result.plan.sample_side} px. Columns: the photograph; its poster print, the procedural style that "
        "domain B was made with, so the right answer is known; then each backend's output, captioned with its PSNR "
        "against PyTorch fp32 on the same photograph (8-bit images). Each file is in `stylized/`.")))
    if result.learned.get("summary"):
        blocks.append(Block("text", (
            f"How much it learned: {result.learned['summary']}. The demo trains for "
            f"{result.training.get('steps', '?')} steps at {result.plan.image_size} px with a "
            f"{result.plan.n_blocks}-block, ngf {result.plan.ngf} generator so that it ends in minutes on a "
            "laptop CPU; the paper trains 9 blocks at ngf 64 for 200 epochs, so expect a colour and texture shift "
            "towards the poster palette, not a finished style.")))

    blocks += [Block("heading", "Exports: parity with PyTorch", 2), Block("table", _export_table(result))]
    blocks.append(Block("text", (
        "Each ONNX file is checked right after export by ONNX Runtime against PyTorch on real photographs at a square "
        "and a non-square size, and kept only above its precision's floor (fp32 50 dB and max abs error 1e-3, fp16 "
        "40 dB, int8 30 dB). int8 is calibrated on the demo's domain-A training images.")))

    blocks += [Block("heading", "Latency and parity on every backend", 2)]
    blocks.append(Block("table", _bench_table(result)))
    timing = result.bench.get("timing")
    if timing:
        blocks.append(Block("text", (
            f"cg-bench's harness: {timing}; latency end to end (host array in, host array out); PSNR and max abs "
            "error against PyTorch fp32 on the CPU on a real photograph. Full table: `bench.md`, `bench.json`. "
            "Latency does not depend on how well the model is trained, only on its architecture and size.")))
    if result.figures.get("bench_plot"):
        blocks.append(Block("image", result.figures["bench_plot"], "latency by input size and backend"))

    blocks += [Block("heading", "Training", 2), Block("list", _training_lines(result))]
    if result.figures.get("training_plot"):
        blocks.append(Block("image", result.figures["training_plot"], "training losses"))

    blocks += [Block("heading", "Each step as a command", 2), Block("text", (
        "What the demo ran, as the commands a user runs on their own data (paths as the demo wrote them):")),
        Block("code", "\n".join(result.commands))]
    if result.notes:
        blocks += [Block("heading", "Notes", 2), Block("list", result.notes)]
    return blocks


def _headline(result: DemoResult) -> str:
    made = [e for e in result.exports if e.path]
    trt = next((e for e in result.exports if e.backend == "TensorRT"), None)
    rows = [r for r in result.bench.get("results", []) if r.get("latency_ms")]
    text = (f"Trained a small CycleGAN for {result.training.get('steps', '?')} steps "
            f"({result.training.get('seconds', 0):.0f} s on {result.device}), exported it to "
            f"{_made_list(made)}, each verified against PyTorch, "
            "benchmarked every file and stylized photographs it never saw.")
    if trt is not None and trt.path is None:
        text += " TensorRT: not built here (see the exports table)."
    size = min(((r["height"], r["width"]) for r in rows), default=None)
    if size:
        at_size = [r for r in rows if (r["height"], r["width"]) == size]
        base = next((r for r in at_size if _is_pytorch_fp32(r)), None)
        fastest = min(at_size, key=lambda r: r["latency_ms"]["p50"])
        text += (f" Fastest at {size[0]}x{size[1]}: {_row_name(fastest)}, p50 {_ms(fastest['latency_ms']['p50'])} ms")
        if base and fastest is not base:
            text += f" ({base['latency_ms']['p50'] / fastest['latency_ms']['p50']:.2f}x PyTorch fp32"
            text += f", PSNR {_db(fastest.get('psnr_db'))} against the PyTorch fp32 reference)."
        else:
            text += "."
    return text


def _made_list(made: list[Any]) -> str:
    """``ONNX fp32, fp16 and int8 and TensorRT fp16``: the files made, grouped by runtime."""
    by_backend: dict[str, list[str]] = {}
    for export in made:
        by_backend.setdefault("ONNX" if export.backend == "ONNX Runtime" else export.backend, []).append(
            export.precision)
    parts = [f"{backend} {_and(precisions)}" for backend, precisions in by_backend.items()]
    return _and(parts) if parts else "nothing"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _is_pytorch_fp32(row: dict[str, Any]) -> bool:
    """A PyTorch fp32 row (on the training device): the baseline the speed-ups are relative to."""
    return row["backend"] == "torch" and row.get("precision") == "fp32"


def _is_reference(row: dict[str, Any]) -> bool:
    """The PyTorch fp32 CPU row: the reference every other row's parity is measured against."""
    return row["backend"] == "torch" and row.get("precision") == "fp32" and row.get("device") == "cpu"


def _row_name(row: dict[str, Any]) -> str:
    names = {"torch": "PyTorch", "onnxruntime": "ONNX Runtime", "tensorrt": "TensorRT"}
    backend = names.get(row["backend"].split(":")[0], row["backend"])
    return f"{backend} {row.get('precision') or ''}".strip()


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
    results = result.bench.get("results", [])
    base = {(r["height"], r["width"]): r["latency_ms"]["p50"] for r in results
            if _is_pytorch_fp32(r) and r.get("latency_ms")}
    for r in results:
        latency = r.get("latency_ms")
        size = (r["height"], r["width"])
        speed = "-" if not latency or size not in base else f"{base[size] / latency['p50']:.2f}x"
        rows.append([
            f"`{_relative(result, r['model'])}`", r["backend"], r.get("precision") or "-", r.get("device") or "-",
            f"{size[0]}x{size[1]}", _ms(latency["p50"]) if latency else "-", _ms(latency["p90"]) if latency else "-",
            speed, "reference" if _is_reference(r) else _db(r.get("psnr_db")),
            "-" if r.get("max_abs_err") is None else f"{r['max_abs_err']:.2e}",
            "-" if r.get("peak_mem_mb") is None else f"{r['peak_mem_mb']:.0f}",
        ] if latency else [f"`{_relative(result, r['model'])}`", r["backend"], r.get("precision") or "-",
                           r.get("device") or "-", f"{size[0]}x{size[1]}", "-", "-", "-", "-", "-",
                           r.get("note") or "did not run"])
    return rows


def _training_lines(result: DemoResult) -> list[str]:
    t, plan = result.training, result.plan
    losses = ", ".join(f"{k} {v:.3f}" for k, v in t.get("losses", {}).items())
    lines = [
        f"Data: {plan.train_per_domain} images per domain, {plan.data_size} px (`data/`): crops of scikit-image's "
        "astronaut, coffee, chelsea and hubble_deep_field photographs (public domain / CC0); domain B is other crops "
        "of the same photographs in the poster-print style (smoothed, posterised, warm palette, dark outlines), drawn "
        "independently, so the data is unpaired.",
        f"Model: ResNet generator, {plan.n_blocks} residual blocks, ngf {plan.ngf} (ConvTranspose upsampling, "
        f"InstanceNorm); 70x70 PatchGAN discriminators, ndf {plan.ndf}; LSGAN, cycle L1 10, identity L1 "
        f"{plan.lambda_id:g}, "
        f"50-image replay buffers, Adam({plan.lr:g}, 0.5, 0.999), learning rate decaying linearly over the second "
        "half.",
        f"{t.get('epochs', '?')} epochs, {t.get('steps', '?')} steps of {plan.image_size}x{plan.image_size} crops in "
        f"{t.get('seconds', 0):.0f} s ({t.get('steps_per_second', 0):.2f} steps/s) on {result.device}; last epoch's "
        f"mean losses: {losses}.",
    ]
    if t.get("samples_image"):
        lines.append(f"The trainer's own sample grid of the last epoch (real, translated, translated back): "
                     f"`{_relative(result, t['samples_image'])}`.")
    return lines


# ----------------------------------------------------------------------------------------------------- renderers


def to_markdown(blocks: list[Block]) -> str:
    """Render blocks as GitHub-flavoured Markdown."""
    parts = []
    for block in blocks:
        if block.kind == "heading":
            parts.append(f"{'#' * block.extra} {block.content}")
        elif block.kind == "text":
            parts.append(block.content)
        elif block.kind == "list":
            parts.append("\n".join(f"- {item}" for item in block.content))
        elif block.kind == "image":
            parts.append(f"![{block.extra}]({block.content})")
        elif block.kind == "code":
            parts.append(f"```bash\n{block.content}\n```")
        elif block.kind == "table":
            header, *rows = block.content
            lines = [_markdown_row(header), "|" + "---|" * len(header)] + [_markdown_row(row) for row in rows]
            parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _inline(text: str) -> str:
    """Escape for HTML, turning Markdown's `code` spans into tags."""
    pieces = str(text).split("`")
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(pieces))


STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.7em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; } th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; } code { background: #f4f4f4; padding: 0 3px; }
pre { background: #f4f4f4; padding: 0.8em; overflow-x: auto; font-size: 13px; }
"""


def to_html(blocks: list[Block]) -> str:
    """Render blocks as one self-contained HTML page (images are linked, relative to the page)."""
    body = []
    for block in blocks:
        if block.kind == "heading":
            body.append(f"<h{block.extra}>{html.escape(block.content)}</h{block.extra}>")
        elif block.kind == "text":
            body.append(f"<p>{_inline(block.content)}</p>")
        elif block.kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.content) + "</ul>")
        elif block.kind == "image":
            src = html.escape(block.content, quote=True)
            body.append(f'<p><a href="{src}"><img src="{src}" alt="{html.escape(block.extra, quote=True)}"></a></p>')
        elif block.kind == "code":
            body.append(f"<pre>{html.escape(block.content)}</pre>")
        elif block.kind == "table":
            header, *rows = block.content
            cells = "".join(f"<th>{_inline(c)}</th>" for c in header)
            lines = [f"<tr>{cells}</tr>"]
            lines += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in rows]
            body.append("<table>" + "".join(lines) + "</table>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>cg-demo report</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_markdown(result: DemoResult, path: Path) -> Path:
    """Write ``report.md`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(to_markdown(build_document(result)))
    return path


def write_html(result: DemoResult, path: Path) -> Path:
    """Write ``report.html`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(to_html(build_document(result)))
    return path
