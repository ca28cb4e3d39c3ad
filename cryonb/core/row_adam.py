"""Adam for per-particle tables, updating only a batch's rows: ``torch.optim.SparseAdam``'s update
in a form a CUDA graph can replay.

A table (an autodecoder's latents, ab initio's poses) is read through ``weight.index_select(0, idx)``
(:func:`rows`), whose gradient is dense: zeros but at the batch's rows. :class:`RowAdam` is told
those rows (``step(idx)``) instead of finding them in a sparse gradient, which takes a host sync
(``coalesce``) that no graph can hold. Its update is SparseAdam's: the moments and the weights of the
batch's rows move, the other rows' do not, and the bias corrections count the table's steps. The
learning rate and the step counts are tensors on the table's device, so a graph reads a new rate
without a new capture. It reads SparseAdam's ``state_dict`` too (checkpoints written before).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def rows(table: torch.nn.Embedding, idx: torch.Tensor) -> torch.Tensor:
    """The rows at ``idx`` of ``table``, with a dense gradient (an index_add: no sort, no host sync)."""
    return table.weight.index_select(0, idx)


class RowAdam:
    """Adam on the rows at ``idx`` of each table (``step(idx)``; ``idx`` without repeats, a batch)."""

    def __init__(self, groups: Iterable[dict], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.param_groups = []
        for group in groups:
            params = list(group["params"])
            lr = torch.tensor(float(group["lr"]), device=params[0].device)
            self.param_groups.append({"params": params, "lr": lr, "betas": tuple(betas), "eps": eps, "maximize": False})
        self.state = {p: {"step": torch.zeros((), device=p.device), "exp_avg": torch.zeros_like(p),
                          "exp_avg_sq": torch.zeros_like(p)}
                      for group in self.param_groups for p in group["params"]}

    def zero_grad(self, set_to_none: bool = True):
        for p in self.state:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @staticmethod
    def set_lr(group: dict, lr: float):
        group["lr"].fill_(lr)  # in place: a captured step reads it from this tensor

    @torch.no_grad()
    def step(self, idx: torch.Tensor):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                grad = p.grad.index_select(0, idx)
                avg = state["exp_avg"].index_select(0, idx).lerp_(grad, 1 - beta1)
                square = state["exp_avg_sq"].index_select(0, idx).mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                state["exp_avg"].index_copy_(0, idx, avg)
                state["exp_avg_sq"].index_copy_(0, idx, square)
                t = state["step"].add_(1)
                size = group["lr"] * (1 - beta2**t).sqrt() / (1 - beta1**t)
                p.index_add_(0, idx, avg.div_(square.sqrt_().add_(group["eps"])).mul_(-size))

    def state_dict(self) -> dict:
        """``torch.optim``'s form: parameters numbered in group order, state keyed by those numbers."""
        numbers = {p: n for n, p in enumerate(p for g in self.param_groups for p in g["params"])}
        groups = [{**{k: (float(v) if k == "lr" else v) for k, v in g.items() if k != "params"},
                   "params": [numbers[p] for p in g["params"]]} for g in self.param_groups]
        return {"state": {numbers[p]: dict(s) for p, s in self.state.items()}, "param_groups": groups}

    def load_state_dict(self, saved: dict):
        """Take the rates and state of a ``state_dict`` (this class's or ``torch.optim.SparseAdam``'s)."""
        saved_groups = saved["param_groups"]
        if len(saved_groups) != len(self.param_groups) or any(
                len(s["params"]) != len(g["params"]) for s, g in zip(saved_groups, self.param_groups)):
            raise ValueError("the saved table optimiser state has other parameter groups than this model's")
        params = {}
        for s, g in zip(saved_groups, self.param_groups):
            self.set_lr(g, float(s["lr"]))
            g["betas"], g["eps"] = tuple(s["betas"]), s["eps"]
            params.update(zip(s["params"], g["params"]))
        for number, values in saved["state"].items():
            state = self.state[params[int(number)]]
            for key, value in values.items():  # copied in place: a captured step holds these tensors
                state[key].copy_(torch.as_tensor(value, dtype=state[key].dtype))
