"""One vocabulary: every console script's options, read from their typer/click declarations, use the same flag for
the same idea; old spellings still work and say once that they are old; cg-compress has --threads and --version."""

from __future__ import annotations

import importlib
import sys

import pytest
import typer.main
from typer.testing import CliRunner

from cg_export.cli.aliases import Alias, rewrite

#: Every console script: its name, the module whose ``app`` and ``main`` it runs.
SCRIPTS = {
    "cg-export": "cg_export.cli.export",
    "cg-bench": "cg_export.cli.bench",
    "cg-stylize": "cg_export.cli.stylize",
    "cg-train": "training.cli",
    "cg-compress": "training.compress_cli",
    "cg-demo": "cg_demo.cli",
}

#: Each shared idea: the library fields (command parameters) that carry it, and the one flag spelling it has.
IDEAS = {
    "output": ({"output", "out"}, ["-o", "--output"]),
    "fp16": ({"fp16", "half"}, ["--fp16"]),
    "int8": ({"int8"}, ["--int8"]),
    "size": ({"size", "static_size", "image_size"}, ["--size"]),
    "size range": ({"engine_sizes", "size_range"}, ["--size-range"]),
    "batch": ({"batch", "batch_size"}, ["--batch"]),
    "photos": ({"photos"}, ["--photos"]),
    "threads": ({"threads"}, ["--threads"]),
    "device": ({"device"}, ["--device"]),
    "progress": ({"progress"}, ["--progress", "--no-progress"]),
    "json": ({"json_path"}, ["--json"]),
    "min psnr": ({"min_psnr_db"}, ["--min-psnr"]),
    "target": ({"target"}, ["--target"]),
    "trt version": ({"trt_version"}, ["--trt-version"]),
}
#: Ideas whose help (meaning and default) is word for word the same wherever they appear.
SAME_HELP = ("threads", "device", "progress", "min psnr")
#: Spellings that only live on as hidden aliases.
RETIRED = {"--out", "--half", "--static", "--image-size", "--batch-size", "--engine-min-size", "--engine-max-size",
           "--min-shape", "--opt-shape", "--max-shape"}
#: Commands that run a model or train one, and so take --threads and --device or --threads alone.
RUNS_MODELS = {"cg-export onnx", "cg-export trt", "cg-export openvino", "cg-export deploy", "cg-bench", "cg-stylize",
               "cg-train", "cg-compress", "cg-demo"}


def idea_of(name: str) -> str:
    return next((idea for idea, (names, _) in IDEAS.items() if name in names), name)


def commands() -> dict[str, object]:
    """``"cg-export onnx"`` / ``"cg-bench"`` -> its click command, for every console script."""
    found = {}
    for script, module in SCRIPTS.items():
        command = typer.main.get_command(importlib.import_module(module).app)
        subcommands = getattr(command, "commands", None)
        if subcommands:
            found.update({f"{script} {name}": sub for name, sub in subcommands.items()})
        else:
            found[script] = command
    return found


def options() -> list[tuple[str, object]]:
    """``(command, click option)`` for every visible option of every command (not --help)."""
    return [(name, param) for name, command in commands().items() for param in command.params
            if param.param_type_name == "option" and not param.hidden and param.name != "help"]


def test_every_console_script_is_read():
    assert {"cg-export onnx", "cg-export deploy", "cg-export check", "cg-bench", "cg-train", "cg-compress",
            "cg-demo"} <= set(commands())


def test_each_idea_has_one_flag_everywhere():
    for command, param in options():
        idea = idea_of(param.name)
        if idea in IDEAS:
            flags = [*param.opts, *param.secondary_opts]
            assert sorted(flags) == sorted(IDEAS[idea][1]), f"{command}: {param.name} is {flags}"


def test_each_flag_has_one_idea():
    ideas: dict[str, set[str]] = {}
    for _, param in options():
        for flag in [*param.opts, *param.secondary_opts]:
            ideas.setdefault(flag, set()).add(idea_of(param.name))
    assert {flag: found for flag, found in ideas.items() if len(found) > 1} == {}


def test_shared_ideas_have_one_meaning_and_default():
    for idea in SAME_HELP:
        found = {(param.help, param.default) for _, param in options() if idea_of(param.name) == idea}
        assert len(found) == 1, f"{idea}: {found}"


def test_old_spellings_are_hidden():
    shown = {flag for _, param in options() for flag in [*param.opts, *param.secondary_opts]}
    assert shown & RETIRED == set()


def test_every_command_that_runs_a_model_takes_threads():
    taking = {command for command, param in options() if param.name == "threads"}
    assert RUNS_MODELS <= taking


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_console_script_answers_version(script, monkeypatch, capsys):
    from cg_export import __version__

    monkeypatch.setattr(sys, "argv", [script, "--version"])
    importlib.import_module(SCRIPTS[script]).main()
    assert capsys.readouterr().out == f"{script} {__version__}\n"


def test_help_quotes_the_library_defaults_not_typed_ones():
    from cg_export.devices import DEFAULT_DEVICE
    from training.compress import CompressOptions

    helps = {param.name: param.help for param in commands()["cg-compress"].params}
    defaults = CompressOptions()
    assert f"default: {defaults.epochs})" in helps["epochs"] and f"default: {defaults.lr:g})" in helps["lr"]
    assert f"default: {defaults.lambda_distill:g})" in helps["lambda_distill"]
    assert f"default: {DEFAULT_DEVICE} " in helps["device"]


# Old spellings: each still reaches the option its new spelling does, and says so on one line of stderr.

OLD_AND_NEW = [
    ("cg-bench", ["m.onnx", "--half"], ["m.onnx", "--fp16"]),
    ("cg-export onnx", ["g.pt", "--static", "64x96"], ["g.pt", "--size", "64x96"]),
    ("cg-export onnx", ["g.pt", "--static=64x96"], ["g.pt", "--size=64x96"]),
    ("cg-export check", ["m.onnx", "--target", "trt=8.6"], ["m.onnx", "--trt-version", "trt=8.6"]),
    ("cg-export deploy", ["g.pt", "--photos", "p", "--json"], ["g.pt", "--photos", "p", "--json", "-"]),
    ("cg-export deploy", ["g.pt", "--json", "--photos", "p"], ["g.pt", "--json", "-", "--photos", "p"]),
    ("cg-train", ["data", "--name", "n", "--out", "runs"], ["data", "--name", "n", "-o", "runs"]),
    ("cg-train", ["data", "--name", "n", "--image-size", "32"], ["data", "--name", "n", "--size", "32"]),
    ("cg-train", ["data", "--name", "n", "--batch-size", "2"], ["data", "--name", "n", "--batch", "2"]),
    ("cg-compress", ["t.pt", "--photos", "p", "--image-size", "32"], ["t.pt", "--photos", "p", "--size", "32"]),
    ("cg-compress", ["t.pt", "--photos", "p", "--batch-size", "4"], ["t.pt", "--photos", "p", "--batch", "4"]),
    ("cg-demo", ["--out", "x"], ["-o", "x"]),
]


@pytest.mark.parametrize("command, old, new", OLD_AND_NEW, ids=[" ".join(o) for _, o, _ in OLD_AND_NEW])
def test_an_old_spelling_parses_like_the_new_one_with_one_deprecation_line(command, old, new, capsys):
    click_command = commands()[command]
    with click_command.make_context(command, list(new)) as context:
        expected = dict(context.params)
    assert capsys.readouterr().err == ""  # the new spelling says nothing
    with click_command.make_context(command, list(old)) as context:
        assert context.params == expected
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("deprecated: "), err


def test_rewrite_leaves_values_and_everything_after_a_double_dash_alone(capsys):
    aliases = (Alias("--out", "--output"), Alias("--half", "--fp16", takes_value=False))
    assert rewrite(["--name", "--outline", "--half", "--", "--out", "x"], aliases) == [
        "--name", "--outline", "--fp16", "--", "--out", "x"]
    assert rewrite(["--out"], aliases) == ["--output"]  # no value: the parser says --output needs one
    assert capsys.readouterr().err.count("deprecated: ") == 2


def test_old_check_target_still_checks(tmp_path):
    from cg_export.tensorrt.check import parse_target

    assert parse_target("trt=8.6") == parse_target("8.6") == (8, 6) and parse_target("trt") is None


def test_old_onnx_static_still_exports(checkpoints, tmp_path):
    from cg_export.cli.export import app

    result = CliRunner().invoke(app, ["onnx", str(checkpoints["ours.pt"]), "--no-verify", "--static", "64x96",
                                      "-o", str(tmp_path / "g.onnx")])
    assert result.exit_code == 0, result.output
    assert "static 64x96 size" in result.stdout and (tmp_path / "g.onnx").is_file()
    assert result.stderr == "deprecated: --static is now --size; the old spelling will be removed in a future release\n"


def test_old_compress_photos_argument_still_reaches_the_library(tmp_path):
    from training.compress_cli import app

    result = CliRunner().invoke(app, [str(tmp_path / "missing.pt"), str(tmp_path), "--batch-size", "0"])
    lines = result.stderr.splitlines()
    assert result.exit_code == 1 and len(lines) == 3, result.stderr
    assert lines[0].startswith("deprecated: --batch-size is now --batch")
    assert lines[1].startswith("deprecated: the PHOTOS argument is now --photos PHOTOS")
    assert lines[2].startswith("error: ")


def test_compress_needs_its_photographs(tmp_path):
    from training.compress_cli import app

    result = CliRunner().invoke(app, [str(tmp_path / "missing.pt")])
    assert result.exit_code == 1 and result.stderr.startswith("error: --photos DIR is required")


# Library errors name fields; the command line names its own flags.


def test_a_library_error_names_the_field_and_the_command_its_flag(checkpoints, tmp_path):
    from cg_export.errors import OptionError
    from cg_export.export.onnx import OnnxExportOptions

    with pytest.raises(OptionError) as raised:
        OnnxExportOptions(static_size=(0, 64))
    assert (raised.value.field, raised.value.value) == ("static_size", (0, 64))
    assert str(raised.value).startswith("static_size 0x64: expected a positive HEIGHTxWIDTH")

    from cg_export.cli.export import app

    result = CliRunner().invoke(app, ["onnx", str(checkpoints["ours.pt"]), "--size", "66x66", "-o",
                                      str(tmp_path / "g.onnx")])
    assert result.exit_code == 1 and result.stderr.startswith("error: --size 66x66: sizes must be multiples of")


def test_training_errors_name_the_training_flags(tmp_path):
    from training.cli import app
    from training.errors import TrainingError, TrainingOptionError
    from training.options import TrainOptions

    with pytest.raises(TrainingOptionError) as raised:
        TrainOptions.from_overrides(batch_size=0)
    assert isinstance(raised.value, TrainingError) and raised.value.field == "batch_size"
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(app, [str(tmp_path / "data"), "--name", "r", "-o", str(tmp_path / "runs"),
                                      "--batch", "0"])
    assert result.exit_code == 1 and result.stderr == "error: --batch 0: must be a positive whole number\n"
    result = CliRunner().invoke(app, [str(tmp_path / "data"), "--name", "r", "--size", "32x64"])
    assert result.exit_code == 1 and result.stderr.startswith("error: --size 32x64: training crops are square")


def test_compress_threads_are_checked_and_given_back(tmp_path):
    import torch

    from training.compress_cli import app

    before = torch.get_num_threads()
    result = CliRunner().invoke(app, [str(tmp_path / "missing.pt"), "--photos", str(tmp_path), "--threads", "0"])
    assert result.exit_code == 1 and result.stderr == "error: --threads 0: must be 1 or more\n"
    result = CliRunner().invoke(app, [str(tmp_path / "missing.pt"), "--photos", str(tmp_path), "--threads", "1"])
    assert result.exit_code == 1 and "missing.pt" in result.stderr  # ran, with the threads asked for, and failed
    assert torch.get_num_threads() == before


# cg-export trt: sizes written like everywhere else (--size, --size-range, --batch) become the NCHW profile.


def test_trt_sizes_become_the_profile():
    from cg_export.errors import OptionError
    from cg_export.export.trt import EngineOptions, resolve_profile

    dims = (None, 3, None, None)
    static, fields = EngineOptions(size=(64, 96)).profile_shapes(dims)
    assert static == ((1, 3, 64, 96),) * 3 and fields == ("size",) * 3
    ranged, fields = EngineOptions(size_range=((32, 32), (128, 256)), batch=2).profile_shapes(dims)
    assert ranged == ((2, 3, 32, 32), None, (2, 3, 128, 256)) and fields == ("size_range", "size", "size_range")
    profile = resolve_profile(*ranged, graph_dims=dims, size_multiple=4, fields=fields, batch=2)
    assert profile.describe() == "2x3x32x32 / 2x3x128x256 / 2x3x128x256"
    assert resolve_profile(None, None, None, graph_dims=dims, size_multiple=4, batch=4).min == (4, 3, 128, 128)
    with pytest.raises(OptionError) as raised:
        resolve_profile(*EngineOptions(size=(30, 30)).profile_shapes(dims)[0], graph_dims=dims, size_multiple=4,
                        fields=("size",) * 3)
    assert raised.value.field == "size" and "multiples of 4" in str(raised.value)
    with pytest.raises(OptionError, match="not both"):
        EngineOptions(size=(64, 64), min_shape=(1, 3, 64, 64))
    with pytest.raises(OptionError, match="fixes the batch to 1"):
        EngineOptions(batch=2).profile_shapes((1, 3, None, None))


def test_trt_old_shape_flags_still_parse_with_one_deprecation_line():
    from cg_export.cli.export import app

    result = CliRunner().invoke(app, ["trt", "missing.onnx", "--opt-shape", "1x3x64x64"])
    lines = result.stderr.splitlines()
    assert result.exit_code == 1 and len(lines) == 2, result.stderr
    assert lines[0].startswith("deprecated: --min-shape/--opt-shape/--max-shape NxCxHxW is now --size HxW")
    assert lines[1].startswith("error: ")


def test_commands_written_for_a_report_use_the_commands_own_flags():
    from cg_export.cli.export import app as cg_export
    from cg_export.cli.spelling import flags_for
    from training.cli import app as cg_train

    assert flags_for(cg_train, {"image_size": 64, "batch_size": 2, "lr": 2e-4, "amp": True, "seed": None}) == [
        "--size", "64", "--batch", "2", "--lr", "0.0002", "--amp"]
    assert flags_for(cg_export, {"size": (32, 48), "engine_sizes": "32x32:64x64"}, command="deploy") == [
        "--size", "32x48", "--size-range", "32x32:64x64"]
    with pytest.raises(KeyError):
        flags_for(cg_train, {"no_such_field": 1})
