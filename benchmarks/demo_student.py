"""How long the cg-demo student stage's distillation takes, for the full and the quick plan, as the demo runs it.

Sizes the plans' ``student_epochs`` / ``student_batch`` (``cg_demo/plan.py``). The teachers are untrained generators
of the plans' architectures: distillation speed depends on the architectures, not on the weights. Prints the load
average before and after, since the build machine is shared.

    PYTHONPATH=$PWD OMP_NUM_THREADS=2 python benchmarks/demo_student.py /tmp/demo-student
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from cg_demo.data import make_demo_dataset
from cg_demo.plan import FULL_PLAN, QUICK_PLAN, dataset_options
from cg_export.models import create_generator, save_generator
from training.compress import compress


def main(root: Path) -> None:
    torch.manual_seed(0)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    for name, plan in (("quick", QUICK_PLAN), ("full", FULL_PLAN)):
        data = make_demo_dataset(root / name / "data", **dataset_options(plan, seed=0))
        teacher = save_generator(create_generator(plan.arch, ngf=plan.ngf, n_blocks=plan.n_blocks),
                                 root / name / "G_AB.pt")
        started, cpu = time.perf_counter(), time.process_time()
        made = compress(teacher, data / "trainA", output=root / name / "G_AB_student.pt", ratio=plan.student_ratio,
                        epochs=plan.student_epochs, batch_size=plan.student_batch,
                        image_size=plan.image_size, lr=plan.lr, seed=0, device="cpu",
                        progress=False, report=lambda label, text: None)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"{name}: {made.choice.describe()}; {made.epochs_done} epoch(s) = {made.global_step} steps in {wall:.1f} s wall, "
              f"{cpu:.1f} s CPU", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/demo-student"))
