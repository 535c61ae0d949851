"""cg-train and cg-stylize on a busy machine: default threads vs ``--threads 1``, alone and beside a CPU-bound
neighbour, with the toolkit's own waiting policy, with passive waiting everywhere (``CG_EXPORT_SPIN=0``) and with
spinning threads everywhere (``CG_EXPORT_SPIN=1`` and ``OMP_WAIT_POLICY=ACTIVE``).

Why: on a 2-core machine ``cg-train --threads 2`` beside one single-threaded job took 818 s for 128 steps,
53 s with ``OMP_WAIT_POLICY=PASSIVE`` and 24 s with ``--threads 1``: threads that spin-wait for a sibling the OS
has parked burn the core the sibling needs. This script measures that on the machine it runs on.

Each configuration runs the real console scripts as subprocesses (``python -m training.cli``,
``python -m cg_export.cli.stylize``), timed by wall clock from start to exit; the neighbour is one Python process
burning one core, started before and stopped after each run (bounded: it ends by itself after ``--neighbour-limit``
seconds whatever happens). Configurations are interleaved over ``--rounds`` (a shared machine's load drifts), and
the load average before each run is recorded with the result.

Run (the lead, on an otherwise idle machine; several minutes on 2 cores)::

    python benchmarks/busy_neighbour.py

A smoke run that only proves the script works (seconds; its numbers mean nothing)::

    python benchmarks/busy_neighbour.py --steps 1 --images 1 --size 32 --ngf 4 --rounds 1 --out /tmp/smoke.json

Writes ``benchmarks/results/busy_neighbour.json`` (or ``--out``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe_machine  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]

BURN = "import sys, time\ndeadline = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < deadline:\n    pass\n"


def make_inputs(folder: Path, images: int, size: int, ngf: int) -> dict[str, Path]:
    """Training folders (trainA/trainB), photographs to stylize, and a demo-like generator as .pt and .onnx."""
    from PIL import Image

    from cg_export.export.onnx import OnnxExportOptions, export_onnx
    from cg_export.images import fit_to_size, sample_photographs
    from cg_export.models import create_generator, save_generator
    from cg_export.models.init import init_weights

    photos = sample_photographs()
    for domain in ("trainA", "trainB"):
        (folder / "data" / domain).mkdir(parents=True)
    (folder / "photos").mkdir()
    for index in range(images):
        name, photo = photos[index % len(photos)]
        for domain in ("trainA", "trainB"):
            Image.fromarray(fit_to_size(photo, size, size)).save(folder / "data" / domain / f"{index}_{name}.png")
        Image.fromarray(fit_to_size(photo, 2 * size, 2 * size)).save(folder / "photos" / f"{index}_{name}.png")
    checkpoint = save_generator(init_weights(create_generator("resnet", ngf=ngf, n_blocks=3)), folder / "g.pt")
    model = export_onnx(checkpoint, folder / "g.onnx", OnnxExportOptions(verify=False)).path
    return {"data": folder / "data", "photos": folder / "photos", "pt": checkpoint, "onnx": model}


def commands(inputs: dict[str, Path], work: Path, args: argparse.Namespace) -> dict[str, list[str]]:
    """The timed command lines, without ``--threads``; ``{run}`` stands for a fresh folder per run."""
    python = sys.executable
    return {
        "cg-train": [python, "-m", "training.cli", str(inputs["data"]), "--name", "busy", "--output", "{run}",
                     "--epochs", str(max(1, args.steps // args.images)), "--size", str(args.size),
                     "--ngf", str(args.ngf), "--ndf", str(args.ngf), "--n-blocks", "3", "--no-progress"],
        "cg-stylize (PyTorch)": [python, "-m", "cg_export.cli.stylize", str(inputs["pt"]), str(inputs["photos"]),
                                 "-o", "{run}", "--no-progress"],
        "cg-stylize (ONNX Runtime)": [python, "-m", "cg_export.cli.stylize", str(inputs["onnx"]),
                                      str(inputs["photos"]), "-o", "{run}", "--no-progress"],
    }


WAITING = {
    "toolkit": {},  # default threads leave out busy cores; OpenMP passive only on a shared machine (cg_export.threads)
    "passive": {"CG_EXPORT_SPIN": "0"},
    "spin": {"CG_EXPORT_SPIN": "1", "OMP_WAIT_POLICY": "ACTIVE"},
}


def time_once(command: list[str], threads: int | None, waiting: str, neighbour: bool, limit: float) -> dict:
    """One run: its wall time, exit status and the load average just before it."""
    run_folder = tempfile.mkdtemp(prefix="busy_neighbour_run_")
    command = [run_folder if part == "{run}" else part for part in command]
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_WAIT_POLICY", "CG_EXPORT_SPIN")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(WAITING[waiting])
    burner = subprocess.Popen([sys.executable, "-c", BURN, str(limit)]) if neighbour else None
    try:
        if burner is not None:
            time.sleep(0.5)  # the neighbour is running before the command starts
        load = os.getloadavg()
        started = time.perf_counter()
        run = subprocess.run(command + ([] if threads is None else ["--threads", str(threads)]), env=env,
                             capture_output=True, text=True, timeout=limit)
        seconds = time.perf_counter() - started
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
        shutil.rmtree(run_folder, ignore_errors=True)
    return {"seconds": round(seconds, 3), "exit_code": run.returncode, "load_average_before": [round(x, 2) for x in load],
            "stderr_tail": run.stderr.strip().splitlines()[-1:] if run.returncode else []}


def main() -> None:
    """Parse the options, run every configuration ``--rounds`` times, write the JSON and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=32, help="Training steps of cg-train (epochs x images).")
    parser.add_argument("--images", type=int, default=8, help="Images per domain, and photographs to stylize.")
    parser.add_argument("--size", type=int, default=128, help="Training crop size (photographs are twice it).")
    parser.add_argument("--ngf", type=int, default=16, help="Generator and discriminator width.")
    parser.add_argument("--rounds", type=int, default=3, help="Times every configuration runs, interleaved.")
    parser.add_argument("--neighbour-limit", type=float, default=1800, help="Seconds after which a run (and its "
                        "neighbour) is stopped whatever happens.")
    parser.add_argument("--only", action="append", help="Only these commands (repeat), e.g. cg-train.")
    parser.add_argument("--out", type=Path, default=RESULTS / "busy_neighbour.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        inputs = make_inputs(work, args.images, args.size, args.ngf)
        timed = {name: line for name, line in commands(inputs, work, args).items() if not args.only or name in args.only}
        configs = list(itertools.product(timed, (None, 1), (False, True), WAITING))
        runs: dict[tuple, list[dict]] = {config: [] for config in configs}
        for round_index in range(args.rounds):
            for config in configs:
                name, threads, neighbour, waiting = config
                result = time_once(timed[name], threads, waiting, neighbour, args.neighbour_limit)
                runs[config].append(result)
                print(f"round {round_index + 1}: {name}, threads {threads or 'default'}, "
                      f"{'busy' if neighbour else 'idle'}, {waiting}: {result['seconds']:.2f} s"
                      f"{'' if result['exit_code'] == 0 else ' (exit ' + str(result['exit_code']) + ')'}", flush=True)

    results = []
    for (name, threads, neighbour, waiting), per_round in runs.items():
        ok = [r["seconds"] for r in per_round if r["exit_code"] == 0]
        results.append({"command": name, "threads": threads or "default", "neighbour": neighbour,
                        "wait_policy": waiting, "environment_set": WAITING[waiting],
                        "seconds_median": statistics.median(ok) if ok else None, "runs": per_round})
    report = {
        "environment": describe_machine(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "setup": f"cg-train {args.steps} steps ({args.images} images per domain, {args.size}x{args.size}, resnet "
                 f"ngf {args.ngf} 3 blocks, PatchGAN ndf {args.ngf}); cg-stylize {args.images} photographs of "
                 f"{2 * args.size}x{2 * args.size} with the same generator (untrained) as .pt and .onnx; neighbour: "
                 "one process burning one core; wall clock of the whole command, median over rounds",
        "command": "python benchmarks/busy_neighbour.py " + " ".join(sys.argv[1:]),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}\n\n| command | threads | neighbour | waiting | seconds (median) |\n|---|---|---|---|---|")
    for row in results:
        seconds = "failed" if row["seconds_median"] is None else f"{row['seconds_median']:.2f}"
        print(f"| {row['command']} | {row['threads']} | {'busy' if row['neighbour'] else 'idle'} | "
              f"{row['wait_policy']} | {seconds} |")


if __name__ == "__main__":
    main()
