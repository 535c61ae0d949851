"""cg-bench: report shape, statistics, parity, reference discovery, unavailable backends and the command line.

Timings vary from run to run, so nothing here asserts a duration: only counts, shapes, parity numbers and messages.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner, Result

from cg_export import bench
from cg_export.backends import Runner, runner_for
from cg_export.backends.onnxruntime import OnnxRuntimeRunner
from cg_export.backends.torch import TorchRunner
from cg_export.cli.bench import app as cg_bench_app
from cg_export.errors import BackendError, CgExportError
from cg_export.export.onnx import OnnxExportOptions, export_onnx
from cg_export.files import sha256_of
from cg_export.images import sample_photographs, to_uint8
from cg_export.models import save_generator
from tests.conftest import make_generator

SIZE = (32, 32)
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
OFFSET = 0.02


class OffsetRunner(Runner):
    """A real runner whose output is another runner's plus a constant: a candidate with a known error."""

    name = "offset"

    def __init__(self, inner: Runner, offset: float):
        super().__init__()
        self.inner, self.offset = inner, offset

    def _activate(self) -> None:
        self.inner.activate()
        self._info = self.inner.info

    def _deactivate(self) -> None:
        self.inner.deactivate()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.inner(batch) + np.float32(self.offset)


def with_metadata(source: Path, output: Path, **props: str) -> Path:
    """A copy of an ONNX file with some ``cg_export.*`` metadata replaced."""
    model = onnx.load(str(source))
    existing = {p.key: p for p in model.metadata_props}
    for key, value in props.items():
        existing[f"cg_export.{key}"].value = value
    onnx.save(model, str(output))
    return output


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny generator as .pt, its ONNX export, variants of its metadata, and an engine file that cannot run."""
    folder = tmp_path_factory.mktemp("bench")
    pt = save_generator(make_generator("resnet", ngf=4, n_blocks=2), folder / "g.pt")
    onnx_path = export_onnx(pt, folder / "g.onnx", OnnxExportOptions(verify=False)).path
    other = save_generator(make_generator("resnet", seed=1, ngf=4, n_blocks=2), folder / "other.pt")
    engine = folder / "g.engine"
    engine.write_bytes(b"not an engine")
    return {
        "pt": pt,
        "onnx": onnx_path,
        "other_pt": other,
        "engine": engine,
        "missing_source": with_metadata(onnx_path, folder / "moved.onnx", source_checkpoint=str(folder / "gone.pt")),
        "changed_source": with_metadata(onnx_path, folder / "changed.onnx", source_sha256="0" * 64),
        "no_source": with_metadata(onnx_path, folder / "anonymous.onnx", source_checkpoint=""),
        "from_other": with_metadata(onnx_path, folder / "from_other.onnx", source_sha256=sha256_of(other)),
    }


@pytest.fixture(scope="module")
def report(files: dict[str, Path]) -> bench.BenchReport:
    """One small benchmark over every kind of row: reference itself, ONNX, offset candidate, unavailable ones."""
    targets = bench.targets_from_files([files["pt"], files["onnx"], files["engine"]])
    targets += bench.targets_from_files([files["onnx"]], provider="TensorrtExecutionProvider")
    targets += bench.targets_from_files([files["from_other"]])
    targets.append(bench.BenchTarget("offset", lambda: OffsetRunner(TorchRunner.from_checkpoint(files["pt"]), OFFSET)))
    return bench.run_benchmark(targets, sizes=[SIZE], batches=[1, 2], warmup=1, iterations=3,
                               reference=bench.find_reference([files["pt"]]))


def rows(report: bench.BenchReport, model: str, backend: str | None = None) -> list[bench.BenchResult]:
    found = [r for r in report.results if Path(r.model).name == model and (backend is None or r.backend == backend)]
    assert found, f"no row for {model} {backend}"
    return found


# ----------------------------------------------------------------------------------------------- statistics


def test_percentiles_interpolate_between_ranks():
    stats = bench.LatencyStats.from_samples([40.0, 10.0, 30.0, 20.0])
    assert (stats.min, stats.max, stats.mean) == (10.0, 40.0, 25.0)
    # rank = q/100 * (n - 1): p50 -> 1.5 (20..30), p90 -> 2.7 (30..40), p99 -> 2.97
    assert stats.p50 == pytest.approx(25.0) and stats.p90 == pytest.approx(37.0)
    assert stats.p99 == pytest.approx(39.7)
    hundred = bench.LatencyStats.from_samples([float(i) for i in range(1, 101)])
    assert (hundred.p50, hundred.p90, hundred.p99) == pytest.approx((50.5, 90.1, 99.01))
    single = bench.LatencyStats.from_samples([7.0])
    assert single.p50 == single.p99 == single.min == single.max == 7.0
    with pytest.raises(ValueError):
        bench.LatencyStats.from_samples([])


def test_latency_json_round_trip():
    stats = bench.LatencyStats.from_samples([1.23456789, 2.0, 3.0])
    data = stats.to_json()
    assert list(data) == list(bench.LATENCY_KEYS) and data["min"] == 1.2346
    assert bench.LatencyStats.from_json(data).p50 == 2.0


@pytest.mark.parametrize(("options", "message"), [
    ({"iterations": 5, "duration_s": 1.0}, "not both"),
    ({"warmup": -1}, "warmup -1"),
    ({"iterations": 0}, "iterations 0"),
    ({"duration_s": 0.0}, "duration_s 0.0"),
])
def test_timing_options_are_checked(options, message):
    with pytest.raises(CgExportError, match=message):
        bench.TimingSettings.create(**options)


def test_timing_loop_takes_the_asked_number_of_samples():
    calls = []
    samples = bench.time_calls(lambda: calls.append(1), bench.TimingSettings.create(warmup=0, iterations=7))
    assert len(samples) == len(calls) == 7 and all(s >= 0 for s in samples)
    by_duration = bench.time_calls(lambda: None, bench.TimingSettings.create(duration_s=1e-6))
    assert len(by_duration) >= bench.MIN_SAMPLES
    defaults = bench.TimingSettings.create()
    assert (defaults.warmup, defaults.iterations, defaults.duration_s) == (3, None, 3.0)


def test_photograph_batches_repeat_photos_beyond_those_shipped():
    shipped = len(sample_photographs())
    label, batch = bench.photograph_batch(40, 24, shipped + 1)
    assert batch.shape == (shipped + 1, 3, 40, 24) and batch.dtype == np.float32
    assert "astronaut" in label and "@ 40x24" in label
    assert np.array_equal(batch[0], batch[shipped]) and not np.array_equal(batch[0], batch[1])


# ------------------------------------------------------------------------------------------- report and JSON


def test_json_has_exactly_the_documented_shape(report):
    data = json.loads(json.dumps(report.to_json(), allow_nan=False))  # no NaN/Infinity tokens: "inf" is a string
    assert list(data) == ["environment", "results"]
    assert {"cpu", "gpu", "versions"} <= set(data["environment"]) and "numpy" in data["environment"]["versions"]
    assert len(data["results"]) == 6 * 2  # six targets, one size, two batch sizes
    for row in data["results"]:
        assert list(row) == [*bench.RESULT_KEYS, "compute_ms", "note", "macs", "params"]
        assert (row["height"], row["width"]) == SIZE and row["batch"] in (1, 2)
        if row["latency_ms"] is not None:
            assert list(row["latency_ms"]) == list(bench.LATENCY_KEYS)
            stats = row["latency_ms"]
            assert stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]
            assert row["throughput_ips"] == pytest.approx(row["batch"] * 1000 / stats["mean"], rel=1e-3)
            assert row["compute_ms"] is None  # host backends: end to end is compute
            # Counted (ptflops) for every runner whose model records its architecture (the offset runner
            # describes its inner model, so it has them too).
            assert row["macs"] is not None and row["params"] is not None
        else:
            assert row["throughput_ips"] is row["psnr_db"] is row["max_abs_err"] is row["peak_mem_mb"] is None
            assert row["note"]


def test_report_round_trips_through_json(report, tmp_path):
    path = bench.write_json(report, tmp_path / "sub" / "r.json")
    again = bench.load_report(path)
    assert [r.key for r in again.results] == [r.key for r in report.results]
    assert again.results[0].psnr_db == math.inf
    assert again.results[0].latency == bench.LatencyStats.from_json(report.results[0].latency.to_json())


def test_reference_rows_are_identical_and_onnx_rows_close(report):
    for row in rows(report, "g.pt"):
        assert row.psnr_db == math.inf and row.max_abs_err == 0.0
        assert row.to_json()["psnr_db"] == "inf"
        assert row.backend == "torch" and row.precision == "fp32" and row.device == "cpu"
    for row in rows(report, "g.onnx", "onnxruntime:CPU"):
        assert row.max_abs_err < 1e-4 and row.psnr_db > 60
        assert row.peak_mem_mb is not None and row.peak_mem_mb >= 0  # Linux: the reset RSS high-water mark


def test_parity_arithmetic_of_a_known_offset(report, files):
    reference = TorchRunner.from_checkpoint(files["pt"])
    for row in rows(report, "offset"):
        _, batch = bench.photograph_batch(*SIZE, row.batch)
        with reference:
            expected = reference(batch).astype(np.float64)
        levels = to_uint8(expected).astype(np.float64) - to_uint8(expected + OFFSET).astype(np.float64)
        assert row.psnr_db == pytest.approx(10 * math.log10(255**2 / np.mean(levels**2)))
        assert row.max_abs_err == pytest.approx(OFFSET, rel=1e-5)


def test_an_engine_without_tensorrt_is_an_unavailable_row(report):
    for row in rows(report, "g.engine"):
        assert row.backend == "tensorrt" and not row.available and row.precision is None
        assert "\n" not in row.note
        if not HAS_TENSORRT:
            assert "tensorrt" in row.note.lower() and "not installed" in row.note


@pytest.mark.skipif("TensorrtExecutionProvider" in __import__("onnxruntime").get_available_providers(),
                    reason="the TensorRT execution provider is installed here")
def test_a_missing_execution_provider_is_an_unavailable_row(report):
    unavailable = [r for r in rows(report, "g.onnx") if not r.available]
    assert len(unavailable) == 2
    assert all("TensorrtExecutionProvider" in r.note and "not available here" in r.note for r in unavailable)


def test_a_model_exported_from_another_checkpoint_is_flagged(report):
    for row in rows(report, "from_other.onnx"):
        # Only the record says so (the weights are g.pt's): the note comes from the metadata, not the numbers.
        assert "different checkpoint than the reference" in row.note and row.psnr_db is not None


def test_a_checkpoint_is_a_source_not_an_export(files):
    # g.pt against the other checkpoint: its parity is low, but it records no export, so no "exported from" note.
    targets = bench.targets_from_files([files["pt"]])
    result = bench.run_benchmark(targets, sizes=[SIZE], warmup=0, iterations=1,
                                 reference=bench.find_reference([], reference=files["other_pt"]))
    (row,) = result.results
    assert row.available and row.psnr_db is not None and row.psnr_db < 60 and row.note is None


def test_progress_lines_say_what_ran_and_why_not():
    timed, skipped = synthetic({"a.onnx": 1.5, "b.engine": None}).results
    timed.psnr_db = 41.26
    skipped.notes.append("TensorRT is not installed")
    assert bench.progress_line(timed) == ("timed", "a.onnx onnxruntime:CPU fp32 256x256 batch 1: p50 1.500 ms, "
                                                   "PSNR 41.3 dB")
    assert bench.progress_line(skipped) == ("skipped", "b.engine onnxruntime:CPU fp32 256x256 batch 1: "
                                                       "TensorRT is not installed")
    assert bench.progress_line(skipped, with_note=False)[1] == bench.describe_row(skipped)


def test_missing_backend_module_gives_one_line(monkeypatch, files):
    monkeypatch.setitem(sys.modules, "cg_export.backends.tensorrt", None)
    with pytest.raises(BackendError, match="no TensorRT backend"):
        runner_for(files["engine"])


def test_table_and_markdown_number_their_notes(report, tmp_path):
    table = bench.format_table(report)
    assert table.splitlines()[0].startswith("model") and "[1] " in table
    notes = [line for line in table.splitlines() if line.startswith("[")]
    assert len(notes) == len({r.note for r in report.results if r.note})
    markdown = bench.write_markdown(report, tmp_path / "r.md").read_text()
    assert "| model | backend |" in markdown and "Parity reference" in markdown and "\n1. " in markdown
    assert markdown.count("g.pt | torch | fp32 | cpu | 32x32 |") == 2


def test_table_columns_line_up_at_any_terminal_width(report, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # rich would squeeze a table to the terminal; a report never is
    header, rule, *lines = bench.format_table(report, wide=True).splitlines()
    assert [title in header for title in bench.TABLE_HEADER] == [True] * len(bench.TABLE_HEADER)
    assert set(rule) == {"-"} and len(rule) >= len(header)
    body, notes = lines[: len(report.results)], lines[len(report.results):]
    assert all(note.startswith("[") for note in notes)
    size_at, batch_end = header.index("size"), header.index("batch") + len("batch")
    for line, row in zip(body, report.results):
        assert line.startswith(row.model + " ")  # full paths, never cut
        assert line[size_at:].startswith(f"{row.height}x{row.width}")  # text columns left-aligned under the title
        assert line[:batch_end].endswith(f" {row.batch}")  # numbers right-aligned under the title


def test_default_table_fits_100_columns_with_speedup_and_status():
    long_dir = "/home/someone/experiments/horse2zebra/exports/2026-12-07-with-a-long-folder-name"
    results = []
    for model, backend, precision, device, p50, psnr in (
        ("/ckpt/latest_net_G_A.pt", "torch", "fp32", "cpu", 1234.5, math.inf),
        (f"{long_dir}/generator_horse2zebra_fp16_dynamic.onnx", "onnxruntime:CUDA", "fp16", "cuda", 617.25, 45.04),
        (f"{long_dir}/generator_horse2zebra_int8_calibrated_percentile.onnx", "onnxruntime:Tensorrt", "int8", "cuda",
         280.56, 27.14),
        (f"{long_dir}/generator.onnx", "openvino", "fp32", "CPU", None, None),
    ):
        latency = None if p50 is None else bench.LatencyStats(p50, p50, p50, p50, p50, p50)
        row = bench.BenchResult(model, backend, precision, device, 1024, 1024, 16, latency, psnr_db=psnr)
        if p50 is None:
            row.notes.append("OpenVINO is not installed here: pip install 'cg-export[openvino]' and run again " * 2)
        results.append(row)
    report = bench.BenchReport({"cpu": "x"}, results)
    assert len(bench.format_table(report, wide=True).splitlines()[0]) > 150  # what the issue found by default
    text = bench.format_table(report)
    assert max(len(line) for line in text.splitlines()) <= bench.TABLE_WIDTH
    header, _, *lines = text.splitlines()
    assert header.split() == ["model", "backend", "precision", "size", "batch", "p50", "ms", "speed-up", "PSNR", "dB",
                              "status", "note"]
    reference, fp16, int8, missing = lines[:4]
    assert reference.startswith("...") and "G_A.pt torch:cpu " in reference  # folders dropped, then names cut
    assert " 1.00x " in reference and reference.rstrip().endswith("passes")
    # Speed-up against the PyTorch fp32 row of the same size and batch; status against the precision's floor.
    assert " 2.00x " in fp16 and " 45.0 " in fp16 and fp16.rstrip().endswith("passes")
    assert " 4.40x " in int8 and " 27.1 " in int8 and int8.rstrip().endswith("below floor")
    assert "tile.onnx " in int8  # cut at the front: the file's end is what tells them apart
    assert missing.rstrip().endswith("[1]") and "openvino:CPU" in missing
    assert "[1] OpenVINO is not installed" in text  # the note, wrapped to the width


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_plot_is_written(report, tmp_path):
    path = bench.write_plot(report, tmp_path / "latency.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.part"))


def test_plot_without_matplotlib_is_one_line(monkeypatch, report, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(CgExportError, match="matplotlib is needed for --plot but is not installed"):
        bench.write_plot(report, tmp_path / "latency.png")
    assert not (tmp_path / "latency.png").exists()


# -------------------------------------------------------------------------------------------------- backends


def test_host_backends_have_no_separate_compute_time(files):
    batch = bench.photograph_batch(*SIZE, 1)[1]
    with TorchRunner.from_checkpoint(files["pt"]) as torch_runner:
        assert torch_runner.compute_timer(batch) is None
    with OnnxRuntimeRunner(files["onnx"]) as ort_runner:
        assert ort_runner.compute_timer(batch) is None
        expected = ort_runner(batch)
        # The device-resident path (IOBinding) runs here on CPU memory, so its ONNX Runtime calls are exercised.
        timer = ort_runner.bound_timer(batch, "cpu")
        assert all(isinstance(timer(), float) for _ in range(3))
        assert np.array_equal(ort_runner(batch), expected)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_without_a_gpu_is_a_clear_error(files):
    with pytest.raises(BackendError, match="sees no CUDA GPU"):
        TorchRunner.from_checkpoint(files["pt"], device="cuda").activate()


# --------------------------------------------------------------------------------------------- reference


def test_reference_given_explicitly_wins(files):
    found = bench.find_reference([files["pt"], files["onnx"]], reference=files["other_pt"])
    assert found.path == files["other_pt"] and "--reference" in found.reason
    with pytest.raises(CgExportError, match="no such file"):
        bench.find_reference([files["onnx"]], reference=files["pt"].with_name("nope.pt"))
    with pytest.raises(CgExportError, match="expected a PyTorch checkpoint"):
        bench.find_reference([files["onnx"]], reference=files["onnx"])


def test_reference_is_the_checkpoint_among_the_models(files):
    found = bench.find_reference([files["onnx"], files["engine"], files["other_pt"], files["pt"]])
    assert found.path == files["other_pt"] and "among the models" in found.reason


def test_reference_from_onnx_metadata(files):
    found = bench.find_reference([files["engine"], files["onnx"]])
    assert found.path == files["pt"].resolve() and "recorded in" in found.reason


def test_reference_metadata_pointing_nowhere(files):
    found = bench.find_reference([files["missing_source"]])
    assert found.path is None and "gone.pt, which does not exist here" in found.reason
    assert "--reference" in found.reason


def test_reference_changed_since_export(files):
    found = bench.find_reference([files["changed_source"]])
    assert found.path is None and "has changed since" in found.reason and "SHA-256" in found.reason
    # A later ONNX model with a valid record still supplies the reference.
    assert bench.find_reference([files["changed_source"], files["onnx"]]).path == files["pt"].resolve()


def test_no_reference_at_all(files):
    assert "records no source checkpoint" in bench.find_reference([files["no_source"]]).reason
    found = bench.find_reference([files["engine"]])
    assert found.path is None and "no PyTorch checkpoint among the models" in found.reason


def test_rows_without_reference_say_why(files):
    targets = bench.targets_from_files([files["onnx"]])
    result = bench.run_benchmark(targets, sizes=[SIZE], warmup=0, iterations=1,
                                 reference=bench.find_reference([files["missing_source"]]))
    (row,) = result.results
    assert row.available and row.psnr_db is None and row.max_abs_err is None
    assert row.note.startswith("no parity:") and "does not exist here" in row.note


# ------------------------------------------------------------------------------------------------- compare


def synthetic(p50s: dict[str, float | None]) -> bench.BenchReport:
    results = []
    for model, p50 in p50s.items():
        latency = None if p50 is None else bench.LatencyStats(p50, p50, p50, p50, p50, p50)
        results.append(bench.BenchResult(model, "onnxruntime:CPU", "fp32", "cpu", 256, 256, 1, latency))
    return bench.BenchReport({"cpu": "x"}, results)


def test_compare_flags_slower_and_vanished_rows():
    baseline = synthetic({"a.onnx": 100.0, "b.onnx": 100.0, "c.onnx": 100.0, "d.onnx": None, "old.onnx": 1.0})
    current = synthetic({"/elsewhere/a.onnx": 105.0, "b.onnx": 125.0, "c.onnx": None, "d.onnx": 50.0,
                         "new.onnx": 1.0})
    comparison = bench.compare_reports(baseline, current)
    by_model = {r.label.split()[0]: r for r in comparison.rows}
    assert by_model["a.onnx"].change_pct == pytest.approx(5.0) and not by_model["a.onnx"].regressed
    assert by_model["b.onnx"].change_pct == pytest.approx(25.0) and by_model["b.onnx"].regressed
    assert by_model["c.onnx"].regressed and by_model["c.onnx"].change_pct is None
    assert not by_model["d.onnx"].regressed
    assert [r.label.split()[0] for r in comparison.regressions] == ["b.onnx", "c.onnx"]
    assert comparison.only_current[0].startswith("new.onnx") and comparison.only_baseline[0].startswith("old.onnx")
    assert len(bench.compare_reports(baseline, current, threshold_pct=30).regressions) == 1
    text = bench.format_comparison(comparison)
    assert "REGRESSION b.onnx" in text and "+25.0%" in text and "unavailable now" in text
    with pytest.raises(CgExportError, match="threshold_pct -1"):
        bench.compare_reports(baseline, current, threshold_pct=-1)


def test_baseline_must_be_a_report(tmp_path):
    (tmp_path / "bad.json").write_text('{"results": 3}')
    with pytest.raises(CgExportError, match="not a cg-bench JSON report"):
        bench.load_report(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(CgExportError, match="not a readable JSON report"):
        bench.load_report(tmp_path / "broken.json")


# ---------------------------------------------------------------------------------------------- command line


def run(*args: str) -> Result:
    """cg-bench in this process (typer's test runner): the same command, without a Python start-up per call."""
    return CliRunner().invoke(cg_bench_app, list(args))


def test_cli_end_to_end_with_reports_and_compare(files, tmp_path):
    outputs = [tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.png"]
    plot = ["--plot", str(outputs[2])] if HAS_MATPLOTLIB else []
    common = [str(files["pt"]), str(files["onnx"]), str(files["engine"]), "--size", "32x32", "--batch", "1",
              "--batch", "2", "--warmup", "1", "--iterations", "2"]
    result = run(*common, "--json", str(outputs[0]), "--markdown", str(outputs[1]), *plot)
    assert result.exit_code == 0, result.output
    assert "reference g.pt (the PyTorch checkpoint among the models)" in result.stdout.replace(str(files["pt"]), "g.pt")
    assert "p50 ms" in result.stdout and "skipped" in result.stdout
    data = json.loads(outputs[0].read_text())
    assert len(data["results"]) == 6 and data["results"][0]["psnr_db"] == "inf"
    assert all(path.is_file() for path in outputs[: 3 if HAS_MATPLOTLIB else 2])

    fast = json.loads(outputs[0].read_text())
    for row in fast["results"]:
        if row["latency_ms"]:
            row["latency_ms"]["p50"] = 1e-6
    (tmp_path / "fast.json").write_text(json.dumps(fast))
    result = run(*common, "--compare", str(tmp_path / "fast.json"), "--fail-on-regression")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit) and "REGRESSION" in result.stdout
    assert result.stderr.startswith("error: 4 row(s) regressed against") and "Traceback" not in result.stderr

    for row in fast["results"]:
        if row["latency_ms"]:
            row["latency_ms"]["p50"] = 1e9
    (tmp_path / "slow.json").write_text(json.dumps(fast))
    result = run(*common, "--compare", str(tmp_path / "slow.json"), "--threshold", "5", "--fail-on-regression")
    assert result.exit_code == 0, result.output
    assert "REGRESSION" not in result.stdout and "p50 more than 5% slower" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["missing.onnx"], "missing.onnx: no such file"),
    (["model.h5"], "unknown model type '.h5'"),
    (["{pt}", "--size", "big"], "--size 'big': expected HEIGHTxWIDTH"),
    (["{pt}", "--iterations", "3", "--duration", "1"], "give --iterations or --duration, not both"),
    (["{pt}", "--compare", "nope.json"], "nope.json: no such file"),
    (["{engine}", "--iterations", "1"], "no model could run"),
])
def test_cli_errors_are_one_line(files, args, message):
    result = run(*[a.format(pt=files["pt"], engine=files["engine"]) for a in args])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # an exit, not an uncaught error
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_cli_plot_without_matplotlib_fails_before_benchmarking(files, tmp_path):
    # A real process through the console script's main(), so the entry point itself is exercised once.
    code = ("import sys; sys.modules['matplotlib'] = None; from cg_export.cli.bench import main; "
            f"sys.argv = ['cg-bench', {str(files['pt'])!r}, '--plot', {str(tmp_path / 'p.png')!r}]; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "timed" not in result.stdout
    assert result.stderr.startswith("error: matplotlib is needed for --plot but is not installed: pip install")
