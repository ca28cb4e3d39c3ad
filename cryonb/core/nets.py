"""The multilayer perceptrons that encoders and decoders are made of."""

from __future__ import annotations

import torch
from torch import nn


def mlp(n_in: int, width: int, depth: int, n_out: int) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units with ReLU, then a linear output layer."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.ReLU(inplace=True)]
    layers.append(nn.Linear(width if depth else n_in, n_out))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """``relu(x + linear(x))``: a hidden layer that can pass its input through unchanged."""

    def __init__(self, width: int):
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.linear(x))


def residual_mlp(n_in: int, width: int, depth: int, n_out: int) -> nn.Sequential:
    """A linear layer into ``width`` units, ``depth`` residual layers, a linear output layer."""
    return nn.Sequential(nn.Linear(n_in, width), nn.ReLU(inplace=True), *(Residual(width) for _ in range(depth)),
                         nn.Linear(width, n_out))
