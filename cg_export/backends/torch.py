"""PyTorch backend: the reference every other backend is compared with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cg_export.backends.base import ModelInfo, Runner
from cg_export.devices import DEFAULT_DEVICE, is_auto
from cg_export.errors import BackendError
from cg_export.metadata import ArtifactMetadata
from cg_export.threads import check_threads
from cg_export.threads import threads as thread_settings


class TorchRunner(Runner):
    """Runs a generator module eagerly.

    Args:
        model: The generator (any device/dtype; it is moved on ``activate()``).
        device: ``"auto"`` (the default, :data:`cg_export.devices.DEFAULT_DEVICE`: CUDA when PyTorch sees a GPU,
            else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        half: Compute in float16 (inputs and outputs stay float32 on the host).
        channels_last: Use the channels-last memory format (faster convolutions on tensor-core GPUs).
        source: What is known of the checkpoint the model came from (its format and content hash), for ``info``.
        path: The checkpoint file, for ``info``.
        threads: CPU threads PyTorch computes with (a process-wide setting, applied on ``activate()``);
            ``None``: the cores this process may use (:func:`cg_export.threads.default_threads`).
    """

    name = "torch"

    def __init__(self, model: nn.Module, device: str = DEFAULT_DEVICE, half: bool = False, channels_last: bool = False,
                 source: ArtifactMetadata | None = None, path: Path | None = None, threads: int | None = None):
        super().__init__()
        check_threads(threads, "threads")
        self.threads = threads
        self.model = model
        self.path = path
        self.source = source
        self.device = device
        self.half = half
        self.channels_last = channels_last
        self.precision = "fp16" if half else "fp32"
        self._dtype = torch.float16 if half else torch.float32
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format

    @classmethod
    def from_checkpoint(cls, path: str | Path, arch: str | None = None, **options: object) -> TorchRunner:
        """Load any supported checkpoint (see :func:`cg_export.models.load_generator`) into a runner."""
        from cg_export.models import load_generator

        generator = load_generator(path, arch=arch)
        source = ArtifactMetadata(source_checkpoint=str(generator.path.resolve()), source_sha256=generator.weights_sha256,
                                  source_format=generator.source_format)
        return cls(generator.model, source=source, path=Path(path), **options)  # type: ignore[arg-type]

    from_file = from_checkpoint

    def _activate(self) -> None:
        if is_auto(self.device):  # resolved here, not in __init__: nothing touches the GPU before activate()
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(
                f"device {self.device!r}: this PyTorch ({torch.__version__}) sees no CUDA GPU; use device 'cpu'"
            )
        # PyTorch's default is one thread per machine core, whatever a container or affinity mask leaves us; too
        # many threads made a small generator 9-45x slower on a busy machine than one thread. A process-wide
        # setting: taken here, given back on deactivate().
        self._threads = thread_settings(self.threads)
        self._thread_count = self._threads.__enter__().count
        try:
            self._load()
        except BaseException:
            self._threads.__exit__(None, None, None)
            raise

    def _deactivate(self) -> None:
        self._threads.__exit__(None, None, None)

    def _hold_threads(self) -> None:
        # Another runner activated since (a benchmark's reference stays active beside every target) may have set
        # its own count. PyTorch picks its kernels by thread count (oneDNN or its own convolutions), so a model run
        # with another count gives other bits: a reference compared with itself read 83 dB instead of inf.
        if torch.get_num_threads() != self._thread_count:
            torch.set_num_threads(self._thread_count)

    def _load(self) -> None:
        self.model = self.model.to(device=self.device, dtype=self._dtype, memory_format=self._memory_format).eval()
        source = self.source or ArtifactMetadata()
        config = dict(getattr(self.model, "config", {}) or {})
        metadata = ArtifactMetadata(
            precision=self.precision, size_multiple=int(getattr(self.model, "size_multiple", 1)), architecture=config,
            source_checkpoint=source.source_checkpoint, source_sha256=source.source_sha256,
            source_format=source.source_format,
        )
        self._info = ModelInfo("torch", self.path, metadata)

    def to_device(self, batch: np.ndarray) -> torch.Tensor:
        """Copy a host batch to the runner's device, dtype and memory format."""
        return torch.from_numpy(batch).to(self.device, dtype=self._dtype, memory_format=self._memory_format)

    def run_on_device(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model on a tensor made by :meth:`to_device`; the output stays on the device.

        Subclasses that change how the model executes (CUDA graphs, compiled modules) override this one method;
        host copies and timing stay the same for them.
        """
        return self.model(x)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self._hold_threads()
        with torch.inference_mode():
            return self.run_on_device(self.to_device(batch)).float().cpu().numpy()

    def norm_stats(self, batch: np.ndarray) -> np.ndarray:
        from cg_export.norm_stats import TorchNormStats

        self._hold_threads()
        return TorchNormStats(self.model).collect(self.to_device(np.ascontiguousarray(batch, dtype=np.float32)))

    def infer_with_norm_stats(self, batch: np.ndarray, stats: np.ndarray) -> np.ndarray:
        from cg_export.norm_stats import TorchNormStats

        self._hold_threads()
        x = self.to_device(np.ascontiguousarray(batch, dtype=np.float32))
        return TorchNormStats(self.model).apply(x, stats).float().cpu().numpy()

    def compute_timer(self, batch: np.ndarray) -> Callable[[], float] | None:
        """On CUDA, the model's device time on a resident input, measured with CUDA events; ``None`` on the CPU.

        See :meth:`Runner.compute_timer`.
        """
        if not str(self.device).startswith("cuda"):
            return None
        with torch.inference_mode():
            x = self.to_device(batch)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def run_once() -> float:
            with torch.inference_mode():
                start.record()
                self.run_on_device(x)
                end.record()
            # The events time the GPU between them, not the host; elapsed_time needs the end event reached.
            end.synchronize()
            return start.elapsed_time(end)

        return run_once
