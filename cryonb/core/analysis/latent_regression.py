"""A small network from latents z to values measured on maps (their map PCs), for every particle.

Maps are generated for a sample of latents only; the network trained on those (z, value) pairs
gives the value for every particle's z. Its quality is the R² on sampled maps held out of training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..adam import AdamW
from ..errors import InputError


@dataclass
class LatentRegression:
    """A fitted z → values network; ``r2`` (per output) and ``r2_total`` on the held-out latents."""

    net: torch.nn.Module
    z_mean: np.ndarray
    z_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    r2: np.ndarray  # (n_out,) held-out coefficient of determination of each output
    r2_total: float  # held-out R² of all outputs together (1 - residual / total sum of squares)
    held_out: np.ndarray  # (H,) rows of the training data that were held out
    epochs: int

    @torch.no_grad()
    def predict(self, z, batch_size: int = 65536) -> np.ndarray:
        """Values (N, n_out) for latents (N, zdim), in chunks."""
        z = np.asarray(z, dtype=np.float32)
        device = next(self.net.parameters()).device
        out = np.empty((len(z), len(self.y_mean)), np.float32)
        for start in range(0, len(z), batch_size):
            x = torch.from_numpy((z[start : start + batch_size] - self.z_mean) / self.z_std).to(device)
            out[start : start + batch_size] = self.net(x).cpu().numpy() * self.y_std + self.y_mean
        return out


def _network(n_in: int, width: int, depth: int, n_out: int) -> torch.nn.Sequential:
    """``depth`` hidden ReLU layers of ``width`` units."""
    layers: list[torch.nn.Module] = []
    for i in range(depth):
        layers += [torch.nn.Linear(n_in if i == 0 else width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(width if depth else n_in, n_out))


def _r2(y: np.ndarray, yhat: np.ndarray) -> tuple[np.ndarray, float]:
    residual = ((y - yhat) ** 2).sum(0)
    total = ((y - y.mean(0)) ** 2).sum(0)
    per = 1 - residual / np.maximum(total, np.finfo(np.float64).tiny)
    return per, float(1 - residual.sum() / max(total.sum(), np.finfo(np.float64).tiny))


def fit_latent_regression(z, y, *, width: int = 256, depth: int = 3, held_out: float = 0.2, epochs: int = 300,
                          patience: int = 30, batch_size: int = 256, lr: float = 1e-3, seed: int = 0,
                          device="cpu", progress: bool | None = None) -> LatentRegression:
    """Fit an MLP from z (M, zdim) to y (M, n_out) on all but a ``held_out`` fraction.

    Inputs and outputs are standardised (each output weighs the same in the loss). Training stops
    when the held-out loss has not improved for ``patience`` epochs; the best epoch's weights are kept.
    """
    z = np.asarray(z, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    if z.ndim != 2 or y.ndim != 2 or len(z) != len(y):
        raise InputError(None, f"z {z.shape} and y {y.shape} must be 2D with one row per sample", "pass matching rows")
    n_test = int(round(held_out * len(z)))
    if len(z) < 5 or not 1 <= n_test < len(z) - 1:
        raise InputError(None, f"{len(z)} samples with held_out={held_out} leave no training or test set",
                         "sample more maps or choose held_out between 0 and 1")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(z))
    test, train = np.sort(order[:n_test]), order[n_test:]
    z_mean, z_std = z[train].mean(0), z[train].std(0) + 1e-8
    y_mean, y_std = y[train].mean(0), y[train].std(0) + 1e-8
    device = torch.device(device)
    x_all = torch.from_numpy((z - z_mean) / z_std).to(device)
    y_all = torch.from_numpy((y - y_mean) / y_std).to(device)
    torch.manual_seed(seed)
    net = _network(z.shape[1], width, depth, y.shape[1]).to(device)
    optimiser = AdamW(net.parameters(), lr=lr, weight_decay=0.0)  # Adam
    train_t, test_t = torch.from_numpy(train).to(device), torch.from_numpy(test).to(device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    best, best_state, best_epoch = float("inf"), None, 0
    bar = tqdm(range(epochs), desc="z -> map PCs", unit="epoch", disable=progress is False, leave=False)
    for epoch in bar:
        net.train()
        for batch in train_t[torch.randperm(len(train_t), generator=generator).to(device)].split(batch_size):
            loss = torch.nn.functional.mse_loss(net(x_all[batch]), y_all[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        net.eval()
        with torch.no_grad():
            test_loss = float(torch.nn.functional.mse_loss(net(x_all[test_t]), y_all[test_t]))
        bar.set_postfix_str(f"held-out loss {test_loss:.4f}")
        if test_loss < best:
            best, best_epoch = test_loss, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - best_epoch >= patience:
            break
    bar.close()
    net.load_state_dict(best_state)
    net.eval()
    fit = LatentRegression(net, z_mean, z_std, y_mean, y_std, np.zeros(y.shape[1]), 0.0, test, best_epoch + 1)
    fit.r2, fit.r2_total = _r2(y[test].astype(np.float64), fit.predict(z[test]).astype(np.float64))
    return fit
