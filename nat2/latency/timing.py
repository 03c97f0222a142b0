"""Timing a module on one backend: torch eager (CPU threads or CUDA) or ONNX Runtime on the exported graph.

A set of items (LUT blocks, or whole sub-networks) is timed in rounds: each round visits every item in a shuffled
order and runs it ``warmup`` untimed times, then ``repeats`` timed times, each forward timed alone (CUDA is
synchronised after each). An item's latency is its lowest per-round median (:class:`Timing`). The same timer and
statistic serve blocks and sub-networks, so the LUT sum and the end-to-end figure are the same kind of number.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nat2.errors import Nat2Error

__all__ = ["BACKENDS", "OrtTimer", "Timer", "Timing", "device_name", "make_timer", "time_items"]

BACKENDS = ("torch", "onnxruntime")


@dataclass(frozen=True)
class Timing:
    """Summary of the timed forwards of one item, in milliseconds.

    ``latency_ms`` is the lowest of the per-round medians: each round times every item ``repeats`` times, the
    rounds visit the items in a fresh shuffled order, so a seconds-long slow spell of a shared machine (another
    process, a virtual machine's stolen time) raises some rounds of an item but rarely all of them.
    ``p25_ms``/``p75_ms`` are the quartiles of all timed forwards (how noisy the machine was).
    """

    latency_ms: float
    p25_ms: float
    p75_ms: float
    repeats: int


def time_items(runners: Sequence[Callable[[], Any]], *, warmup: int, repeats: int, rounds: int,
               rng: np.random.Generator, sync: Callable[[], None] | None = None,
               progress: Callable[[int], None] | None = None) -> list[Timing]:
    """Time every runner: ``rounds`` rounds over all of them (shuffled), ``warmup`` + ``repeats`` calls each.

    ``sync`` runs after each call (CUDA), ``progress(round)`` after each round.
    """
    samples = np.empty((len(runners), rounds, repeats))
    clock = time.perf_counter_ns
    for rnd in range(rounds):
        for i in rng.permutation(len(runners)):
            fn = runners[i]
            for _ in range(warmup):
                fn()
            if sync is not None:
                sync()
            for j in range(repeats):
                start = clock()
                fn()
                if sync is not None:
                    sync()
                samples[i, rnd, j] = clock() - start
        if progress is not None:
            progress(rnd + 1)
    ms = samples / 1e6
    best = np.median(ms, axis=2).min(axis=1)
    flat = ms.reshape(len(runners), -1)
    p25, p75 = np.percentile(flat, 25, axis=1), np.percentile(flat, 75, axis=1)
    return [Timing(float(b), float(lo), float(hi), rounds * repeats) for b, lo, hi in zip(best, p25, p75,
                                                                                          strict=True)]


def device_name(device: torch.device) -> str:
    """The CPU model (``/proc/cpuinfo``, else the platform's processor string) or the GPU name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Timer:
    """Measures modules on one backend. Subclasses say how a module runs."""

    backend = "torch"

    def __init__(self, device: torch.device, memory_format: torch.memory_format, threads: int, batch_size: int,
                 warmup: int, repeats: int, rounds: int) -> None:
        self.device, self.memory_format, self.threads = device, memory_format, threads
        self.batch_size, self.warmup, self.repeats, self.rounds = batch_size, warmup, repeats, rounds

    def _input(self, shape: tuple[int, int, int]) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(self.batch_size, *shape, generator=g)
        return x.to(device=self.device, memory_format=self.memory_format)

    def call_overhead(self) -> float:
        """The fixed cost of one invocation that no block inside a network pays (0 for eager torch)."""
        return 0.0

    def prepare(self, module: nn.Module, shape: tuple[int, int, int]) -> Callable[[], Any]:
        """A call that runs ``module`` (eval mode, no autograd) once on a batch of ``shape`` = (C, H, W) inputs."""
        module = module.to(device=self.device, memory_format=self.memory_format)
        try:
            module.eval()
        except NotImplementedError:  # a torch.export program's module is already an inference graph
            pass
        x = self._input(shape)

        def run() -> Any:
            with torch.inference_mode():
                return module(x)

        return run

    def time(self, runners: Sequence[Callable[[], Any]], rng: np.random.Generator,
             progress: Callable[[int], None] | None = None) -> list[Timing]:
        """Time prepared calls (:func:`time_items` with this timer's warm-up, repeats and rounds)."""
        sync = torch.cuda.synchronize if self.device.type == "cuda" else None
        return time_items(runners, warmup=self.warmup, repeats=self.repeats, rounds=self.rounds, rng=rng,
                          sync=sync, progress=progress)


class OrtTimer(Timer):
    """ONNX Runtime (CPU execution provider, ``threads`` intra-op threads) on the module's ONNX export."""

    backend = "onnxruntime"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise Nat2Error("latency.backend = onnxruntime needs the onnxruntime package; run `make venv` or "
                            "`pip install onnxruntime onnx onnxscript`") from None
        self._tmp = tempfile.TemporaryDirectory(prefix="nat2-latency-")
        self._overhead: float | None = None
        self._count = 0

    def prepare_onnx(self, path: Path, shape: tuple[int, int, int]) -> Callable[[], Any]:
        """A call that runs an ONNX file once (a block's export, or a fine-tuned slot's ``model.onnx``)."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = self.threads, 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: self._input(shape).numpy()}
        return lambda: session.run(None, feed)

    def call_overhead(self) -> float:
        """Cost of running a graph that does nothing (an identity), measured once per timer."""
        if self._overhead is None:
            run = self.prepare(_Identity(), (1, 1, 1))
            self._overhead = self.time([run], np.random.default_rng(0))[0].latency_ms
        return self._overhead

    def prepare(self, module: nn.Module, shape: tuple[int, int, int]) -> Callable[[], Any]:
        """A call that runs ``module``'s ONNX export once under ONNX Runtime (the module stays on the CPU)."""
        from nat2.export import quiet_loggers

        self._count += 1
        path = Path(self._tmp.name) / f"block_{self._count}.onnx"
        with quiet_loggers("onnx_ir", "onnxscript", "torch.onnx"):
            torch.onnx.export(module.to("cpu").eval(), (self._input(shape),), str(path), dynamo=True,
                              input_names=["x"], verbose=False, external_data=False)
        return self.prepare_onnx(path, shape)


class _Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.0  # an exporter drops a bare identity; one trivial op keeps a real graph


def make_timer(backend: str, device: torch.device, memory_format: torch.memory_format, threads: int,
               batch_size: int, warmup: int, repeats: int, rounds: int) -> Timer:
    """The timer of ``latency.backend`` (``onnxruntime`` always measures on the CPU)."""
    if backend == "torch":
        return Timer(device, memory_format, threads, batch_size, warmup, repeats, rounds)
    if backend == "onnxruntime":
        return OrtTimer(torch.device("cpu"), torch.contiguous_format, threads, batch_size, warmup, repeats,
                        rounds)
    raise Nat2Error(f"latency.backend {backend!r}: use one of {BACKENDS}")
