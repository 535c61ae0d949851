"""What a deployment folder says about itself: ``deploy.json``, ``report.md`` / ``report.html`` and two figures.

``report.md`` is built once as Markdown and ``report.html`` is that Markdown rendered by markdown-it-py (as
cg-demo's report), so the two always say the same. ``deploy.json`` is written last and hashes every other file.
"""

from __future__ import annotations

import json
import math
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cg_export.backends.registry import DEPLOY_MANIFEST
from cg_export.deploy.choice import OK, CandidateRow, Decision, accepting_min_psnr
from cg_export.deploy.photos import PhotoSplit
from cg_export.errors import CgExportError
from cg_export.files import atomic_output, sha256_of
from cg_export.images import to_uint8
from cg_export.models import LoadedGenerator
from cg_export.parity import BELOW_FLOOR, PASSES, format_psnr

MANIFEST_FORMAT = "cg-export.deployment"
MANIFEST_VERSION = 1
PLOT_FILE = "latency_vs_psnr.png"
STRIP_FILE = "before_after.png"
STRIP_PHOTOS = 4
STRIP_TILE = 256
CALIBRATION_LIST = "calibration.txt"
VERSION_PACKAGES = ("cg-export", "torch", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "numpy")


def write_deployment(build: Path, *, decision: Decision, rows: list[CandidateRow], size: tuple[int, int],
                     target: str, split: PhotoSplit, teacher: LoadedGenerator, student: LoadedGenerator | None,
                     min_psnr_db: float | None, settings: str, finish_on_device: list[str], kept: list[str],
                     chosen_outputs: list[np.ndarray], reference_outputs: list[np.ndarray],
                     inputs: list[tuple[str, np.ndarray]], say: Any) -> dict[str, Any]:
    """Write the report, figures and, last, ``deploy.json`` into the folder being built; return the manifest."""
    from cg_export.bench import describe_environment

    chosen = decision.chosen
    assert chosen is not None and chosen.artifact is not None
    notes: list[str] = []
    if split.calibration:
        with atomic_output(build / CALIBRATION_LIST) as tmp:
            tmp.write_text("".join(f"{path.resolve()}\n" for path in split.calibration))
    try:
        _write_plot(rows, build / PLOT_FILE)
        plot = PLOT_FILE
    except CgExportError as exc:
        plot = None
        notes.append(f"latency-vs-PSNR plot not drawn: {exc}")
        say("note", notes[-1])
    _write_strip(inputs, reference_outputs, chosen_outputs, chosen, build / STRIP_FILE)
    environment = describe_environment()
    environment["versions"] = _versions()
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "artifact": chosen.artifact,
        "candidate": chosen.name,
        "backend": chosen.backend,
        "runtime": chosen.runtime,
        "precision": chosen.precision,
        "size": {"height": size[0], "width": size[1]},
        "target": target,
        "decision": decision.why,
        "min_psnr_db": min_psnr_db,
        "latency_ms": chosen.latency.to_json() if chosen.latency else None,
        "psnr_per_photo_db": chosen.to_json()["psnr_per_photo_db"],
        "max_abs_err": chosen.max_abs_err,
        "timing": settings,
        "source": {
            "checkpoint": str(teacher.path.resolve()), "sha256": teacher.sha256, "format": teacher.source_format,
            "architecture": teacher.description,
            "student": None if student is None else {"checkpoint": str(student.path.resolve()),
                                                     "sha256": student.sha256, "architecture": student.description},
        },
        "photos": {"folder": str(split.folder.resolve()),
                   "calibration": [split.label(p) for p in split.calibration],
                   "verification": [split.label(p) for p, _ in split.verification],
                   "skipped": split.skipped},
        "machine": environment,
        "candidates": [row.to_json() for row in rows],
        "kept": kept,
        "finish_on_device": finish_on_device,
        "notes": notes,
    }
    markdown = to_markdown(manifest, rows, plot)
    with atomic_output(build / "report.md") as tmp:
        tmp.write_text(markdown)
    with atomic_output(build / "report.html") as tmp:
        tmp.write_text(to_html(markdown))
    manifest["files"] = {path.relative_to(build).as_posix(): sha256_of(path)
                         for path in sorted(build.rglob("*")) if path.is_file() and path.name != DEPLOY_MANIFEST}
    with atomic_output(build / DEPLOY_MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n")
    return manifest


def _versions() -> dict[str, str]:
    versions = {}
    for package in VERSION_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


# ------------------------------------------------------------------------------------------------------ Markdown


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def decision_table(rows: list[CandidateRow], chosen: str | None) -> list[list[str]]:
    """The candidates table: one row each, the chosen one marked, and a faster one below its floor noted with the
    ``--min-psnr`` that would choose it."""
    table = [["candidate", "runtime", "precision", "status", "p50 ms", "p90 ms", "p99 ms", "worst PSNR",
              "floor", "max abs err", "note"]]
    for row in rows:
        latency = row.latency
        status = "**chosen**" if row.name == chosen else (PASSES if row.passes else
                                                          BELOW_FLOOR if row.status == OK else row.status)
        note = row.reason or ""
        accept = accepting_min_psnr(rows, row) if row.status == OK and not row.passes else None
        if accept is not None:
            note = "; ".join(filter(None, [note, f"rerun with --min-psnr {accept:g} to accept it"]))
        table.append([
            f"`{row.name}`", row.runtime, row.precision, status, _ms(latency and latency.p50),
            _ms(latency and latency.p90), _ms(latency and latency.p99),
            "-" if row.psnr_db is None else format_psnr(row.psnr_db), f"{row.floor_db:g} dB",
            "-" if row.max_abs_err is None else f"{row.max_abs_err:.1e}", note.replace("|", "/"),
        ])
    return table


def markdown_table(rows: list[list[str]]) -> str:
    """A GitHub-style Markdown table; the first row is the header."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows[1:]]
    return "\n".join(lines)


def to_markdown(manifest: dict[str, Any], rows: list[CandidateRow], plot: str | None) -> str:
    """The report as Markdown."""
    size = f"{manifest['size']['height']}x{manifest['size']['width']}"
    machine = manifest["machine"]
    photos = manifest["photos"]
    parts = [
        f"# cg-export deploy: {manifest['artifact']}",
        f"**Decision:** {manifest['decision']}.",
        f"Model: `{manifest['source']['checkpoint']}` ({manifest['source']['architecture']}). Size {size}, target "
        f"`{manifest['target']}`. Verified against PyTorch fp32 on {len(photos['verification'])} of your "
        f"photographs held out from int8 calibration ({len(photos['calibration'])} calibrated it). "
        f"Timed with cg-bench's harness ({manifest['timing']}, batch 1, end to end) on {machine['cpu']} "
        f"({machine['cores']} cores{', GPU ' + machine['gpu'] if machine.get('gpu') else ''}).",
        "## Candidates",
        markdown_table(decision_table(rows, manifest["candidate"])),
        "Worst PSNR is the lowest over the held-out photographs, on 8-bit output; a candidate is chosen only if it "
        "is at or above its floor (a faster one below it is noted with the `--min-psnr` that would choose it). "
        "Latencies within 3 % count as a tie, which goes to the higher precision.",
    ]
    verified = [row for row in rows if row.psnr_per_photo]
    if verified:
        names = list(verified[0].psnr_per_photo)
        table = [["photograph", *[f"`{row.name}`" for row in verified]]]
        table += [[name, *[format_psnr(row.psnr_per_photo[name]) for row in verified]] for name in names]
        parts += ["## PSNR per held-out photograph", markdown_table(table)]
    if plot:
        parts += ["## Latency against PSNR", f"![p50 latency against worst-photo PSNR]({plot})"]
    parts += ["## Before and after", f"Held-out photographs, PyTorch fp32, and `{manifest['candidate']}`.",
              f"![before and after]({STRIP_FILE})"]
    if manifest["finish_on_device"]:
        parts += ["## Finish on the device",
                  "TensorRT is not installed here, so the TensorRT candidates are finished on the device: copy this "
                  "folder there and run, inside it (each `cg-export trt` verifies the engine against the ONNX "
                  "model there):",
                  "```sh\n" + "\n".join(manifest["finish_on_device"]) + "\n```",
                  "The latencies above were measured on this machine, not on the device."]
    commands = [row.command for row in rows if row.command]
    if commands:
        preamble = []
        if photos["calibration"]:
            preamble = [f"mkdir -p calib && xargs -d '\\n' cp -t calib/ < {CALIBRATION_LIST}  # the calibration photos"]
        parts += ["## Reproduce each candidate",
                  "Run in a scratch folder holding this report's `calibration.txt`; deploy verified each file on the "
                  "held-out photographs itself, hence `--no-verify`. Time any of them with "
                  f"`cg-bench FILE --reference {manifest['source']['checkpoint']} --size {size}`.",
                  "```sh\n" + "\n".join(preamble + commands) + "\n```"]
    parts += ["## Use it",
              "```sh\ncg-stylize DEPLOY_FOLDER photo.jpg -o out.jpg\ncg-bench DEPLOY_FOLDER --size " + size + "\n```",
              "In Python: `cg_export.backends.runner_for(\"DEPLOY_FOLDER\")` opens the chosen artifact."]
    if manifest["notes"] or photos["skipped"]:
        parts += ["## Notes", "\n".join(f"- {note}" for note in manifest["notes"] + photos["skipped"])]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    parts += [f"Versions: {versions}; Python {machine['python']}."]
    return "\n\n".join(parts) + "\n"


STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; } th { background: #f3f3f3; }
img { max-width: 100%; } code { background: #f4f4f4; padding: 0 3px; }
pre { background: #f4f4f4; padding: 0.8em; overflow-x: auto; font-size: 13px; }
"""


def to_html(markdown: str, title: str = "cg-export deploy") -> str:
    """Render the Markdown as one HTML page: CommonMark with tables, raw HTML escaped, images linked relatively."""
    from cg_export.html import markdown_page

    return markdown_page(markdown, title, STYLE, xhtml=True)


# ------------------------------------------------------------------------------------------------------ figures


def _write_plot(rows: list[CandidateRow], path: Path) -> None:
    """p50 latency (x) against worst-photo PSNR (y), one point per timed candidate; floors as dashed lines."""
    from cg_export.bench import import_pyplot

    plt = import_pyplot()
    timed = [row for row in rows if row.latency is not None and row.psnr_db is not None]
    if not timed:
        raise CgExportError("no candidate was both timed and verified")
    finite = [row.psnr_db for row in timed if not math.isinf(row.psnr_db)]  # type: ignore[arg-type]
    ceiling = (max(finite) if finite else 60.0) + 8.0
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for row in timed:
        y = ceiling if math.isinf(row.psnr_db) else row.psnr_db  # type: ignore[arg-type]
        colour = "tab:green" if row.passes else "tab:red"
        axes.scatter([row.latency.p50], [y], color=colour, zorder=3)  # type: ignore[union-attr]
        label = row.name + (" (identical)" if math.isinf(row.psnr_db) else "")  # type: ignore[arg-type]
        axes.annotate(label, (row.latency.p50, y), textcoords="offset points", xytext=(5, 4), fontsize=8)  # type: ignore[union-attr]
    for floor in sorted({row.floor_db for row in timed}):
        axes.axhline(floor, color="grey", linestyle="--", linewidth=0.8)
        axes.annotate(f"floor {floor:g} dB", (0, floor), xycoords=("axes fraction", "data"), fontsize=7,
                      color="grey", xytext=(2, 2), textcoords="offset points")
    axes.set_xlabel("p50 latency, ms (end to end, batch 1)")
    axes.set_ylabel("worst-photo PSNR vs PyTorch fp32, dB")
    axes.set_title("Candidates: green passes its floor, red does not")
    axes.set_xlim(left=0)
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1 has only the small bitmap font
        return ImageFont.load_default()


def _write_strip(inputs: list[tuple[str, np.ndarray]], reference: list[np.ndarray], chosen: list[np.ndarray],
                 row: CandidateRow, path: Path, gap: int = 6) -> None:
    """Rows of photograph | PyTorch fp32 | chosen candidate (captioned with its PSNR), tiles 256 px on the long side."""
    count = min(STRIP_PHOTOS, len(inputs), len(chosen))
    images = []
    for (label, batch), expected, got in list(zip(inputs, reference, chosen))[:count]:
        images.append((label, [to_uint8(batch)[0], to_uint8(expected)[0], to_uint8(got)[0]]))
    height, width = images[0][1][0].shape[:2]
    scale = STRIP_TILE / max(height, width)  # small sizes enlarged too, so captions fit under each tile
    tile_h, tile_w = max(1, round(height * scale)), max(1, round(width * scale))
    header, caption = 24, 18
    titles = ["photograph", "PyTorch fp32", row.name]
    canvas = Image.new("RGB", (3 * tile_w + 4 * gap, header + count * (tile_h + caption + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(13)
    for column, title in enumerate(titles):
        draw.text((gap + column * (tile_w + gap) + tile_w // 2, header // 2), title, fill="black", font=font,
                  anchor="mm")
    top = header
    for label, tiles in images:
        captions = [label, "reference", format_psnr(row.psnr_per_photo.get(label, math.nan))]
        for column, (tile, text) in enumerate(zip(tiles, captions)):
            left = gap + column * (tile_w + gap)
            canvas.paste(Image.fromarray(tile).resize((tile_w, tile_h), Image.LANCZOS), (left, top))
            draw.text((left + tile_w // 2, top + tile_h + caption // 2), text, fill="#333333", font=font, anchor="mm")
        top += tile_h + caption + gap
    with atomic_output(path) as tmp:
        canvas.save(tmp, format="PNG")


__all__ = ["MANIFEST_FORMAT", "MANIFEST_VERSION", "decision_table", "markdown_table", "to_html", "to_markdown",
           "write_deployment"]
