"""Stylize photographs, folders and videos with any model artifact (.pt/.pth, .onnx, .engine).

Every output has its input's size and is written atomically; an input is never overwritten. Bad images in a
folder are reported and skipped, and the result says how many failed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cg_export.backends.base import Runner
from cg_export.errors import CgExportError, ImageError, MissingDependencyError, OptionError, OutputError
from cg_export.files import InputFiles, atomic_output, check_output_file, check_output_folder
from cg_export.images import IMAGE_SUFFIXES, model_input_kind, read_photo
from cg_export.optional import extra_hint
from cg_export.sizes import round_up
from cg_export.tiling import (
    DEFAULT_OVERLAP,
    DEFAULT_STATS_SIZE,
    default_tile,
    describe_plan,
    stylize_array,
    whole_image_stats,
)

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
# Exponential smoothing of InstanceNorm statistics across video frames: each frame moves them this far, so the
# colours stop flickering while following real scene changes within a second or so.
VIDEO_STATS_MOMENTUM = 0.1
# Pillow formats (among IMAGE_SUFFIXES') that cannot store an alpha channel: the output drops it.
_FORMATS_WITHOUT_ALPHA = frozenset({"JPEG", "BMP", "PPM"})


@dataclass
class StylizeOptions:
    """How to run each image; checked when made, and against the model's size multiple by :class:`Stylizer`.

    Attributes:
        tile: Tile side; ``None`` picks one from the available memory (or the engine's profile), 0 = whole image.
        overlap: Context around each tile, blended with the neighbours; ``None``: ``DEFAULT_OVERLAP`` rounded up to
            the model's size multiple.
        stats_size: Longer side of the thumbnail the whole-image InstanceNorm statistics come from.
        batch: Tiles per inference call.
        max_pixels: Refuse images with more pixels than this (default
            :data:`cg_export.images.DEFAULT_MAX_PIXELS`).

    Raises:
        CgExportError: a value out of range (one line naming the option).
    """

    tile: int | None = None
    overlap: int | None = None
    stats_size: int = DEFAULT_STATS_SIZE
    batch: int = 1
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        self.check()

    def check(self, multiple: int | None = None) -> None:
        """Refuse values no model can use, and with ``multiple``, tiles and overlaps that are not multiples of it.

        Raises:
            OptionError: naming the field and what it must be.
        """
        if self.tile is not None and self.tile < 0:
            raise OptionError("tile", self.tile, "must be 0 (whole image) or a positive number of pixels")
        if self.overlap is not None and self.overlap < 0:
            raise OptionError("overlap", self.overlap, "must be 0 or more pixels")
        if self.stats_size < 1:
            raise OptionError("stats_size", self.stats_size, "must be a positive number of pixels")
        if self.batch < 1:
            raise OptionError("batch", self.batch, "must be 1 or more tiles per call")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise OptionError("max_pixels", self.max_pixels, "must be a positive number of pixels")
        if multiple is None:
            return
        for name, value in (("tile", self.tile), ("overlap", self.overlap)):
            if value and value % multiple:
                raise OptionError(name, value, f"must be a multiple of {multiple} (the model's size multiple), "
                                  f"e.g. {round_up(value, multiple)}")


@dataclass
class StylizeReport:
    """What a run did: written outputs (with how each was run), outputs skipped because they already existed,
    failures (path and reason), video frame rates, and warnings (a video that ended before the frames it declared).

    :func:`stylize_jobs` fills it as it goes, so a caller that passed its own still knows what was finished when
    the run is interrupted.
    """

    written: list[Path] = field(default_factory=list)
    plans: list[str] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    frames: int = 0
    frames_per_second: float | None = None
    skipped: list[Path] = field(default_factory=list)

    def interrupted(self, planned: int) -> str:
        """One line for a run stopped early: how many of the ``planned`` outputs are complete, and which."""
        done = len(self.written) + len(self.skipped)
        names = ", ".join(str(path) for path in self.written[:3])
        more = f" and {len(self.written) - 3} more" if len(self.written) > 3 else ""
        which = f" ({names}{more})" if self.written else ""
        already = f", {len(self.skipped)} of them already there" if self.skipped else ""
        return f"{done} of {planned} outputs complete{which}{already}; no output was left half-written"


@dataclass(frozen=True)
class Job:
    """One input and where its result goes."""

    source: Path
    target: Path
    is_video: bool


def write_photo(path: Path, rgb: np.ndarray, alpha: np.ndarray | None, source_format: str) -> None:
    """Write atomically in the format the output name implies, carrying the alpha channel where it fits."""
    image = Image.fromarray(rgb)
    fmt = Image.registered_extensions().get(path.suffix.lower(), source_format or "PNG")
    if alpha is not None and fmt not in _FORMATS_WITHOUT_ALPHA:
        image.putalpha(Image.fromarray(alpha))
    options = {"quality": 95} if fmt == "JPEG" else {}
    with atomic_output(path) as tmp:
        image.save(tmp, format=fmt, **options)


def is_video(path: Path) -> bool:
    """Whether ``path`` is a video by its name."""
    return path.suffix.lower() in VIDEO_SUFFIXES


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
    if single and output.suffix and not output.is_dir():
        return output
    return output / relative


def plan_outputs(inputs: list[Path], output: Path, protected: InputFiles | None = None) -> list[Job]:
    """Every input and its output, checked before any model is loaded.

    One input and an output named like a file (``-o out.jpg``) write that file; otherwise ``output`` is a folder
    and each result keeps its path relative to its input folder. Refused, in one line: several inputs with an
    output named like an image or video file, a video written to a name that is not a video (or an image to one
    that is not an image), an output that is an existing folder or lies under an existing file, and any output
    that would replace an input (an input image or video, or a file in ``protected`` such as the model).

    Raises:
        CgExportError: no inputs, or a missing one.
        OutputError: an output that cannot or must not be written.
    """
    items = collect_inputs(inputs)
    guard = protected or InputFiles()
    for source, _ in items:
        guard.add(source)
    single = len(items) == 1 and not inputs[0].is_dir()
    as_file = single and bool(output.suffix) and not output.is_dir()
    if not as_file:
        if output.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES and not output.is_dir():
            raise OutputError(f"-o {output}: {len(items)} inputs need an output folder, and {output.name} names a "
                              "file; give a folder (it is created)")
        check_output_folder(output)
    jobs = []
    for source, relative in items:
        target = output if as_file else output / relative
        guard.refuse(target)
        video = is_video(source)
        if as_file and video and not is_video(target):
            raise OutputError(f"-o {target}: a video's output must be a video file "
                              f"({', '.join(sorted(VIDEO_SUFFIXES))})")
        if as_file and not video and target.suffix.lower() not in IMAGE_SUFFIXES:
            raise OutputError(f"-o {target}: an image's output must be an image file "
                              f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        check_output_file(target)
        jobs.append(Job(source, target, video))
    return jobs


class Stylizer:
    """Runs images and videos through one active runner with the tiling and smoothing policy of the toolkit.

    The size multiple, the generator's width (which sizes the default tile), a static model's size and the image
    channels the model takes come from ``runner.info``. A ``--uint8-io`` model is fed by the runner itself; a
    static model is fed by padding to its size and tiling in windows of exactly its size.

    Args:
        runner: An active runner.
        options: Tiling options.

    Raises:
        BackendError: the model does not take RGB images.
        CgExportError: a tile or overlap that is not a multiple of the model's size multiple.
    """

    def __init__(self, runner: Runner, options: StylizeOptions | None = None):
        info = runner.info
        self.runner = runner
        self.multiple = info.size_multiple
        self.static_size = info.static_size
        self.options = options or StylizeOptions()
        architecture = info.metadata.architecture
        self.kind = model_input_kind(architecture)
        # PyTorch-GAN's one-channel generators give an image 4 * (3 - edge_pad) px smaller than their input: the
        # input is reflect-padded by half that on each side, so the output has the input's size and alignment.
        self.margin = 2 * (3 - int(architecture.get("edge_pad", 3)))
        # U-GAT-IT's full model only runs at its training size; its LIN/AdaLIN are not InstanceNorm, so tiles
        # cannot share whole-image statistics either.
        ugatit = architecture.get("name") == "ugatit"
        self.fixed_size = None if not ugatit or architecture.get("light") else int(architecture.get("img_size", 256))
        self.whole_images_only = bool(self.margin or ugatit)
        self.options.check(self.multiple)
        overlap = self.options.overlap
        self.overlap = round_up(DEFAULT_OVERLAP, self.multiple) if overlap is None else overlap
        tile = self.options.tile
        if self.whole_images_only and tile:
            raise OptionError("tile", tile, f"this model ({architecture.get('name')}) runs on whole images only; "
                              "leave {tile} unset")
        if self.static_size is not None or self.whole_images_only:
            self.tile = 0  # static models: windows of exactly the static size, whatever was asked
        else:
            self.tile = default_tile(self.multiple, info.ngf or 64) if tile is None else tile

    def describe(self) -> str:
        """The tiling policy in a few words, for the line printed before a run."""
        if self.static_size is not None:
            return f"static {self.static_size[0]}x{self.static_size[1]}: padded and tiled to it"
        if not self.tile:
            return "whole images"
        return f"whole images up to {self.tile} px, larger ones tiled"

    def plan(self, height: int, width: int) -> str:
        """How an image of this size will run: ``whole image`` or ``N tiles of T px``."""
        return describe_plan(height, width, self.multiple, self.tile, self.overlap, self.static_size)

    def image(self, rgb: np.ndarray, stats: np.ndarray | None = None,
              on_tiles: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Stylize one uint8 RGB image (tiled when larger than the tile); the result is RGB of the same size.

        ``on_tiles`` is told ``(tiles done, tiles in all)`` as a tiled image runs (see :func:`stylize_array`).
        """
        height, width = rgb.shape[:2]
        if self.fixed_size:
            side = self.fixed_size
            rgb = np.asarray(Image.fromarray(rgb).resize((side, side), Image.BICUBIC))
        elif self.margin:
            rgb = np.pad(rgb, ((self.margin, self.margin), (self.margin, self.margin), (0, 0)), mode="reflect")
        styled = stylize_array(self.runner, rgb, self.multiple, tile=self.tile, overlap=self.overlap,
                               stats=stats, stats_size=self.options.stats_size, batch=self.options.batch,
                               static_size=self.static_size, kind=self.kind, on_tiles=on_tiles)
        if self.fixed_size:
            return np.asarray(Image.fromarray(styled).resize((width, height), Image.BICUBIC))
        return styled[:height, :width]

    def stats(self, rgb: np.ndarray) -> np.ndarray:
        """Whole-image InstanceNorm statistics of an image (from its thumbnail)."""
        return whole_image_stats(self.runner, rgb, self.multiple, self.options.stats_size, self.static_size, self.kind)

    def file(self, source: Path, target: Path, progress: bool = False) -> str:
        """Stylize an image file into ``target`` (same size, alpha carried over); returns how it was run.

        With ``progress``, a tiled image shows a bar over its tiles on stderr (a large one takes minutes).
        """
        if target.exists() and target.resolve() == source.resolve():
            raise OutputError(f"{target}: refusing to overwrite the input; choose another -o")
        rgb, alpha, fmt = read_photo(source, self.options.max_pixels)
        bar = _TileBar(source.name) if progress else None
        try:
            styled = self.image(rgb, on_tiles=bar)
        finally:
            if bar is not None:
                bar.close()
        write_photo(target, styled, alpha, fmt)
        return self.plan(*rgb.shape[:2])

    def video(self, source: Path, target: Path, progress: bool = True,
              warn: Callable[[str], None] | None = None) -> tuple[int, float]:
        """Stylize a video frame by frame with smoothed InstanceNorm statistics; audio is copied when possible.

        Packets that do not decode are skipped; a video that yields no frame at all writes nothing (an existing
        ``target`` stays as it was). When fewer frames decode than the container declares (or, where it declares no
        count, than its duration implies), ``warn`` is told.

        Returns:
            (frames, frames per second of the whole conversion).

        Raises:
            ImageError: not a readable video, no video stream, or no decodable frame.
        """
        av = _import_av()
        if target.exists() and target.resolve() == source.resolve():
            raise OutputError(f"{target}: refusing to overwrite the input; choose another -o")
        started = time.perf_counter()
        frames = 0
        undecodable = 0
        try:
            container = av.open(str(source))
        except Exception as exc:  # PyAV raises FFmpeg errors of many types
            raise ImageError(f"{source}: not a readable video ({exc})") from None
        with container:
            streams = container.streams
            if not streams.video:
                raise ImageError(f"{source}: no video stream")
            video_in = streams.video[0]
            total = video_in.frames or None
            # Matroska, WebM and many streams declare no frame count; their duration still says how many to expect.
            expected = None if total else _frames_from_duration(container, video_in)
            bar_total = total or (expected[0] if expected else None)
            with atomic_output(target) as tmp:
                with av.open(str(tmp), mode="w", format=_container_format(target)) as output:
                    rate = video_in.average_rate or 25
                    video_out = output.add_stream("libx264" if _has_codec(av, "libx264") else "mpeg4", rate=rate)
                    video_out.width, video_out.height = video_in.codec_context.width, video_in.codec_context.height
                    video_out.pix_fmt = "yuv420p"
                    audio_in = streams.audio[0] if streams.audio else None
                    audio_out = _copy_stream(output, audio_in)
                    smoothed = None
                    bar = _progress(bar_total, "frames", progress)
                    try:  # the bar is closed on Ctrl-C too, so the interrupt's line is not drawn over it
                        for packet in _demux(container, [s for s in (video_in, audio_in) if s is not None]):
                            if audio_in is not None and packet.stream is audio_in:
                                if audio_out is not None and packet.dts is not None:
                                    packet.stream = audio_out
                                    output.mux(packet)
                                continue
                            try:
                                decoded = packet.decode()
                            except av.error.FFmpegError:  # a corrupt packet: skip it, as players do
                                undecodable += 1
                                continue
                            for frame in decoded:
                                rgb = frame.to_ndarray(format="rgb24")
                                stats = None if self.whole_images_only else self.stats(rgb)
                                smoothed = stats if smoothed is None or stats is None else (
                                    (1 - VIDEO_STATS_MOMENTUM) * smoothed + VIDEO_STATS_MOMENTUM * stats)
                                styled = self.image(rgb, stats=smoothed)
                                out_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(styled), format="rgb24")
                                for out_packet in video_out.encode(out_frame):
                                    output.mux(out_packet)
                                frames += 1
                                bar.update(1)
                    finally:
                        bar.close()
                    if frames == 0:
                        # Raised inside atomic_output: the partial file goes, an existing target stays as it was.
                        skipped = f" ({undecodable} packet(s) did not decode)" if undecodable else ""
                        raise ImageError(f"{source}: no decodable video frames{skipped}; nothing written")
                    for out_packet in video_out.encode():
                        output.mux(out_packet)
        if warn is not None and total and frames < total:
            warn(f"{source}: decoded {frames} of the {total} frames the file declares (truncated or corrupt); "
                 f"{target} holds those {frames}")
        elif warn is not None and expected and frames < expected[0] - 1:  # durations round: one frame of slack
            warn(f"{source}: decoded {frames} of the about {expected[0]} frames its duration ({expected[1]:.2f} s at "
                 f"{expected[2]:g} frames/s) implies (truncated or corrupt); {target} holds those {frames}")
        elif warn is not None and undecodable:
            warn(f"{source}: {undecodable} packet(s) did not decode and were skipped")
        return frames, frames / (time.perf_counter() - started)


def _frames_from_duration(container, stream) -> tuple[int, float, float] | None:  # noqa: ANN001
    """(frames, seconds, frames per second) a video's declared duration implies, or ``None`` when it has none."""
    rate = stream.average_rate or stream.guessed_rate
    seconds = None
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE: microseconds
    if not rate or not seconds or seconds <= 0:
        return None
    return round(seconds * float(rate)), seconds, float(rate)


def stylize_jobs(
    stylizer: Stylizer, jobs: list[Job], progress: bool = True,
    on_error: Callable[[Path, str], None] | None = None, skip_existing: bool = False,
    report: StylizeReport | None = None, on_interrupt: Callable[[str], None] | None = None,
) -> StylizeReport:
    """Run planned jobs (:func:`plan_outputs`): images first, then videos.

    Unreadable inputs are recorded in the report (and passed to ``on_error``) and the rest go on.

    Args:
        stylizer: What runs each image.
        jobs: The planned inputs and outputs.
        progress: Progress bars on stderr: over the images, over a tiled image's tiles, over a video's frames.
        on_error: Told each input that failed, and why, as it fails.
        skip_existing: Leave outputs that already exist as they are (recorded in ``report.skipped``). An existing
            output is complete: every output is written under a temporary name and renamed onto its own name
            only once whole (:func:`cg_export.files.atomic_output`), so a file under the final name was finished.
        report: Filled as jobs finish, so the caller knows what was done even when the run is interrupted.
        on_interrupt: On Ctrl-C (or a signal raising ``KeyboardInterrupt``), told at once what was finished
            (:meth:`StylizeReport.interrupted`), after the output in progress was removed; the interrupt then
            goes on, with the same line added to it as a note.

    Returns:
        ``report`` (or a new one) with every job's outcome.
    """
    report = report if report is not None else StylizeReport()
    pending = []
    for job in jobs:
        if skip_existing and job.target.is_file():
            report.skipped.append(job.target)
        else:
            pending.append(job)
    images = [job for job in pending if not job.is_video]
    videos = [job for job in pending if job.is_video]
    with _calls_off_main_thread(stylizer):
        try:
            _run_images(stylizer, images, progress, on_error, report)
            _run_videos(stylizer, videos, progress, on_error, report)
        except KeyboardInterrupt as exc:
            line = report.interrupted(len(jobs))
            exc.add_note(line)
            if on_interrupt is not None:
                on_interrupt(line)
            raise
    return report


def _run_images(stylizer: Stylizer, images: list[Job], progress: bool,
                on_error: Callable[[Path, str], None] | None, report: StylizeReport) -> None:
    bar = _progress(len(images), "images", progress and len(images) > 1)
    try:
        for job in images:
            try:
                plan = stylizer.file(job.source, job.target, progress=progress)
                report.written.append(job.target)
                report.plans.append(plan)
            except CgExportError as exc:
                report.failed.append((job.source, str(exc)))
                if on_error:
                    on_error(job.source, str(exc))
            bar.update(1)
    finally:
        bar.close()


def _run_videos(stylizer: Stylizer, videos: list[Job], progress: bool,
                on_error: Callable[[Path, str], None] | None, report: StylizeReport) -> None:
    for job in videos:
        try:
            frames, fps = stylizer.video(job.source, job.target, progress, warn=report.warnings.append)
            report.written.append(job.target)
            report.plans.append(f"{frames} frames")
            report.frames += frames
            report.frames_per_second = fps
        except CgExportError as exc:
            report.failed.append((job.source, str(exc)))
            if on_error:
                on_error(job.source, str(exc))


class _OffMainThread:
    """A runner whose calls run on one worker thread while the calling thread waits for them.

    Why: Python handles a signal only between bytecodes of the main thread, so Ctrl-C during a native inference
    call of several seconds (one large tile on a CPU) was acknowledged only when the call returned. Waiting on a
    future is interruptible at once. Every call runs on the same thread, in order, so a backend sees one thread.
    """

    def __init__(self, runner: Runner, executor: ThreadPoolExecutor):
        self._runner = runner
        self._executor = executor

    def __getattr__(self, name: str):  # noqa: ANN204
        value = getattr(self._runner, name)
        if not callable(value):
            return value
        return lambda *args, **kwargs: self._executor.submit(value, *args, **kwargs).result()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._executor.submit(self._runner, batch).result()


@contextmanager
def _calls_off_main_thread(stylizer: Stylizer) -> Iterator[None]:
    """While inside, ``stylizer`` runs its model through :class:`_OffMainThread` (only needed on the main thread,
    the one signals interrupt). On the way out, a call still running is waited for: the caller closes the runner
    next, and a backend must not be closed under a running call."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    runner = stylizer.runner
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cg-stylize-model")
    stylizer.runner = _OffMainThread(runner, executor)  # type: ignore[assignment]
    try:
        yield
    finally:
        stylizer.runner = runner
        executor.shutdown(wait=True, cancel_futures=True)


def stylize_paths(
    stylizer: Stylizer, inputs: list[Path], output: Path, progress: bool = True,
    on_error: Callable[[Path, str], None] | None = None, protected: InputFiles | None = None,
    skip_existing: bool = False,
) -> StylizeReport:
    """Stylize files, folders (recursively, relative paths kept) and videos into ``output``.

    The outputs are planned and checked first (:func:`plan_outputs`; ``protected`` names more files no output may
    replace, such as the model); unreadable inputs are recorded in the report and the rest go on. With
    ``skip_existing``, outputs already there are left as they are (see :func:`stylize_jobs`).
    """
    return stylize_jobs(stylizer, plan_outputs(inputs, output, protected), progress, on_error,
                        skip_existing=skip_existing)


def _demux(container, streams):  # noqa: ANN001, ANN202
    """Packets of ``streams``; a read error ends the video there (what decoded so far is kept and reported)."""
    packets = container.demux(streams)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except Exception:  # FFmpeg's read errors (truncated file, corrupt container)
            return
        yield packet


def _import_av():  # noqa: ANN202
    try:
        import av
    except ImportError:
        raise MissingDependencyError("PyAV", "to read and write videos", extra_hint("video")) from None
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


class _TileBar:
    """A bar over one image's tiles (made on the first report, when the count is known; a whole image, one call,
    shows none). It goes when the image is done, so a folder's bar stays the only one left."""

    def __init__(self, label: str):
        self.label = label
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="tile", desc=self.label, leave=False, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
