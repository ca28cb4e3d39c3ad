"""Training steps replayed as CUDA graphs.

At the small batches that give the best latents, a step of a cryonb model is bound by kernel
launches and Python, not by arithmetic: a few hundred small kernels, each launched from Python.
:class:`CapturedStep` records one whole step (forward, backward and optimiser update) once and then
replays it with a single launch per step. Inputs are copied into static buffers; the step's outputs
are static tensors that each replay overwrites.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class CapturedStep:
    """``step(*inputs)`` captured as a CUDA graph, for inputs of fixed shapes.

    ``step`` must run the forward and backward passes and each optimiser's step, and return a tuple
    of tensors. The optimisers must keep their step counts and learning rates in tensors on the GPU
    (:class:`~cryonb.core.adam.AdamW` with ``capturable=True`` and a tensor rate; :class:`~cryonb.core.row_adam.RowAdam`),
    so that a new rate needs no new capture. Capturing runs ``warmup`` real steps first (CUDA
    libraries initialise lazily); the model's parameters and the optimisers' state are restored
    afterwards, so capturing changes nothing: the next replay computes the step an eager call would.
    """

    def __init__(self, step: Callable, model: torch.nn.Module, optimizers: list,
                 inputs: tuple[torch.Tensor, ...], warmup: int = 3):
        self.inputs = tuple(x.clone() for x in inputs)
        saved = _snapshot(model, optimizers)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                _zero_grad(optimizers)
                step(*self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        _zero_grad(optimizers)  # backward inside the graph assigns fresh, static gradients
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = step(*self.inputs)
        _restore(model, optimizers, saved)

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        for static, x in zip(self.inputs, inputs):
            static.copy_(x)
        self.graph.replay()
        return self.outputs

    def matches(self, *inputs: torch.Tensor) -> bool:
        """Whether ``inputs`` have the shapes this graph was captured for."""
        return all(s.shape == x.shape for s, x in zip(self.inputs, inputs))


def _zero_grad(optimizers):
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)


def _snapshot(model, optimizers) -> tuple[list[torch.Tensor], dict]:
    params = [p.detach().clone() for p in model.parameters()]
    state = {id(p): {k: v.clone() for k, v in s.items() if torch.is_tensor(v)}
             for optimizer in optimizers for p, s in optimizer.state.items()}
    return params, state


@torch.no_grad()
def _restore(model, optimizers, saved):
    """Put back the parameters and optimisers' state, in place (the graph holds their addresses)."""
    params, state = saved
    for p, old in zip(model.parameters(), params):
        p.copy_(old)
    for p, s in (item for optimizer in optimizers for item in optimizer.state.items()):
        before = state.get(id(p), {})
        for k, v in s.items():
            if torch.is_tensor(v):
                v.copy_(before[k]) if k in before else v.zero_()  # a state made by warm-up: fresh is zeros
