"""Adam with decoupled weight decay (AdamW; Adam with ``weight_decay=0``) for cryonb's fits, outside ``torch.optim``.

``torch.optim``'s optimisers import ``torch._dynamo`` the first time they take a parameter group or
step, so that ``torch.compile`` can trace them: 4.7 s of a 62 s training run on an H200
(docs/benchmarks.md, "One call for both systems' time, and where the setup goes"). :class:`AdamW`
computes the update of ``torch.optim.AdamW``'s multi-tensor form with the same ``torch._foreach_*``
kernels in the same order, keeps the same state per parameter (``step``, ``exp_avg``,
``exp_avg_sq``) and reads and writes the same ``state_dict``, so checkpoints move between the two.
``capturable=True`` keeps the step counts on the parameters' device and reads a tensor learning
rate, so that a CUDA graph can replay the update (:mod:`cryonb.core.graphs`). ``fused=True`` computes
the same update with torch's one-kernel form (``torch._fused_adamw_``, what ``torch.optim.AdamW(fused=True)``
calls; the same formula in float32, rounded in another order): at D = 128 the multi-tensor form's
eight passes over the weights took 0.75 ms of a 10 ms step on an H200 (docs/benchmarks.md, "The
optimiser in one kernel"). The per-particle tables have :class:`~cryonb.core.row_adam.RowAdam`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2, "amsgrad": False, "maximize": False,
            "foreach": None, "capturable": False, "differentiable": False, "fused": None, "decoupled_weight_decay": True}


class AdamW:
    """``torch.optim.AdamW(groups, lr, betas, eps, weight_decay, capturable=...)`` for dense gradients."""

    def __init__(self, groups: Iterable[dict] | Iterable[torch.Tensor], *, lr: float | torch.Tensor = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 capturable: bool = False, fused: bool = False):
        groups = list(groups)
        if groups and torch.is_tensor(groups[0]):
            groups = [{"params": groups}]
        own = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "capturable": capturable,
               "fused": fused}
        self.defaults = {**DEFAULTS, **own}
        self.param_groups = [{**self.defaults, **group, "params": list(group["params"])} for group in groups]
        self.state: dict[torch.Tensor, dict] = {}

    def zero_grad(self, set_to_none: bool = True):
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._update(group, params)

    def _update(self, group: dict, params: list[torch.Tensor]):
        lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        capturable = group["capturable"]
        fused = bool(group["fused"]) and len({(p.device, p.dtype) for p in params}) == 1  # the kernel takes one of each
        states = [self._state(p, capturable or fused) for p in params]
        grads = [p.grad for p in params]
        avgs, squares, steps = ([s[key] for s in states] for key in ("exp_avg", "exp_avg_sq", "step"))
        torch._foreach_add_(steps, 1)
        if fused:  # one kernel for every tensor: the multi-tensor update below, in float32
            torch._fused_adamw_(params, grads, avgs, squares, [], steps, lr=lr, beta1=beta1, beta2=beta2,
                                weight_decay=decay, eps=eps, amsgrad=False, maximize=False)
            return
        if decay:
            torch._foreach_mul_(params, 1 - lr * decay)
        torch._foreach_lerp_(avgs, grads, 1 - beta1)
        torch._foreach_mul_(squares, beta2)
        torch._foreach_addcmul_(squares, grads, grads, 1 - beta2)
        if capturable:  # every number stays on the device: a graph replays it, a tensor lr may change between replays
            correction1 = torch._foreach_pow(beta1, steps)
            correction2 = torch._foreach_pow(beta2, steps)
            torch._foreach_sub_(correction1, 1)
            torch._foreach_sub_(correction2, 1)
            torch._foreach_neg_(correction2)
            torch._foreach_div_(correction1, lr)  # -(1 - beta1^t) / lr
            torch._foreach_reciprocal_(correction1)  # the step size, negated
            torch._foreach_sqrt_(correction2)
            denominators = torch._foreach_sqrt(squares)
            torch._foreach_div_(denominators, correction2)
            torch._foreach_add_(denominators, eps)
            torch._foreach_div_(denominators, correction1)
            torch._foreach_addcdiv_(params, avgs, denominators)
        else:
            counts = [float(s) for s in steps]
            sizes = [-lr / (1 - beta1**t) for t in counts]
            denominators = torch._foreach_sqrt(squares)
            torch._foreach_div_(denominators, [(1 - beta2**t) ** 0.5 for t in counts])
            torch._foreach_add_(denominators, eps)
            torch._foreach_addcdiv_(params, avgs, denominators, sizes)

    def _state(self, p: torch.Tensor, on_device: bool) -> dict:
        """``p``'s state, made (and its gradient checked) at its first step; the step count on ``p``'s
        device when ``on_device`` (the capturable and fused forms)."""
        state = self.state.get(p)
        if state is None:  # its first step
            if p.grad.is_sparse:
                raise RuntimeError("AdamW takes dense gradients (per-particle tables have cryonb.core.row_adam.RowAdam)")
            state = self.state[p] = {"step": torch.zeros((), dtype=torch.float32),
                                     "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                     "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        device = p.device if on_device else torch.device("cpu")
        if state["step"].device != device:  # e.g. a checkpoint of a run without graphs, continued with them
            state["step"] = state["step"].to(device)
        return state

    def state_dict(self) -> dict:
        """``torch.optim``'s form: parameters numbered in group order, state keyed by those numbers."""
        numbers: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            ids = [numbers.setdefault(id(p), len(numbers)) for p in group["params"]]
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {numbers[id(p)]: dict(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: dict):
        """Take the groups' settings and the state of a ``state_dict`` (this class's or ``torch.optim.AdamW``'s)."""
        saved_groups = saved["param_groups"]
        if len(saved_groups) != len(self.param_groups) or any(
                len(s["params"]) != len(g["params"]) for s, g in zip(saved_groups, self.param_groups)):
            raise ValueError("the saved optimiser state has other parameter groups than this model's")
        params = {number: p for s, g in zip(saved_groups, self.param_groups) for number, p in zip(s["params"], g["params"])}
        self.param_groups = [{**DEFAULTS, **{k: v for k, v in s.items() if k != "params"}, "params": g["params"]}
                             for s, g in zip(saved_groups, self.param_groups)]
        self.state = {}
        for number, values in saved["state"].items():
            p = params[int(number)]
            self.state[p] = {key: torch.tensor(float(value), dtype=torch.float32) if key == "step" else value.to(p.device, p.dtype, copy=True)
                             for key, value in values.items()}  # copies: the saved state stays the saver's
