"""Weights averaged over the end of training (``TrainConfig(average_epochs=...)``).

The latents and maps of a run come from the mean of the weights after each step of the schedule's
last epochs instead of the last step's weights, which carry that step's gradient noise. The mean is
kept on the device and updated in place after every optimiser step, so a step replayed as a CUDA
graph updates it too: its coefficient ``1/n`` is read from a tensor set before each step, like the
learning rate.
"""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """The running mean of ``named`` parameters from step ``start`` on (before it: the weights themselves)."""

    def __init__(self, named: list[tuple[str, torch.nn.Parameter]], start: int):
        self.names = [name for name, _ in named]
        self.params = [p.detach() for _, p in named]  # views of the parameters' storage
        self.mean = [p.clone() for p in self.params]
        self.start = start
        self._weight = torch.ones((), device=self.params[0].device) if self.params else None
        self._weights = [self._weight] * len(self.params)  # one per tensor, as the in-place lerp takes them

    def set_step(self, step: int):
        """Before step ``step``: after it, the mean takes the new weights with coefficient 1/n."""
        if self._weight is not None:
            self._weight.fill_(1.0 / max(step - self.start + 1, 1))

    def update(self):
        """After an optimiser step (inside a captured step too)."""
        if self.params:
            torch._foreach_lerp_(self.mean, self.params, self._weights)

    @torch.no_grad()
    def model_copy(self, model: torch.nn.Module) -> torch.nn.Module:
        """A copy of ``model`` holding the averaged weights (``model`` itself is left to train)."""
        averaged = copy.deepcopy(model)
        params = dict(averaged.named_parameters())
        for name, m in zip(self.names, self.mean):
            params[name].copy_(m)
        return averaged

    def model_state(self, model_state: dict) -> dict:
        """``model_state`` with the averaged weights in place of the training ones."""
        return {**model_state, **{name: m.detach().clone() for name, m in zip(self.names, self.mean)}}

    @torch.no_grad()
    def load(self, averaged_state: dict):
        for name, m in zip(self.names, self.mean):
            m.copy_(averaged_state[name])
