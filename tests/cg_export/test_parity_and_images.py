"""Parity arithmetic, image conversions, and the runtime side importing without torch."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cg_export.errors import ImageError, ParityError
from cg_export.images import fit_to_size, load_image, sample_photographs, to_model_input, to_uint8
from cg_export.parity import ParityCase, ParityReport, check_parity, compare_outputs, psnr_8bit


def test_psnr_of_identical_outputs_is_infinite():
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)
    assert math.isinf(psnr_8bit(x, x))


def test_psnr_of_a_known_error():
    # Every pixel one 8-bit level apart: MSE 1, PSNR = 20 log10(255) = 48.13 dB.
    levels = np.full((1, 3, 4, 4), 100, np.float32)
    a, b = levels / 127.5 - 1, (levels + 1) / 127.5 - 1
    assert psnr_8bit(a, b) == pytest.approx(20 * math.log10(255), abs=1e-6)


def test_compare_outputs_reports_max_abs_error():
    a = np.zeros((1, 3, 2, 2), np.float32)
    b = a.copy()
    b[0, 1, 1, 1] = 0.25
    case = compare_outputs("x", a, b)
    assert case.max_abs_err == pytest.approx(0.25)
    with pytest.raises(ParityError, match="shapes differ"):
        compare_outputs("x", a, b[:, :, :1])


def test_thresholds_by_precision():
    good32 = ParityReport([ParityCase("a", 1e-4, 80.0)])
    check_parity(good32, "fp32")
    with pytest.raises(ParityError, match="max abs error"):
        check_parity(ParityReport([ParityCase("a", 2e-3, 80.0)]), "fp32")
    check_parity(ParityReport([ParityCase("a", 2e-2, 41.0)]), "fp16")
    with pytest.raises(ParityError, match="PSNR 39.0 dB < 40 dB"):
        check_parity(ParityReport([ParityCase("a", 2e-2, 39.0), ParityCase("b", 0, math.inf)]), "fp16")
    with pytest.raises(ParityError):
        check_parity(good32, "fp32", min_psnr_db=90)


def test_uint8_round_trip_is_exact():
    image = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    batch = to_model_input([image])
    assert batch.shape == (1, 3, 5, 7) and batch.dtype == np.float32
    assert batch.min() >= -1 and batch.max() <= 1
    assert np.array_equal(to_uint8(batch)[0], image)


def test_bundled_photographs_are_real_colour_images():
    photos = sample_photographs()
    assert len(photos) >= 4
    for _, image in photos:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert image.std() > 20  # natural images, not flat fills


def test_fit_to_size_crops_to_the_exact_size():
    image = np.zeros((300, 451, 3), np.uint8)
    assert fit_to_size(image, 256, 384).shape == (256, 384, 3)
    assert fit_to_size(image, 512, 128).shape == (512, 128, 3)


def test_load_image_converts_modes_and_reports_bad_files(tmp_path):
    Image.new("L", (9, 4), 77).save(tmp_path / "grey.png")
    Image.new("RGBA", (3, 3), (1, 2, 3, 4)).save(tmp_path / "alpha.png")
    assert load_image(tmp_path / "grey.png").shape == (4, 9, 3)
    assert load_image(tmp_path / "alpha.png")[0, 0].tolist() == [1, 2, 3]
    (tmp_path / "fake.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(tmp_path / "fake.jpg")
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "absent.png")


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_runtime_modules_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import cg_export, cg_export.backends, cg_export.backends.onnxruntime, cg_export.parity, cg_export.images\n"
        "print('ok')"
    )
    result = _python(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_deployable_commands_start_without_torch_or_onnx():
    """cg-stylize and cg-bench run models on machines with only a runtime: their option declarations (help
    quoting library defaults) must not pull in torch or the onnx package."""
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
        "import typer.main\n"
        "from cg_export.cli import bench, stylize\n"
        "for app in (bench.app, stylize.app): typer.main.get_command(app)\n"
        "print('ok')"
    )
    result = _python(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_missing_onnxruntime_is_one_clear_error(checkpoints, tmp_path):
    code = (
        "import sys; sys.modules['onnxruntime'] = None\n"
        "from cg_export.backends.onnxruntime import OnnxRuntimeRunner\n"
        "from cg_export.errors import MissingDependencyError\n"
        "try:\n"
        f"    OnnxRuntimeRunner({str(tmp_path / 'g.onnx')!r}).activate()\n"
        "except MissingDependencyError as e:\n"
        "    print(e)\n"
    )
    result = _python(code)
    assert "onnxruntime is needed to run ONNX models" in result.stdout
    assert "cg-export[cpu]" in result.stdout


def test_cli_help_works_without_onnxruntime():
    code = (
        "import sys; sys.modules['onnxruntime'] = None; sys.argv = ['cg-export', '--help']\n"
        "from cg_export.cli.export import main\n"
        "main()"
    )
    result = _python(code)
    assert result.returncode == 0 and "onnx" in result.stdout


def test_training_calibration_and_stylize_find_the_same_image_files(tmp_path):
    from cg_export.export.quantize import find_calibration_images
    from cg_export.images import IMAGE_SUFFIXES
    from cg_export.stylize import collect_inputs
    from training.data import scan_domain

    image = Image.new("RGB", (40, 30), (10, 200, 30))
    for name in ("a.png", "b.JPG", "c.jfif", "d.webp", "e.tiff"):
        image.save(tmp_path / name, format=Image.registered_extensions()[Path(name).suffix.lower()])
    image.save(tmp_path / "scan.pdf")  # Pillow writes PDFs, but a PDF is no photograph
    (tmp_path / "notes.txt").write_text("not an image")
    photographs = sorted(p for p in tmp_path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    assert [p.name for p in photographs] == ["a.png", "b.JPG", "c.jfif", "d.webp", "e.tiff"]
    assert find_calibration_images(tmp_path) == photographs
    assert [path for path, _ in collect_inputs([tmp_path])] == photographs
    assert scan_domain("A", tmp_path).files == photographs
