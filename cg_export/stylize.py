"""Stylize photographs, folders and videos with any model artifact (.pt/.pth, .onnx, .engine).

Every output has its input's size and is written atomically; an input is never overwritten. Bad images in a
folder are reported and skipped, and the result says how many failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cg_export.backends.base import Runner
from cg_export.errors import CgExportError, ImageError, MissingDependencyError
from cg_export.files import atomic_output
from cg_export.images import IMAGE_SUFFIXES, model_input_kind, read_photo
from cg_export.tiling import DEFAULT_OVERLAP, DEFAULT_STATS_SIZE, default_tile, stylize_array, whole_image_stats

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
# Exponential smoothing of InstanceNorm statistics across video frames: each frame moves them this far, so the
# colours stop flickering while following real scene changes within a second or so.
VIDEO_STATS_MOMENTUM = 0.1
# Pillow formats (among IMAGE_SUFFIXES') that cannot store an alpha channel: the output drops it.
_FORMATS_WITHOUT_ALPHA = frozenset({"JPEG", "BMP", "PPM"})


@dataclass
class StylizeOptions:
    """How to run each image.

    Attributes:
        tile: Tile side; ``None`` picks one from the available memory (or the engine's profile), 0 = whole image.
        overlap: Context around each tile, blended with the neighbours.
        stats_size: Longer side of the thumbnail the whole-image InstanceNorm statistics come from.
        batch: Tiles per inference call.
    """

    tile: int | None = None
    overlap: int = DEFAULT_OVERLAP
    stats_size: int = DEFAULT_STATS_SIZE
    batch: int = 1


@dataclass
class StylizeReport:
    """What a run did: written outputs, failures (path and reason), and video frame rates."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    frames: int = 0
    frames_per_second: float | None = None


def write_photo(path: Path, rgb: np.ndarray, alpha: np.ndarray | None, source_format: str) -> None:
    """Write atomically in the format the output name implies, carrying the alpha channel where it fits."""
    image = Image.fromarray(rgb)
    fmt = Image.registered_extensions().get(path.suffix.lower(), source_format or "PNG")
    if alpha is not None and fmt not in _FORMATS_WITHOUT_ALPHA:
        image.putalpha(Image.fromarray(alpha))
    options = {"quality": 95} if fmt == "JPEG" else {}
    with atomic_output(path) as tmp:
        image.save(tmp, format=fmt, **options)


def collect_inputs(inputs: list[Path]) -> list[tuple[Path, Path]]:
    """Expand files and folders (recursively) into ``(path, path relative to its root)`` pairs."""
    found = []
    for item in inputs:
        if item.is_dir():
            for path in sorted(p for p in item.rglob("*") if p.is_file()):
                if path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                    found.append((path, path.relative_to(item)))
        elif item.exists():
            found.append((item, Path(item.name)))
        else:
            raise CgExportError(f"{item}: no such file or folder")
    if not found:
        raise CgExportError("no images or videos found in the inputs")
    return found


def output_path_for(source: Path, relative: Path, output: Path, single: bool) -> Path:
    """Where an input's result goes: ``output`` itself for one input named like a file, else inside it."""
    if single and output.suffix:
        return output
    return output / relative


class Stylizer:
    """Runs images and videos through one active runner with the tiling and smoothing policy of the toolkit.

    The size multiple and the generator's width (which sizes the default tile) come from ``runner.info``.

    Args:
        runner: An active runner.
        options: Tiling options.
    """

    def __init__(self, runner: Runner, options: StylizeOptions | None = None):
        self.runner = runner
        self.multiple = runner.info.size_multiple
        self.options = options or StylizeOptions()
        architecture = runner.info.metadata.architecture
        self.kind = model_input_kind(architecture)
        # PyTorch-GAN's one-channel generators give an image 4 * (3 - edge_pad) px smaller than their input: the
        # input is reflect-padded by half that on each side, so the output has the input's size and alignment.
        self.margin = 2 * (3 - int(architecture.get("edge_pad", 3)))
        # U-GAT-IT's full model only runs at its training size; its LIN/AdaLIN are not InstanceNorm, so tiles
        # cannot share whole-image statistics either.
        ugatit = architecture.get("name") == "ugatit"
        self.fixed_size = None if not ugatit or architecture.get("light") else int(architecture.get("img_size", 256))
        tile = self.options.tile
        self.whole_images_only = bool(self.margin or ugatit)
        if self.whole_images_only and tile:
            raise CgExportError(f"--tile {tile}: this model ({architecture.get('name')}) runs on whole images "
                                "only; leave --tile unset")
        if self.whole_images_only:
            self.tile = 0
        else:
            self.tile = default_tile(self.multiple, runner.info.ngf or 64) if tile is None else tile

    def image(self, rgb: np.ndarray, stats: np.ndarray | None = None) -> np.ndarray:
        """Stylize one uint8 RGB image (tiled when larger than the tile); the result is RGB of the same size."""
        height, width = rgb.shape[:2]
        if self.fixed_size:
            side = self.fixed_size
            rgb = np.asarray(Image.fromarray(rgb).resize((side, side), Image.BICUBIC))
        elif self.margin:
            rgb = np.pad(rgb, ((self.margin, self.margin), (self.margin, self.margin), (0, 0)), mode="reflect")
        styled = stylize_array(self.runner, rgb, self.multiple, tile=self.tile, overlap=self.options.overlap,
                               stats=stats, stats_size=self.options.stats_size, batch=self.options.batch,
                               kind=self.kind)
        if self.fixed_size:
            return np.asarray(Image.fromarray(styled).resize((width, height), Image.BICUBIC))
        return styled[:height, :width]

    def file(self, source: Path, target: Path) -> Path:
        """Stylize an image file into ``target`` (same size, alpha carried over)."""
        if target.exists() and target.resolve() == source.resolve():
            raise CgExportError(f"{target}: refusing to overwrite the input; choose another -o")
        rgb, alpha, fmt = read_photo(source)
        write_photo(target, self.image(rgb), alpha, fmt)
        return target

    def video(self, source: Path, target: Path, progress: bool = True) -> tuple[int, float]:
        """Stylize a video frame by frame with smoothed InstanceNorm statistics; audio is copied when possible.

        Returns:
            (frames, frames per second of the whole conversion).
        """
        av = _import_av()
        if target.exists() and target.resolve() == source.resolve():
            raise CgExportError(f"{target}: refusing to overwrite the input; choose another -o")
        started = time.perf_counter()
        frames = 0
        try:
            container = av.open(str(source))
        except Exception as exc:  # PyAV raises FFmpeg errors of many types
            raise ImageError(f"{source}: not a readable video ({exc})") from None
        with container, atomic_output(target) as tmp:
            streams = container.streams
            if not streams.video:
                raise ImageError(f"{source}: no video stream")
            video_in = streams.video[0]
            total = video_in.frames or None
            with av.open(str(tmp), mode="w", format=_container_format(target)) as output:
                rate = video_in.average_rate or 25
                video_out = output.add_stream("libx264" if _has_codec(av, "libx264") else "mpeg4", rate=rate)
                video_out.width, video_out.height = video_in.codec_context.width, video_in.codec_context.height
                video_out.pix_fmt = "yuv420p"
                audio_in = streams.audio[0] if streams.audio else None
                audio_out = _copy_stream(output, audio_in)
                smoothed = None
                bar = _progress(total, "frames", progress)
                packets = container.demux([s for s in (video_in, audio_in) if s is not None])
                for packet in packets:
                    if audio_in is not None and packet.stream is audio_in:
                        if audio_out is not None and packet.dts is not None:
                            packet.stream = audio_out
                            output.mux(packet)
                        continue
                    for frame in packet.decode():
                        rgb = frame.to_ndarray(format="rgb24")
                        stats = None if self.whole_images_only else whole_image_stats(
                            self.runner, rgb, self.multiple, self.options.stats_size, self.kind)
                        smoothed = stats if smoothed is None or stats is None else (
                            (1 - VIDEO_STATS_MOMENTUM) * smoothed + VIDEO_STATS_MOMENTUM * stats)
                        styled = self.image(rgb, stats=smoothed)
                        out_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(styled), format="rgb24")
                        for out_packet in video_out.encode(out_frame):
                            output.mux(out_packet)
                        frames += 1
                        bar.update(1)
                for out_packet in video_out.encode():
                    output.mux(out_packet)
                bar.close()
        if frames == 0:
            target.unlink(missing_ok=True)
            raise ImageError(f"{source}: the video has no frames")
        return frames, frames / (time.perf_counter() - started)


def stylize_paths(
    stylizer: Stylizer, inputs: list[Path], output: Path, progress: bool = True,
    on_error: Callable[[Path, str], None] | None = None,
) -> StylizeReport:
    """Stylize files, folders (recursively, relative paths kept) and videos into ``output``.

    Unreadable inputs are recorded in the report (and passed to ``on_error``) and the rest go on.
    """
    items = collect_inputs(inputs)
    single = len(items) == 1 and not inputs[0].is_dir()
    report = StylizeReport()
    images = [(s, r) for s, r in items if s.suffix.lower() not in VIDEO_SUFFIXES]
    videos = [(s, r) for s, r in items if s.suffix.lower() in VIDEO_SUFFIXES]
    bar = _progress(len(images), "images", progress and len(images) > 1)
    for source, relative in images:
        target = output_path_for(source, relative, output, single)
        try:
            report.written.append(stylizer.file(source, target))
        except (ImageError, CgExportError) as exc:
            report.failed.append((source, str(exc)))
            if on_error:
                on_error(source, str(exc))
        bar.update(1)
    bar.close()
    for source, relative in videos:
        target = output_path_for(source, relative, output, single)
        if target.suffix.lower() not in VIDEO_SUFFIXES:
            target = target.with_suffix(".mp4")
        try:
            frames, fps = stylizer.video(source, target, progress)
            report.written.append(target)
            report.frames += frames
            report.frames_per_second = fps
        except (ImageError, CgExportError) as exc:
            report.failed.append((source, str(exc)))
            if on_error:
                on_error(source, str(exc))
    return report


def _import_av():  # noqa: ANN202
    try:
        import av
    except ImportError:
        raise MissingDependencyError("PyAV", "to read and write videos", 'pip install "cg-export[video]" (or av)') from None
    return av


def _has_codec(av, name: str) -> bool:  # noqa: ANN001
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:  # unknown codec
        return False


def _container_format(path: Path) -> str | None:
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".webm": "webm"}.get(
        path.suffix.lower())


def _copy_stream(output, audio_in):  # noqa: ANN001, ANN202
    if audio_in is None:
        return None
    try:
        return output.add_stream_from_template(audio_in)
    except Exception:  # the container cannot hold this audio codec: the video is still written, silent
        return None


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int | None, unit: str, enabled: bool) -> _NoProgress | Iterator:
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc="stylizing", dynamic_ncols=True)
