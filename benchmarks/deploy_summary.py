"""One table of every committed ``cg-export deploy`` run: benchmarks/results/deploy/*/deploy.json -> summary.md.

    python benchmarks/deploy_summary.py        # after benchmarks/deploy_figures.sh
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "deploy"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _db(value: float | str | None) -> str:
    return "-" if value is None else value if isinstance(value, str) else f"{value:.1f}"


def main() -> None:
    lines = ["| model | size | candidate | precision | p50 ms | p90 ms | worst PSNR dB | status |",
             "|---|---|---|---|---|---|---|---|"]
    machines = set()
    for manifest_path in sorted(RESULTS.glob("*/deploy.json")):
        manifest = json.loads(manifest_path.read_text())
        size = f"{manifest['size']['height']}x{manifest['size']['width']}"
        machines.add(f"{manifest['machine']['cpu']}, {manifest['machine']['cores']} cores; {manifest['timing']}")
        for row in manifest["candidates"]:
            if row["status"] == "not available":
                continue
            latency = row["latency_ms"] or {}
            status = "**chosen**" if row["name"] == manifest["candidate"] else (
                "passes" if row["passes"] else row["reason"] or "below floor")
            lines.append(f"| {manifest_path.parent.name.rsplit('_', 1)[0]} | {size} | `{row['name']}` | "
                         f"{row['precision']} | {_ms(latency.get('p50'))} | {_ms(latency.get('p90'))} | "
                         f"{_db(row['psnr_db'])} | {status} |")
    text = ("# cg-export deploy: decision tables\n\nMade by `benchmarks/deploy_figures.sh` then "
            "`python benchmarks/deploy_summary.py`; each folder holds that run's deploy.json, report and figures. "
            "Machine: " + "; ".join(sorted(machines)) + ", shared with other jobs while it ran (load average 8-13 on "
            "its 2 cores), so latencies are noisy and only ratios within one run mean much.\n\n" + "\n".join(lines) + "\n")
    (RESULTS / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
