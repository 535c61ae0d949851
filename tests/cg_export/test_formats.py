"""The formats table: every tool's answers come from it, and a row is tested by the tests that exist.

Parametrised over :data:`cg_export.formats.FORMATS`, so a new row is checked here without a new test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cg_export.backends import backend_for
from cg_export.deploy.candidates import CANDIDATES, ExportJob, candidate_named
from cg_export.deploy.commands import candidate_command
from cg_export.errors import BackendError
from cg_export.export import ExportRequest, make_options, run_export
from cg_export.formats import (
    FORMATS,
    MODEL_SUFFIXES,
    PRECISIONS,
    PrecisionError,
    check_precision,
    format_named,
    load_reference,
)
from tests.conftest import REPO

ROWS = pytest.mark.parametrize("row", FORMATS, ids=[row.name for row in FORMATS])


@ROWS
def test_every_row_names_code_that_exists(row):
    """Runner, exporter, options and metadata reader resolve (the runtime itself is never imported for this)."""
    for reference in (row.runner, row.exporter, row.options, row.metadata_reader):
        if reference is not None:
            assert callable(load_reference(reference)), reference
    assert row.precisions and set(row.precisions) <= set(PRECISIONS)
    assert row.converts_from is None or format_named(row.converts_from).exporter is not None


@ROWS
def test_every_suffix_opens_with_its_row_and_no_other(row, tmp_path):
    for suffix in row.suffixes:
        assert backend_for(tmp_path / f"model{suffix}") is row
    assert len(set(MODEL_SUFFIXES)) == len(MODEL_SUFFIXES)


@ROWS
def test_an_impossible_precision_is_refused_before_any_work(row, tmp_path):
    with pytest.raises(PrecisionError, match=f"{row.title} cannot be made in bf4"):
        check_precision(row.name, "bf4")
    if row.exporter is not None:
        # The source does not exist: only a refusal made before loading anything can give this error.
        with pytest.raises(PrecisionError):
            run_export(row.name, tmp_path / "missing.pt", tmp_path / f"out{row.suffix}", ExportRequest("bf4"))
        assert not list(tmp_path.iterdir())


@ROWS
def test_every_precision_of_a_row_makes_its_own_options(row, tmp_path):
    if row.options is None:
        return
    for precision in row.precisions:
        options = make_options(row, ExportRequest(precision, calibration=tmp_path, size=(64, 64)))
        if row.converts_from is None:
            assert options.precision == precision
        else:  # a converted int8 comes from its QDQ source: the converter may or may not need to be told
            assert options.precision in (precision, "fp32")


def test_deploy_candidates_are_the_tables_precision_matrix():
    expected = [f"{row.name}-{cell.precision}" for row in FORMATS for cell in row.conversions if cell.deploy]
    assert [spec.name for spec in CANDIDATES] == expected
    for spec in CANDIDATES:
        assert spec.backend == spec.format.backend and spec.suffix == spec.format.suffixes[0]
        if spec.needs:
            source = candidate_named(spec.needs)
            assert source.format.name == spec.format.converts_from
            assert CANDIDATES.index(source) < CANDIDATES.index(spec)  # made before what converts it


@pytest.mark.parametrize("name, expected", [
    ("torch-fp32", "cp g.pt torch-fp32.pt"),
    ("onnx-fp32", "cg-export onnx g.pt --no-verify -o onnx-fp32.onnx"),
    ("onnx-int8", "cg-export onnx g.pt --int8 --calib calib/ --no-verify -o onnx-int8.onnx"),
    ("openvino-int8", "cg-export openvino g.pt --no-verify -o openvino-int8.xml"),
    ("trt-fp16", "cg-export trt g.pt --fp16 --size 64x96 --size-range 64x64:128x128 --no-verify -o trt-fp16.engine"),
])
def test_candidate_commands_spell_the_options_deploy_ran(name, expected, tmp_path):
    spec = candidate_named(name)
    job = ExportJob(None, Path("x"), None, tmp_path, (64, 96), ((64, 64), (128, 128)))  # type: ignore[arg-type]
    assert candidate_command(spec, job, source="g.pt", output=f"{name}{spec.suffix}", calibration="calib/",
                             verify=False) == expected


@pytest.mark.parametrize("spec", [s for s in CANDIDATES if s.format.exporter], ids=lambda s: s.name)
def test_every_candidate_command_parses_to_the_options_deploy_ran(spec, tmp_path):
    """The real cg-export app reads each command back: same verb, same flags, same values (no second spelling)."""
    import shlex

    import typer

    from cg_export.cli.export import app

    job = ExportJob(None, Path("x"), None, tmp_path, (64, 96), ((64, 64), (128, 128)))  # type: ignore[arg-type]
    command = candidate_command(spec, job, source="g.pt", output="out", calibration=str(tmp_path), verify=False)
    words = shlex.split(command)
    assert words[:2] == ["cg-export", spec.format.name]
    click_command = typer.main.get_command(app).commands[spec.format.name]  # type: ignore[attr-defined]
    parsed = click_command.make_context(spec.format.name, words[2:]).params
    ran = make_options(spec.format, spec.request(job))
    for field in ("fp16", "int8", "calib", "verify", "size", "size_range"):
        if field in parsed and hasattr(ran, field):
            value = parsed[field]
            if field == "calib" and value is not None:
                value = Path(value)
            if field in ("size", "size_range") and isinstance(value, str):
                from cg_export.cli.common import parse_size, parse_size_range

                value = parse_size(value, field) if field == "size" else parse_size_range(value, field)
            assert value == getattr(ran, field), field


def test_a_device_command_verifies_at_the_runs_floor():
    spec = candidate_named("trt-int8")
    job = ExportJob(None, Path("x"), None, Path("calib"), (64, 64))  # type: ignore[arg-type]
    command = candidate_command(spec, job, source="onnx-int8.onnx", output="trt-int8.engine", calibration="calib/",
                                verify=True, min_psnr_db=27.5)
    assert "--no-verify" not in command and "--min-psnr 27.5" in command and " --int8 " in command
    assert "--size 64x64" in command


def test_unknown_paths_say_what_is_wrong(tmp_path):
    with pytest.raises(BackendError, match="no such file or folder"):
        backend_for(tmp_path / "mistyped-folder")
    with pytest.raises(BackendError, match=r"unknown model type '\.txt'"):
        backend_for(tmp_path / "notes.txt")
    with pytest.raises(BackendError, match="unknown format 'tflite'"):
        format_named("tflite")


@pytest.mark.parametrize("verb, suffix, title", [("onnx", ".onnx", "ONNX fp32"), ("openvino", ".xml", "OpenVINO IR fp32")])
def test_every_export_command_ends_with_the_same_written_line(checkpoints, tmp_path, verb, suffix, title):
    """One wrapper for every exporter: the same last line, with the size of the model and its companions."""
    from typer.testing import CliRunner

    from cg_export.cli.export import app

    if format_named(verb).missing():
        pytest.skip(format_named(verb).missing())
    output = tmp_path / f"g{suffix}"
    result = CliRunner().invoke(app, [verb, str(checkpoints["ours.pt"]), "-o", str(output), "--no-verify"])
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    size = sum(path.stat().st_size for path in format_named(verb).files(output)) / 1e6
    beside = " with g.bin" if verb == "openvino" else ""
    assert last.startswith(f"wrote     {title}: {output}{beside} ({size:.1f} MB) in ") and last.endswith(" s")


def test_the_readme_formats_table_is_the_tables():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Formats\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| `")]
    assert [cells[0].strip(" `") for cells in rows] == [row.name for row in FORMATS]
    for cells, row in zip(rows, FORMATS):
        assert cells[1].strip() == ", ".join(f"`{s}`" for s in row.suffixes)
        assert (cells[2].strip(), cells[3].strip(), cells[4].strip()) == (row.runtime, ", ".join(row.precisions),
                                                                          row.runs_on)
