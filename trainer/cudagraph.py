"""A whole training step (forward, backward, clipping, optimizer) replayed as one CUDA graph.

Why: at the `small` recipe's shapes the GPU finishes a step faster than Python can launch it. Each
step issues several thousand kernels (12 layers of attention pieces, a dozen MoE kernels per layer
and direction, the optimizer); eager and torch.compile alike leave the GPU idle between them
(bench/RESULTS.md, Trainer). Packed rows have a fixed shape and nothing in the step reads a value
back to the host (the MoE routing stays on the device), so the step can be captured once and
replayed with new data copied into its input buffers.

Contract for `fn(batch) -> outputs`: tensors in, tensors out; the same shapes every call; no host
synchronisation (`.item()`, `.tolist()`, data-dependent shapes); gradients set to None at its end
(`zero_grad(set_to_none=True)`), so the captured backward writes them instead of accumulating; an
optimizer built with `capturable=True`. The first `warmup` calls run eagerly on a side stream
(torch.compile and Triton compile there); the next call captures and replays; later calls copy
their batch into the captured inputs and replay. Outputs are the captured tensors, overwritten by
every replay: read them (`.item()`) before the next call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["GraphedStep"]

Batch = dict[str, torch.Tensor]


class GraphedStep:
    def __init__(self, fn: Callable[[Batch], dict[str, torch.Tensor]], warmup: int = 2):
        if warmup < 1:
            raise ValueError("warmup must be at least 1: capture needs compiled kernels and allocated state")
        self.fn, self.warmup = fn, warmup
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self._inputs: Batch = {}
        self._outputs: dict[str, torch.Tensor] = {}

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, batch: Batch) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.graph is not None:
            if batch.keys() != self._inputs.keys():
                raise ValueError(f"batch keys {sorted(batch)} differ from the captured {sorted(self._inputs)}")
            for k, v in batch.items():
                if v.shape != self._inputs[k].shape:
                    raise ValueError(f"batch[{k!r}] has shape {tuple(v.shape)}; the graph was captured with "
                                     f"{tuple(self._inputs[k].shape)}")
                self._inputs[k].copy_(v, non_blocking=True)
            self.graph.replay()
            return self._outputs
        if self.calls <= self.warmup:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.fn(batch)
            torch.cuda.current_stream().wait_stream(side)
            return out
        self._inputs = {k: v.clone() for k, v in batch.items()}
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._outputs = self.fn(self._inputs)
        self.graph = graph
        graph.replay()  # capture records only: this replay is the step for this batch
        return self._outputs
