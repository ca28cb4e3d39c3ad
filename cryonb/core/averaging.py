"""An exponential moving average of a module's weights (Polyak averaging).

    average = WeightAverage(model.latents, decay=0.999)
    ...                          # after each optimiser step:
    average.update()
    average.module(...)          # a copy of the module holding the averaged weights

The average smooths the last steps' jitter out of the weights; ``decay`` sets its memory, about
1 / (1 - decay) steps. Buffers are copied, not averaged.
"""

from __future__ import annotations

import contextlib
import copy

import torch


class WeightAverage:
    """A copy of a module (``.module``) whose parameters follow the moving average of the original's."""

    def __init__(self, module: torch.nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), not {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(module).requires_grad_(False)
        self._source = list(module.parameters())
        self._averaged = list(self.module.parameters())

    @torch.no_grad()
    def update(self):
        """Fold the original's current weights in. The first updates weigh every step equally (1/n), so
        that the average does not lean towards the initial weights."""
        self.updates += 1
        torch._foreach_lerp_(self._averaged, self._source, max(1 - self.decay, 1 / self.updates))

    @contextlib.contextmanager
    @torch.no_grad()
    def applied(self):
        """The original module holds the averaged weights inside the block, its own after it (not while
        it trains)."""
        kept = [p.detach().clone() for p in self._source]
        torch._foreach_copy_(self._source, self._averaged)
        try:
            yield
        finally:
            torch._foreach_copy_(self._source, kept)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict):
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        self.module.load_state_dict(state["module"])
