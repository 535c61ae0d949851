"""Tiled vs whole-image output, peak memory of a 2048x2048 photograph in tiles, and video frames per second.

Run: ``python benchmarks/tiling.py --checkpoint G_AB.pt`` (a trained generator; a few minutes on 2 cores).
- PSNR between tiled and whole-image output on a 768x768 photograph (rocket, held out from the demo data) cut
  in 256-px tiles (overlap 32): with thumbnail statistics at several thumbnail sizes, and naive per-tile
  normalisation beside them.
- Peak resident memory (VmHWM) of ``cg-stylize model.onnx photo_2048.png --tile 256`` (ONNX Runtime CPU), read
  by the child process itself.
- Frames per second of ``cg-stylize`` on a 48-frame 320x240 clip.
Writes ``benchmarks/results/tiling.json`` and prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe_machine  # noqa: E402

from cg_export.backends.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from cg_export.export.onnx import export_onnx  # noqa: E402
from cg_export.images import fit_to_size, sample_photographs  # noqa: E402
from cg_export.tiling import stylize_array  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "tiling.json"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def make_clip(path: Path, photo: np.ndarray, frames: int = 48) -> None:
    import av

    strip = fit_to_size(photo, 240, 320 + 4 * frames)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(strip[:, 4 * i : 4 * i + 320]), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path)
    args = parser.parse_args()
    photos = dict(sample_photographs())
    result: dict = {"environment": describe_machine()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = export_onnx(args.checkpoint, tmp / "g.onnx").path
        image = fit_to_size(photos["rocket"], 768, 768)
        with OnnxRuntimeRunner(model) as runner:
            whole = stylize_array(runner, image, 4)
            rows = {"naive per-tile statistics": psnr(whole, stylize_array(runner, image, 4, tile=256, naive=True))}
            for size in (256, 384, 512, 768):
                tiled = stylize_array(runner, image, 4, tile=256, stats_size=size)
                rows[f"thumbnail statistics, {size} px"] = psnr(whole, tiled)
        result["tiled_vs_whole_psnr_db_768"] = rows

        big = tmp / "photo_2048.png"
        Image.fromarray(fit_to_size(photos["hubble_deep_field"], 2048, 2048)).save(big)
        started = time.perf_counter()
        # The child reports its own high-water mark (VmHWM, reset at exec): getrusage(RUSAGE_CHILDREN) would also
        # count the pages the child shared with this (large) parent between fork and exec.
        argv = ["cg-stylize", str(model), str(big), "-o", str(tmp / "out_2048.png"), "--tile", "256", "--no-progress"]
        probe = (f"import sys; sys.argv = {argv!r}\n"
                 "from cg_export.cli.stylize import app\n"
                 "try:\n    app()\nexcept SystemExit:\n    pass\n"
                 "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')))")
        run = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
        peak_mb = int(run.stdout.strip().splitlines()[-1].split()[1]) / 1024
        result["stylize_2048_tile256"] = {"peak_rss_mb": round(peak_mb), "seconds": round(time.perf_counter() - started, 1)}

        clip = tmp / "clip.mp4"
        make_clip(clip, photos["motorcycle_left"])
        run = subprocess.run([sys.executable, "-m", "cg_export.cli.stylize", str(model), str(clip), "-o",
                              str(tmp / "styled.mp4"), "--no-progress"], check=True, capture_output=True, text=True)
        line = next(line for line in run.stdout.splitlines() if line.startswith("video"))
        result["video_320x240_48_frames"] = line.split(None, 1)[1]
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("| tiles (768x768 photograph, 256-px tiles, overlap 32) | PSNR vs whole image |\n|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.1f} dB |")
    print(f"\n2048x2048 in 256-px tiles: peak RSS {result['stylize_2048_tile256']['peak_rss_mb']} MB, "
          f"{result['stylize_2048_tile256']['seconds']} s")
    print(f"video: {result['video_320x240_48_frames']}")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
