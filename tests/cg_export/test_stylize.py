"""cg-stylize: whole-image statistics for tiles, every image kind, folders, videos, uint8 I/O graphs."""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from cg_export.backends.onnxruntime import OnnxRuntimeRunner
from cg_export.backends.torch import TorchRunner
from cg_export.cli.stylize import app as cg_stylize
from cg_export.export.onnx import OnnxExportOptions, export_onnx
from cg_export.images import fit_to_size, read_photo, sample_photographs, to_model_input
from cg_export.models import load_generator
from cg_export.norm_stats import NORM_STATS, norm_channel_count, split_norm_stats_graphs
from cg_export.parity import psnr_8bit
from cg_export.stylize import StylizeOptions, Stylizer, StylizeReport, plan_outputs, stylize_jobs
from cg_export.tiling import blend_weights, plan_windows, stylize_array


@pytest.fixture(scope="module")
def onnx_model(checkpoints, tmp_path_factory) -> Path:
    return export_onnx(checkpoints["latest_net_G_A.pth"], tmp_path_factory.mktemp("onnx") / "g.onnx").path


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return dict(sample_photographs())["rocket"]


def _psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_stats_graph_matches_torch_and_tile_graph_reproduces_the_whole_image(checkpoints, onnx_model):
    x = to_model_input([fit_to_size(dict(sample_photographs())["coffee"], 64, 96)])
    with OnnxRuntimeRunner(onnx_model) as ort_runner, \
            TorchRunner(load_generator(checkpoints["latest_net_G_A.pth"]).model) as torch_runner:
        stats = ort_runner.norm_stats(x)
        assert stats.shape == (1, 2, norm_channel_count(onnx.load(str(onnx_model))))
        np.testing.assert_allclose(stats, torch_runner.norm_stats(x), rtol=1e-4, atol=1e-5)
        # The image's own statistics fed back in reproduce the untiled output.
        np.testing.assert_allclose(ort_runner.infer_with_norm_stats(x, stats), ort_runner(x), atol=1e-5)
        np.testing.assert_allclose(torch_runner.infer_with_norm_stats(x, stats), torch_runner(x), atol=1e-5)


def test_split_graphs_are_valid_onnx_with_the_stats_as_io(onnx_model):
    stats_graph, tile_graph = split_norm_stats_graphs(onnx.load(str(onnx_model)))
    for graph in (stats_graph, tile_graph):
        onnx.checker.check_model(graph, full_check=True)
    assert [o.name for o in stats_graph.graph.output] == [NORM_STATS]
    assert [i.name for i in tile_graph.graph.input] == ["input", NORM_STATS]
    assert not [n for n in tile_graph.graph.node if n.op_type == "InstanceNormalization"]


def test_windows_cover_the_image_and_blend_to_one():
    windows = plan_windows(96, 160, 32, 8)
    total = np.zeros((96, 160), np.float32)
    for w in windows:
        total[w.top:w.bottom, w.left:w.right] += blend_weights(w, 96, 160, 8)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_tiles_with_whole_image_statistics_match_the_whole_image(onnx_model, photo):
    """768x768 real photograph in 256-px tiles: shared thumbnail statistics vs each tile's own."""
    image = fit_to_size(photo, 768, 768)
    with OnnxRuntimeRunner(onnx_model) as runner:
        whole = stylize_array(runner, image, 4)
        tiled = stylize_array(runner, image, 4, tile=256, overlap=32, stats_size=512)
        naive = stylize_array(runner, image, 4, tile=256, overlap=32, naive=True)
    assert tiled.shape == whole.shape == image.shape
    assert _psnr_uint8(whole, tiled) >= 35
    assert _psnr_uint8(whole, naive) < _psnr_uint8(whole, tiled) - 5


def test_odd_sizes_keep_their_size(onnx_model, photo):
    image = photo[:123, :201]
    with OnnxRuntimeRunner(onnx_model) as runner:
        assert stylize_array(runner, image, 4).shape == image.shape
        assert stylize_array(runner, image, 4, tile=64, overlap=8).shape == image.shape


def _run(*args: object) -> Result:
    return CliRunner().invoke(cg_stylize, [str(a) for a in args])


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, photo) -> Path:
    """Images as users have them: JPEG with EXIF rotation, RGBA, grey, 16-bit, CMYK, nested, one broken."""
    root = tmp_path_factory.mktemp("photos")
    (root / "nested").mkdir()
    base = Image.fromarray(photo[:100, :140])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    base.save(root / "rotated.jpg", exif=exif.tobytes())
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(base.size))
    rgba.save(root / "nested" / "alpha.png")
    base.convert("L").save(root / "grey.png")
    Image.fromarray(np.asarray(base.convert("L"), np.uint16) * 257).save(root / "deep16.png")
    base.convert("CMYK").save(root / "print.jpg")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (root / "notes.txt").write_text("ignored")
    return root


def test_folder_keeps_sizes_alpha_paths_and_reports_bad_files(onnx_model, image_folder, tmp_path):
    out = tmp_path / "out"
    result = _run(onnx_model, image_folder, "-o", out, "--no-progress", "--tile", "64")
    assert result.exit_code == 1
    assert "skipped:" in result.stderr and "broken.png" in result.stderr and "Traceback" not in result.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["deep16.png", "grey.png", "nested/alpha.png", "print.jpg", "rotated.jpg"]
    assert Image.open(out / "rotated.jpg").size == (100, 140)  # EXIF orientation applied
    alpha = Image.open(out / "nested" / "alpha.png")
    assert alpha.mode == "RGBA" and alpha.size == (140, 100)
    assert np.array_equal(np.asarray(alpha)[..., 3], np.asarray(Image.open(image_folder / "nested" / "alpha.png"))[..., 3])
    assert not list(out.rglob("*.part"))


def test_sixteen_bit_images_are_scaled_not_clipped(image_folder):
    rgb, alpha, _ = read_photo(image_folder / "deep16.png")
    grey = np.asarray(Image.open(image_folder / "grey.png"))
    assert alpha is None and np.abs(rgb[..., 0].astype(int) - grey).max() <= 1


def test_single_file_and_never_overwriting_the_input(onnx_model, image_folder, tmp_path):
    target = tmp_path / "one.png"
    assert _run(onnx_model, image_folder / "grey.png", "-o", target, "--no-progress").exit_code == 0
    assert Image.open(target).size == (140, 100)
    copy = tmp_path / "same.png"
    copy.write_bytes((image_folder / "grey.png").read_bytes())
    before = copy.read_bytes()
    result = _run(onnx_model, copy, "-o", copy, "--no-progress")
    assert result.exit_code == 1 and "refusing to overwrite the input" in result.stderr
    assert copy.read_bytes() == before


def test_torch_checkpoint_runs_the_same_way(checkpoints, image_folder, tmp_path):
    result = _run(checkpoints["latest_net_G_A.pth"], image_folder / "print.jpg", "-o", tmp_path / "p.jpg", "--tile", "0")
    assert result.exit_code == 0, result.stderr
    assert Image.open(tmp_path / "p.jpg").size == (140, 100)


def test_video_keeps_frames_size_and_audio(onnx_model, photo, tmp_path):
    av = pytest.importorskip("av")
    source = tmp_path / "clip.mp4"
    strip = fit_to_size(photo, 64, 160)
    with av.open(str(source), "w") as out:
        video = out.add_stream("mpeg4", rate=8)
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        audio = out.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(strip[:, i * 8 : i * 8 + 96]), format="rgb24")
            out.mux(video.encode(frame))
        tone = (0.1 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 440)).astype(np.float32)[None]
        for k in range(0, tone.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(tone[:, k : k + 1024], format="fltp", layout="mono")
            chunk.sample_rate = 16000
            out.mux(audio.encode(chunk))
        out.mux(video.encode())
        out.mux(audio.encode())
    target = tmp_path / "styled.mp4"
    result = _run(onnx_model, source, "-o", target, "--no-progress")
    assert result.exit_code == 0, result.stderr
    assert "8 frames at" in result.stdout
    with av.open(str(target)) as styled:
        assert [s.type for s in styled.streams] == ["video", "audio"]
        frames = [f.to_ndarray(format="rgb24") for f in styled.decode(video=0)]
    assert len(frames) == 8 and frames[0].shape == (64, 96, 3)


def test_uint8_io_graph_takes_camera_bytes(checkpoints, tmp_path, photo):
    path = export_onnx(checkpoints["ours.pt"], tmp_path / "g_u8.onnx", OnnxExportOptions(uint8_io=True)).path
    model = onnx.load(str(path))
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.type.tensor_type.elem_type == out.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim][3] == 3
    import onnxruntime as ort

    image = fit_to_size(photo, 64, 96)
    got = ort.InferenceSession(str(path)).run(None, {"image": image[None]})[0][0]
    from cg_export.images import to_uint8

    with TorchRunner(load_generator(checkpoints["ours.pt"]).model) as runner:
        expected = to_uint8(runner(to_model_input([image])))[0]
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert psnr_8bit(to_model_input([got]), to_model_input([expected])) > 40


# ------------------------------------------------------------------------------------------- long runs, reruns


def _small_folder(root: Path, photo: np.ndarray, count: int = 3) -> Path:
    root.mkdir(parents=True)
    for index in range(count):
        Image.fromarray(photo[index * 8 : index * 8 + 48, :64]).save(root / f"{'abc'[index]}.png")
    return root


def test_a_tiled_image_shows_a_bar_over_its_tiles(onnx_model, photo, tmp_path):
    source = tmp_path / "big.png"
    Image.fromarray(photo[:120, :150]).save(source)
    shown = _run(onnx_model, source, "-o", tmp_path / "out.png", "--tile", "64")
    assert shown.exit_code == 0, shown.output
    assert "big.png:" in shown.stderr and "tile/s" in shown.stderr  # tqdm's bar, on stderr, named for the image
    quiet = _run(onnx_model, source, "-o", tmp_path / "out2.png", "--tile", "64", "--no-progress")
    assert quiet.exit_code == 0 and "tile" not in quiet.stderr
    whole = _run(onnx_model, source, "-o", tmp_path / "out3.png", "--tile", "0")
    assert whole.exit_code == 0 and "tile/s" not in whole.stderr  # one call: nothing to count


def test_skip_existing_leaves_complete_outputs_and_makes_the_rest(onnx_model, photo, tmp_path):
    inputs = _small_folder(tmp_path / "in", photo)
    out = tmp_path / "out"
    assert _run(onnx_model, inputs, "-o", out, "--no-progress").exit_code == 0
    (out / "a.png").unlink()
    kept = (out / "b.png").read_bytes()
    (out / "b.png").write_bytes(kept + b"mark")  # a rerun that skips it leaves it byte for byte
    result = _run(onnx_model, inputs, "-o", out, "--no-progress", "--skip-existing")
    assert result.exit_code == 0, result.output
    assert "skipped 2 of 3 outputs already exist" in " ".join(result.stdout.split())
    assert (out / "b.png").read_bytes() == kept + b"mark" and Image.open(out / "a.png").size == (64, 48)
    assert "wrote" in result.stdout and str(out / "a.png") in result.stdout
    again = _run(onnx_model, inputs, "-o", out, "--no-progress", "--skip-existing")
    assert again.exit_code == 0 and "all 3 outputs already exist" in again.stdout and "model" not in again.stdout
    # Without the flag every output is made again.
    assert _run(onnx_model, inputs, "-o", out, "--no-progress").exit_code == 0
    assert (out / "b.png").read_bytes() == kept


class _SlowSecondCall(OnnxRuntimeRunner):
    """A real runner whose second inference holds its thread in native code for a while, as one large tile does
    on a CPU (hashing runs in C without returning to Python, so a signal waits for it like for onnxruntime)."""

    def __init__(self, path: Path):
        super().__init__(path, threads=1)
        self.calls = 0
        self.started = threading.Event()
        self.seconds = 0.0

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == 2:
            self.started.set()
            began = time.perf_counter()
            hashlib.pbkdf2_hmac("sha256", b"tile", b"salt", 2_000_000)
            self.seconds = time.perf_counter() - began
        return super().infer(batch)


def test_ctrl_c_is_acknowledged_at_once_and_says_what_was_finished(onnx_model, photo, tmp_path):
    jobs = plan_outputs([_small_folder(tmp_path / "in", photo)], tmp_path / "out")
    heard: list[tuple[float, str]] = []
    sent: list[float] = []

    def interrupt_during_the_slow_call() -> None:
        runner.started.wait(30)
        time.sleep(0.05)
        sent.append(time.perf_counter())
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _SlowSecondCall(onnx_model) as runner:
            threading.Thread(target=interrupt_during_the_slow_call, daemon=True).start()
            report = StylizeReport()
            with pytest.raises(KeyboardInterrupt) as stopped:
                stylize_jobs(Stylizer(runner, StylizeOptions(tile=0)), jobs, progress=False, report=report,
                             on_interrupt=lambda line: heard.append((time.perf_counter(), line)))
    finally:
        signal.signal(signal.SIGINT, previous)
    (when, line), = heard
    # Acknowledged while the native call was still running, not when it returned.
    assert when - sent[0] < runner.seconds / 2, (when - sent[0], runner.seconds)
    assert line == f"1 of 3 outputs complete ({tmp_path / 'out' / 'a.png'}); no output was left half-written"
    assert stopped.value.__notes__ == [line] and report.written == [tmp_path / "out" / "a.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]  # no .part file beside it
