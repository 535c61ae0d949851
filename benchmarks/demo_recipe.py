"""Try a cg-demo training recipe: train on the demo's data, print the distance to the held-out poster prints.

    python benchmarks/demo_recipe.py --threads 1                                   # the full plan's recipe
    python benchmarks/demo_recipe.py --threads 1 --set lr=0.001 --set lambda_id=10  # one change to it
    python benchmarks/demo_recipe.py --threads 1 --data train_per_domain=512 --set epochs=2  # more varied data

Makes the demo dataset (same call and seed as ``cg-demo``), trains with the options of
:data:`cg_demo.plan.FULL_PLAN` (``--set NAME=VALUE`` overrides any ``cg-train`` option, ``--data NAME=VALUE`` any
argument of :func:`cg_demo.data.make_demo_dataset`) and prints the mean abs
difference and SSIM of the generator's output to the true poster prints of the held-out photographs, the same
measure as the report's, with the training time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cg_demo.data import make_demo_dataset  # noqa: E402
from cg_demo.plan import FULL_PLAN, dataset_options, training_options  # noqa: E402
from cg_demo.results import REFERENCE_LABEL  # noqa: E402
from cg_demo.runner import measure_generator  # noqa: E402


def parse_assignments(items: list[str]) -> dict[str, object]:
    """``NAME=VALUE`` pairs; a value that reads as JSON (numbers, lists, true/false) is taken as such."""
    parsed: dict[str, object] = {}
    for item in items:
        name, _, value = item.partition("=")
        parsed[name] = json.loads(value) if value[:1] in "0123456789-[{tfn" else value
    return parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a cg-train option")
    parser.add_argument("--data", action="append", default=[], metavar="NAME=VALUE",
                        help="override an argument of make_demo_dataset (size, train_per_domain, ...)")
    parser.add_argument("--keep", type=Path, help="keep the data and the run in this folder (default: discarded)")
    args = parser.parse_args()

    import torch

    from training.trainer import train

    torch.set_num_threads(args.threads)
    options = training_options(FULL_PLAN, seed=0, device="cpu")
    options.update(parse_assignments(args.set))
    data_options = {**dataset_options(FULL_PLAN, seed=0), **parse_assignments(args.data)}
    with tempfile.TemporaryDirectory() as scratch:
        work = str(args.keep.resolve()) if args.keep else scratch
        data = make_demo_dataset(Path(work) / "data", **data_options)
        started = time.perf_counter()
        trained = train(data, "run", out=work, progress=False, report=lambda label, text: None, **options)
        seconds = time.perf_counter() - started
        learned = measure_generator(trained.generator_AB, FULL_PLAN.sample_side)
    per_photo = next(v for v in learned.versions if v.label == REFERENCE_LABEL).per_photograph
    print(f"data {json.dumps(data_options)}")
    print(f"options {json.dumps(options)}")
    print(f"{trained.global_step} steps in {seconds:.0f} s ({args.threads} thread(s)); {learned.summary}; "
          f"per photograph {per_photo}")


if __name__ == "__main__":
    main()
