"""Make the demo's pretrained generator: the full ``cg-demo`` recipe, trained for many more epochs.

    python benchmarks/pretrain_demo_generator.py --epochs 44 --threads 1           # train, then record
    python benchmarks/pretrain_demo_generator.py --from-run RUN_DIR                 # record a finished cg-train run

It writes the demo's dataset (the same call and seed as ``cg-demo``), runs ``cg-train`` on it with the options of
:data:`cg_demo.plan.FULL_PLAN` (only ``--epochs`` differs), measures the result against the true poster prints of
the held-out photographs, and writes ``cg_demo/pretrained/poster_G_AB.pt`` and its record ``poster_G_AB.json``
(commands, seed, epochs, steps, minutes, machine, SHA-256). ``--from-run`` records a run that was started with the
printed commands by hand (and refuses one whose options are not the plan's).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cg_demo.data import make_demo_dataset  # noqa: E402
from cg_demo.plan import FULL_PLAN, dataset_options, training_options  # noqa: E402
from cg_demo.pretrained import PRETRAINED_CHECKPOINT, PRETRAINED_RECORD, PretrainedRecord, file_sha256  # noqa: E402
from cg_demo.runner import measure_generator  # noqa: E402
from cg_export.bench import describe_environment  # noqa: E402
from cg_export.files import atomic_output  # noqa: E402

SEED = 0


def shown(path: Path) -> str:
    """A path as the recorded commands name it: relative to the current folder when it lies inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def data_command(folder: Path) -> str:
    arguments = ", ".join(f"{key}={value!r}" for key, value in dataset_options(FULL_PLAN, seed=SEED).items())
    return (f"python -c \"from cg_demo.data import make_demo_dataset; make_demo_dataset('{shown(folder)}', "
            f"{arguments})\"")


def check_data(data: Path) -> None:
    """Refuse a run whose training images are not the demo's dataset, byte for byte (it is made again to compare)."""
    with tempfile.TemporaryDirectory() as scratch:
        expected = make_demo_dataset(Path(scratch) / "data", **dataset_options(FULL_PLAN, seed=SEED))
        for domain in ("trainA", "trainB"):
            made = sorted(p.name for p in (expected / domain).iterdir())
            found = sorted(p.name for p in (data / domain).iterdir()) if (data / domain).is_dir() else []
            if made != found or not all(filecmp.cmp(expected / domain / name, data / domain / name, shallow=False)
                                        for name in made):
                raise SystemExit(f"{data / domain}: not the demo's dataset ({data_command(data)} makes it)")


def train_command(data: Path, run: Path, epochs: int, threads: int, log_every: int = 64) -> list[str]:
    options = {**training_options(FULL_PLAN, seed=SEED, device="cpu"), "epochs": epochs, "log_every": log_every}
    flags = [item for key, value in options.items() for item in (f"--{key.replace('_', '-')}", str(value))]
    return ["cg-train", shown(data), "--name", run.name, "--out", shown(run.parent), *flags, "--threads", str(threads),
            "--no-progress"]


def distance(checkpoint: Path) -> dict[str, float]:
    """Mean abs difference and SSIM of the generator's output to the held-out photographs' true poster prints."""
    learned = measure_generator(checkpoint, FULL_PLAN.sample_side)
    return {"mae": learned.output_mae, "ssim": learned.output_ssim, "photograph_mae": learned.photograph_mae,
            "photograph_ssim": learned.photograph_ssim}


def record(run: Path, data: Path, threads: int) -> PretrainedRecord:
    state = torch.load(run / "training_state.pt", map_location="cpu", weights_only=True)
    options = dict(state["options"])
    expected = {**training_options(FULL_PLAN, seed=SEED, device="cpu"), "epochs": options["epochs"]}
    differs = {k: (options.get(k), v) for k, v in expected.items() if k in options and options.get(k) != v
               and k not in ("log_every", "samples")}
    if differs:
        raise SystemExit(f"{run}: not trained with the full demo plan's options: {differs}")
    if not state.get("finished"):
        raise SystemExit(f"{run}: the run has not finished (epoch {state['epoch']} of {options['epochs']})")
    check_data(data)
    checkpoint = run / "G_AB.pt"
    environment = describe_environment(threads)
    versions = ", ".join(f"{k} {v}" for k, v in environment["versions"].items() if k in ("torch", "cg-export"))
    made = PretrainedRecord(
        sha256=file_sha256(checkpoint),
        options=expected,
        data_options=dataset_options(FULL_PLAN, seed=SEED),
        data_command=data_command(data),
        train_command=shlex.join(train_command(data, run, options["epochs"], threads, options["log_every"])),
        epochs=int(state["epoch"]),
        steps=int(state["global_step"]),
        seconds=round(float(state["elapsed_seconds"]), 1),
        machine=f"{environment['cpu']} ({environment['cores']} cores, {threads} thread(s)), "
                f"GPU: {environment.get('gpu') or 'none'}",
        software=f"Python {environment['python']}; {versions}",
        trained=time.strftime("%Y-%m-%d", time.gmtime((run / "G_AB.pt").stat().st_mtime)),
        distance=distance(checkpoint),  # loads and runs it: a checkpoint the toolkit cannot open is refused here
    )
    with atomic_output(PRETRAINED_CHECKPOINT) as tmp:
        shutil.copyfile(checkpoint, tmp)
    with atomic_output(PRETRAINED_RECORD) as tmp:
        tmp.write_text(json.dumps(made.to_json(), indent=2) + "\n")
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=44,
                        help=f"training epochs (the shipped generator: 44; the demo itself trains {FULL_PLAN.epochs})")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads of the training run")
    parser.add_argument("--work", type=Path, default=Path("runs/demo-pretrain"), help="data and run folder")
    parser.add_argument("--from-run", type=Path, help="record this finished cg-train run instead of training")
    args = parser.parse_args()
    if args.from_run:
        run = args.from_run.resolve()
        state = torch.load(run / "training_state.pt", map_location="cpu", weights_only=True)
        data = Path(state["dataset"]["root"])
    else:
        data, run = args.work.resolve() / "data", args.work.resolve() / "poster"
        print(data_command(data))
        make_demo_dataset(data, **dataset_options(FULL_PLAN, seed=SEED))
        command = train_command(data, run, args.epochs, args.threads)
        print(shlex.join(command))
        subprocess.run(command, check=True)
    made = record(run, data, args.threads)
    print(f"wrote {PRETRAINED_CHECKPOINT} and {PRETRAINED_RECORD}: {made.epochs} epochs, {made.steps} steps in "
          f"{made.minutes:.0f} min; distance to the poster prints {made.distance}")


if __name__ == "__main__":
    main()
