"""cg-demo: the whole pipeline on the embedded data, its report, and how it treats the output folder."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cg_demo import report as demo_report
from cg_demo.plan import FULL_PLAN, QUICK_PLAN, DemoPlan
from cg_demo.pretrained import file_sha256
from cg_demo.results import (
    DEMO_FORMAT,
    PRETRAINED_LABEL,
    REFERENCE_LABEL,
    STUDENT_LABEL,
    TRAINED_HERE_LABEL,
    SampleOutcome,
)
from cg_demo.runner import MARKER, measure_learned_mapping, prepare_output, run_demo
from cg_export.errors import CgExportError
from tests.conftest import REPO
from tests.fake_tensorrt import FakeCudart, FakeTensorRT, simulate_gpu

CG_DEMO = [sys.executable, "-c", "from cg_demo.cli import main; main()"]

# The smallest plan that still runs every stage: seconds of training, one small benchmark size.
TINY_PLAN = DemoPlan(data_size=48, train_per_domain=4, image_size=32, epochs=1, arch="resnet", ngf=4, n_blocks=1,
                     ndf=8, lr=2e-4, lambda_id=5.0, bench_sizes=((128, 128),), bench_seconds=0.05, sample_side=128,
                     student_ratio=1.1, student_epochs=1, student_batch=4)


def quiet(label: str, text: str) -> None:
    """A progress sink that keeps the test output short."""


def tiny_pretrained(folder: Path, seed: int = 3) -> tuple[Path, Path]:
    """A stand-in for the shipped pretrained generator (a tiny one, so the demo test stays fast) and its record."""
    import torch

    from cg_demo.pretrained import PretrainedRecord, file_sha256
    from cg_export.models import create_generator, save_generator
    from cg_export.models.init import init_weights

    torch.manual_seed(seed)
    checkpoint = save_generator(init_weights(create_generator("resnet", ngf=4, n_blocks=1)), folder / "tiny_G_AB.pt")
    record = PretrainedRecord(sha256=file_sha256(checkpoint), options={"epochs": 2}, data_command="python -c make",
                              train_command="cg-train data --name tiny --epochs 2", epochs=2, steps=8, seconds=90.0,
                              machine="test machine", software="Python 3", trained="2026-12-01")
    record_file = folder / "tiny_G_AB.json"
    record_file.write_text(json.dumps(record.to_json()))
    return checkpoint, record_file


@pytest.fixture(scope="module")
def demo_with_fake_tensorrt(tmp_path_factory):
    """One tiny demo run with a stand-in TensorRT 10.3 (real API names), so the engine stage runs too."""
    import cg_demo.pretrained

    trt, cuda = FakeTensorRT("10.3.0", "10.3.0"), FakeCudart()
    simulate_gpu(trt, cuda)
    checkpoint, record = tiny_pretrained(tmp_path_factory.mktemp("pretrained"))
    shipped = cg_demo.pretrained.pretrained_generator
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "tensorrt", trt)
        patch.setitem(sys.modules, "cuda.bindings.runtime", cuda)
        patch.setattr(cg_demo.pretrained, "pretrained_generator", lambda: shipped(checkpoint, record))
        out = tmp_path_factory.mktemp("demo") / "out"
        result = run_demo(out, plan=TINY_PLAN, device="cpu", progress=False, say=quiet)
    return out, result


@pytest.mark.timeout(300)
def test_demo_runs_every_stage_and_writes_the_report(demo_with_fake_tensorrt):
    out, result = demo_with_fake_tensorrt
    report = json.loads((out / "report.json").read_text())
    assert report["format"] == DEMO_FORMAT
    assert [s["name"] for s in report["stages"]] == ["data", "train", "choose", "student", "export", "bench",
                                                    "stylize", "report"]
    assert report["training"]["steps"] == 4 and Path(report["training"]["generator"]).is_file()

    made = {(e["backend"], e["precision"]): e for e in report["exports"]}
    # The export stage is one cg-export deploy call: every candidate of its table is a row, made or with its reason.
    assert set(made) >= {("ONNX Runtime", "fp32"), ("ONNX Runtime", "fp16"), ("ONNX Runtime", "int8"),
                         ("TensorRT", "fp16"), ("TensorRT", "int8")}
    assert all(backend in ("ONNX Runtime", "TensorRT", "OpenVINO") for backend, _ in made)
    for export in made.values():
        # Every file was verified against PyTorch, or the reason it is missing is recorded.
        assert (export["path"] and Path(export["path"]).is_file() and export["psnr_db"] is not None) or export["error"]
    assert made[("ONNX Runtime", "fp32")]["psnr_db"] > 50 and made[("ONNX Runtime", "fp16")]["psnr_db"] > 40
    assert made[("TensorRT", "fp16")]["path"].endswith(".engine")
    # The engines take every size the later stages run (the samples are not square), tuned at the deploy size.
    engine_command = made[("TensorRT", "fp16")]["command"]
    assert "--size 128x128 --size-range " in engine_command
    assert ":128x128 " not in engine_command
    assert all(export["command"].startswith("cg-export ") for export in made.values() if export["path"])
    # Deploy chose one of the verified artifacts and said why; its folder is one cg-stylize and cg-bench take.
    chosen = report["deployment"]
    # PyTorch itself is a candidate too (the checkpoint, not an export): on a busy CPU it can be the fastest.
    assert chosen["artifact"] in {export["path"] for export in made.values()} or chosen["candidate"] == "torch-fp32"
    assert Path(chosen["artifact"]).is_file() and chosen["why"].startswith(f"chose {chosen['candidate']} ")
    assert (Path(chosen["folder"]) / "deploy.json").is_file()
    assert any(command.startswith("cg-export deploy") and "--keep-all" in command for command in report["commands"])
    assert any(command.startswith(f"cg-stylize {chosen['folder']} ") for command in report["commands"])

    student = report["student"]
    assert Path(student["path"]).is_file() and student["error"] is None and student["steps"] == 1
    assert student["macs"] * 1.1 <= student["teacher_macs"] and student["ratio"] >= 1.1
    assert any(command.startswith("cg-compress") for command in report["commands"])

    rows = report["bench"]["results"]
    # Every backend whose artifact deploy kept is timed: OpenVINO's too where it is installed (the [test] extra has it).
    kept = {"torch", "onnxruntime", "tensorrt"} | ({"openvino"} if made.get(("OpenVINO", "fp32"), {}).get("path") else set())
    assert {r["backend"].split(":")[0] for r in rows} == kept
    # The student is timed with the teacher as the reference: its MACs and PSNR against the teacher are in its row.
    deployed = report["generators"]["deployed"]
    teacher_rows = {(r["height"], r["width"]): r for r in rows if r["model"] == deployed}
    student_rows = [r for r in rows if r["model"] == student["path"]]
    assert student_rows and all(r["psnr_db"] is not None for r in student_rows)
    assert all(r["macs"] * 1.1 <= teacher_rows[r["height"], r["width"]]["macs"] for r in student_rows)
    assert report["bench"]["reference"].startswith(deployed)
    assert all(r["latency_ms"] and r["latency_ms"]["p50"] > 0 for r in rows)
    assert all(r["psnr_db"] is not None for r in rows)

    for name in ("report.md", "report.html", "bench.json", "bench.md", "samples.png"):
        assert (out / name).is_file(), name
    markdown = (out / "report.md").read_text()
    assert "![photographs" in markdown
    for export in made.values():
        if export["path"]:
            assert f"| `{Path(export['path']).relative_to(out).as_posix()}` |" in markdown
    assert "cg-export deploy" in markdown and "cg-bench" in markdown and "cg-stylize" in markdown
    assert f"**Deploy chose `{Path(chosen['artifact']).relative_to(out).as_posix()}`**" in markdown
    assert chosen["why"] in markdown
    int8 = ", fp16 and int8" if made[("ONNX Runtime", "int8")]["path"] else " and fp16"
    exported = markdown.split("exported it to ", 1)[1].split(", each verified", 1)[0]
    assert exported.startswith(f"ONNX fp32{int8}") and exported.endswith("TensorRT fp16")
    student_section = markdown.split("## Student")[1].split("\n## ")[0]
    assert "| student (PyTorch fp32) |" in student_section and "| teacher (PyTorch fp32) |" in student_section
    assert f"| {student_rows[0]['macs'] / 1e9:.3f} |" in student_section


def test_samples_run_on_every_backend_with_parity_against_pytorch(demo_with_fake_tensorrt):
    out, result = demo_with_fake_tensorrt
    names = {"ONNX Runtime": "ONNX"}
    labels = {REFERENCE_LABEL, STUDENT_LABEL, result.generators.other[0]} | {
        f"{names.get(e.backend, e.backend)} {e.precision}" for e in result.exports if e.path}
    assert {"ONNX fp32", "ONNX fp16", "TensorRT fp16"} <= labels
    assert len(result.samples) == 3
    for sample in result.samples:
        assert set(sample.outputs) == labels
        photo = Image.open(sample.input_path)
        assert min(photo.size) == TINY_PLAN.sample_side
        for label, path in sample.outputs.items():
            assert Image.open(path).size == photo.size, label
        assert sample.psnr_db[REFERENCE_LABEL] == float("inf")
        assert sample.psnr_db["ONNX fp32"] > 50 and sample.psnr_db["ONNX fp16"] > 35
    # The grid holds one row per photograph and one column per version (photograph, poster print, backends).
    grid = Image.open(out / "samples.png")
    side = TINY_PLAN.sample_side
    widths = [Image.open(s.input_path).size[0] for s in result.samples]
    assert grid.size[0] >= (2 + len(labels)) * max(widths) and grid.size[1] >= 3 * side


def test_both_generators_are_shown_and_the_closer_one_is_deployed(demo_with_fake_tensorrt):
    out, result = demo_with_fake_tensorrt
    choice = result.generators
    copy = out / "pretrained" / "G_AB.pt"
    assert choice.pretrained == str(copy) and copy.is_file()
    assert file_sha256(copy) == choice.pretrained_record["sha256"]
    distances = choice.distances
    assert set(distances) == {TRAINED_HERE_LABEL, PRETRAINED_LABEL}
    closer = min(distances, key=distances.get)
    assert choice.deployed_label == closer
    assert choice.deployed == (str(copy) if closer == PRETRAINED_LABEL else result.training.generator)
    other_label, other_path = choice.other
    assert other_label != closer and Path(other_path).is_file()
    for sample in result.samples:
        # The other generator is a different model: shown, measured against the poster prints, but no parity.
        assert other_label in sample.outputs and other_label not in sample.psnr_db
    measured = {version.label: version.mae for version in result.learned.versions}
    assert measured[REFERENCE_LABEL] == pytest.approx(distances[closer], abs=0.01)
    assert measured[other_label] == pytest.approx(distances[other_label], abs=0.01)
    markdown = (out / "report.md").read_text()
    assert "### Which generator" in markdown and choice.why in markdown
    assert choice.pretrained_record["train_command"] in markdown
    assert "### How close to the true poster prints" in markdown and "| the photograph itself |" in markdown
    assert json.loads((out / "report.json").read_text())["learned"]["versions"][0]["label"] == "photograph"


def test_a_pretrained_generator_that_does_not_match_its_record_is_refused(tmp_path):
    from cg_demo.pretrained import pretrained_generator

    checkpoint, record = tiny_pretrained(tmp_path)
    assert pretrained_generator(checkpoint, record)[0] == checkpoint
    checkpoint.write_bytes(checkpoint.read_bytes()[:-10])
    with pytest.raises(CgExportError, match="SHA-256 .* is not the recorded"):
        pretrained_generator(checkpoint, record)
    with pytest.raises(CgExportError, match="record is missing"):
        pretrained_generator(checkpoint, tmp_path / "none.json")
    record.write_text("{not json")
    with pytest.raises(CgExportError, match="cannot read"):
        pretrained_generator(checkpoint, record)


def test_the_shipped_pretrained_generator_is_the_full_plans_recipe():
    """The package's pretrained generator loads, matches its record, and was trained like the full demo (longer)."""
    from cg_demo.plan import dataset_options, training_options
    from cg_demo.pretrained import pretrained_generator
    from cg_export.models import create_generator, load_generator

    checkpoint, record = pretrained_generator()
    assert checkpoint.stat().st_size <= 2_000_000
    assert record.options == {**training_options(FULL_PLAN, seed=0, device="cpu"), "epochs": record.epochs}
    assert record.data_options == dataset_options(FULL_PLAN, seed=0)
    assert record.epochs > FULL_PLAN.epochs and record.steps == record.epochs * FULL_PLAN.train_per_domain
    planned = create_generator(FULL_PLAN.arch, ngf=FULL_PLAN.ngf, n_blocks=FULL_PLAN.n_blocks)
    assert load_generator(checkpoint).model.config == planned.config
    # The record's distance is true: measured again here, on the same photographs, the same way as the report.
    from cg_demo.runner import measure_generator

    learned = measure_generator(checkpoint, FULL_PLAN.sample_side)
    assert learned.output_mae == pytest.approx(record.distance["mae"], abs=0.05)
    assert learned.photograph_mae == pytest.approx(record.distance["photograph_mae"], abs=0.05)
    assert learned.output_mae < learned.photograph_mae - 10


def test_html_report_is_well_formed_and_links_files_that_exist(demo_with_fake_tensorrt):
    out, _ = demo_with_fake_tensorrt

    class Links(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.sources = [], []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.sources.append(dict(attrs)["src"])
            elif tag not in ("meta",):
                self.stack.append(tag)
            if tag == "a":
                self.sources.append(dict(attrs)["href"])

        def handle_endtag(self, tag):
            assert self.stack.pop() == tag

    parser = Links()
    parser.feed((out / "report.html").read_text())
    assert parser.stack == []
    assert "samples.png" in parser.sources
    assert all((out / source).is_file() for source in parser.sources)


def test_learned_mapping_is_measured_against_the_known_answer():
    photo = np.full((8, 8, 3), 100, np.uint8)
    target = np.full((8, 8, 3), 160, np.uint8)

    def sample(output: np.ndarray | None) -> SampleOutcome:
        images = {} if output is None else {REFERENCE_LABEL: output}
        return SampleOutcome("x", "x.png", "x-poster.png", photo=photo, target=target, images=images)

    unchanged = measure_learned_mapping([sample(photo)])
    assert (unchanged.photograph_mae, unchanged.output_mae) == (60.0, 60.0)
    assert measure_learned_mapping([sample(target - 10)]).output_mae == 10.0
    assert measure_learned_mapping([sample(None)]).output_mae is None
    assert measure_learned_mapping([sample(None)]).to_json()["photograph_mae"] is None


def test_learned_mapping_reports_ssim_and_every_backend_against_the_bar():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    target = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    close = np.clip(target.astype(int) + 12, 0, 255).astype(np.uint8)
    sample = SampleOutcome("x", "x.png", "x-poster.png", photo=photo, target=target,
                           images={REFERENCE_LABEL: target.copy(), "ONNX int8": close})
    learned = measure_learned_mapping([sample])
    by_label = {version.label: version for version in learned.versions}
    assert list(by_label) == ["photograph", REFERENCE_LABEL, "ONNX int8"]
    assert (by_label[REFERENCE_LABEL].mae, by_label[REFERENCE_LABEL].ssim) == (0.0, 1.0)
    assert by_label["photograph"].ssim < 0.1 < by_label["ONNX int8"].ssim < 1.0
    assert 0 < by_label["ONNX int8"].mae <= 12
    assert learned.meets_limit and learned.to_json()["meets_limit"] is True
    far = SampleOutcome("x", "x.png", "x-poster.png", photo=photo, target=target, images={REFERENCE_LABEL: photo})
    assert not measure_learned_mapping([far]).meets_limit


def test_markdown_and_html_say_the_same_thing():
    table = demo_report.markdown_table([["a", "b|c"], ["`x`", "<y>"]])
    assert table.splitlines()[0] == "| a | b\\|c |"
    markdown = "\n\n".join(["# T <1>", "run `cg-demo` & see", table, "```bash\ncg-demo --quick\n```"])
    page = demo_report.to_html(markdown)
    assert "<h1>T &lt;1&gt;</h1>" in page and "run <code>cg-demo</code> &amp; see" in page
    assert "<th>b|c</th>" in page and "<td><code>x</code></td>\n<td>&lt;y&gt;</td>" in page
    assert "cg-demo --quick" in page and "<y>" not in page


def test_an_earlier_demo_is_replaced_but_nothing_else_is_touched(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / MARKER).write_text("")
    (out / "report.md").write_text("old report")
    (out / "models").mkdir()
    (out / "models" / "G_AB.onnx").write_text("old model")
    (out / "my_notes.txt").write_text("mine")
    said = []
    prepare_output(out, lambda label, text: said.append(label))
    assert said == ["replacing"]
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "my_notes.txt"]


def test_a_folder_the_demo_did_not_write_is_refused(tmp_path):
    (tmp_path / "photo.jpg").write_text("precious")
    with pytest.raises(CgExportError, match="did not write"):
        prepare_output(tmp_path, quiet)
    assert (tmp_path / "photo.jpg").read_text() == "precious"
    with pytest.raises(CgExportError, match="is a file"):
        prepare_output(tmp_path / "photo.jpg", quiet)


def test_cli_refuses_a_foreign_folder_in_one_line(tmp_path):
    (tmp_path / "photo.jpg").write_text("precious")
    done = subprocess.run([*CG_DEMO, "-o", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: --output") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert (tmp_path / "photo.jpg").read_text() == "precious"


def test_cli_help_names_the_options():
    done = subprocess.run([*CG_DEMO, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for option in ("--output", "--quick", "--device", "--seed", "--threads"):
        assert option in done.stdout


def test_quick_plan_is_smaller_than_the_full_one():
    assert QUICK_PLAN.epochs * QUICK_PLAN.train_per_domain < FULL_PLAN.epochs * FULL_PLAN.train_per_domain
    assert len(QUICK_PLAN.bench_sizes) <= len(FULL_PLAN.bench_sizes)


def test_training_and_the_report_do_not_import_upwards():
    """``training/`` imports nothing of the demo, and the report reads the results without importing the runner."""
    import ast

    def imported(path: Path) -> set[str]:
        tree = ast.parse(path.read_text())
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        return names | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}

    root = REPO
    for module in sorted((root / "training").glob("*.py")):
        assert not {name for name in imported(module) if name.split(".")[0] == "cg_demo"}, module.name
    assert "cg_demo.runner" not in imported(root / "cg_demo" / "report.py")
    assert not {"cg_demo.runner", "cg_demo.report"} & imported(root / "cg_demo" / "results.py")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quickstart_demo_from_the_command_line(tmp_path):
    """The README's first command, as a user runs it (``--quick`` to keep the suite short)."""
    out = tmp_path / "cg-demo"
    done = subprocess.run([*CG_DEMO, "--quick", "--no-progress", "--device", "cpu", "-o", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"report: {out / 'report.html'} and {out / 'report.md'}" in done.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["quick"] is True and report["plan"]["epochs"] == QUICK_PLAN.epochs
    verified = [e for e in report["exports"] if e["path"]]
    assert {e["precision"] for e in verified} >= {"fp32", "fp16"}
    assert all(Path(e["path"]).is_file() for e in verified)
    assert (out / "samples.png").is_file() and (out / "bench.png").is_file() and (out / "training.png").is_file()
    assert Path(report["deployment"]["artifact"]).is_file()
    if importlib.util.find_spec("tensorrt") is None:
        # Said, not faked: no engine, and the reason in the exports table.
        trt = [e for e in report["exports"] if e["backend"] == "TensorRT"]
        assert trt and all(e["path"] is None and "TensorRT not installed" in e["error"] for e in trt)
        assert "| not available here (TensorRT not installed) |" in (out / "report.md").read_text()


def test_without_a_usable_pretrained_generator_the_one_trained_here_is_used(tmp_path, monkeypatch):
    import cg_demo.pretrained
    from cg_demo.results import DemoResult, TrainingRecord
    from cg_demo.runner import _choose_generator

    def demo_result(offer: bool) -> DemoResult:
        result = DemoResult(tmp_path, TINY_PLAN, False, "cpu", 0, offer_pretrained=offer)
        result.training = TrainingRecord(generator="run/G_AB.pt", epochs=1, steps=4, seconds=2.0, steps_per_second=2.0,
                                         losses={}, options={}, samples_image=None)
        return result

    said: list[str] = []
    declined = demo_result(offer=False)
    _choose_generator(declined, lambda label, text: said.append(text), False)
    assert declined.generators.deployed == "run/G_AB.pt" and declined.generators.other is None
    assert "--no-pretrained" in said[-1]

    def damaged():
        raise CgExportError("poster_G_AB.pt: SHA-256 0123 is not the recorded 4567")

    monkeypatch.setattr(cg_demo.pretrained, "pretrained_generator", damaged)
    broken = demo_result(offer=True)
    _choose_generator(broken, lambda label, text: said.append(text), False)
    assert broken.generators.deployed == "run/G_AB.pt" and broken.generators.pretrained is None
    assert any("SHA-256" in note for note in broken.notes) and "cannot be used" in broken.generators.why
