import subprocess
import sys
import textwrap

import pytest
import torch

from cryonb.core.adam import AdamW

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _parameters(seed: int, device="cpu") -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g).to(device).requires_grad_() for shape in [(5, 3), (3,), (4, 4, 2)]]


def _train(optimizer, params, steps: int, seed: int, rates=None):
    """``steps`` updates on a fixed random quadratic, changing the learning rate where ``rates`` says."""
    g = torch.Generator().manual_seed(seed)
    targets = [torch.randn(p.shape, generator=g).to(p.device) for p in params]
    for i in range(steps):
        if rates is not None:
            for group in optimizer.param_groups:
                group["lr"].fill_(rates[i]) if torch.is_tensor(group["lr"]) else group.__setitem__("lr", rates[i])
        optimizer.zero_grad(set_to_none=True)
        sum(((p - t) ** 3).abs().sum() for p, t in zip(params, targets)).backward()
        optimizer.step()


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_the_same_updates_as_torch_optim(weight_decay):
    ours, theirs = _parameters(0), _parameters(0)
    groups = lambda params: [{"params": params[:2]}, {"params": params[2:], "lr": 3e-3}]  # noqa: E731
    a = AdamW(groups(ours), lr=1e-2, weight_decay=weight_decay)
    b = torch.optim.AdamW(groups(theirs), lr=1e-2, weight_decay=weight_decay)
    rates = [1e-2 * 0.9**i for i in range(12)]
    _train(a, ours, 12, seed=1, rates=rates)
    _train(b, theirs, 12, seed=1, rates=rates)
    for p, q in zip(ours, theirs):
        assert torch.equal(p, q)
        assert all(torch.equal(a.state[p][k], b.state[q][k]) for k in ("step", "exp_avg", "exp_avg_sq"))
        assert float(a.state[p]["step"]) == 12


RATES = [1e-2 * 0.85**i for i in range(10)]  # a decaying rate, changed between steps as the trainer changes it


def _beside_plain(device, rate, **form) -> tuple[list, AdamW, list, AdamW]:
    """AdamW in ``form`` and the plain multi-tensor AdamW trained alike: (params, optimiser) of each."""
    ours, plain = _parameters(10, device), _parameters(10, device)
    a = AdamW([{"params": ours, "lr": rate}], weight_decay=0.02, **form)
    b = AdamW(plain, lr=1e-2, weight_decay=0.02)
    _train(a, ours, len(RATES), seed=11, rates=RATES)
    _train(b, plain, len(RATES), seed=11, rates=RATES)
    return ours, a, plain, b


def _torch_optim_twin(device, rate, **form) -> list:
    """The same training with ``torch.optim.AdamW`` in ``form``: its parameters."""
    theirs = _parameters(10, device)
    c = torch.optim.AdamW([{"params": theirs, "lr": rate}], weight_decay=0.02, **form)
    _train(c, theirs, len(RATES), seed=11, rates=RATES)
    return theirs


@pytest.mark.parametrize("device", DEVICES)
def test_capturable_form_reads_a_tensor_rate_and_keeps_steps_on_the_device(device):
    """The form a CUDA graph replays: the same update as the plain one, every number on the device."""
    ours, a, plain, b = _beside_plain(device, torch.tensor(1e-2, device=device), capturable=True)
    for p, q in zip(ours, plain):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
        assert a.state[p]["step"].device == p.device and b.state[q]["step"].device.type == "cpu"
    if device == "cuda":  # torch's own capturable form, step for step
        theirs = _torch_optim_twin(device, torch.tensor(1e-2, device=device), capturable=True)
        assert all(torch.equal(p, q) for p, q in zip(ours, theirs))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tensor_rate", [False, True])
def test_fused_form_makes_the_multi_tensor_update(device, tensor_rate):
    """One kernel for every tensor (the trainer's on a GPU): the same update, rounded in another order."""
    rate = (lambda: torch.tensor(1e-2, device=device)) if tensor_rate else (lambda: 1e-2)
    ours, a, plain, b = _beside_plain(device, rate(), capturable=tensor_rate, fused=True)
    for p, q in zip(ours, plain):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a.state[p]["exp_avg_sq"], b.state[q]["exp_avg_sq"], rtol=1e-4, atol=1e-7)
        assert a.state[p]["step"].device == p.device and float(a.state[p]["step"]) == len(RATES)
    assert not torch.equal(ours[0], _parameters(10, device)[0])  # it moved
    if device == "cuda":  # torch's own fused form, step for step
        assert all(torch.equal(p, q) for p, q in zip(ours, _torch_optim_twin(device, rate(), fused=True)))


def test_state_dicts_move_between_it_and_torch_optim():
    ours, theirs = _parameters(4), _parameters(4)
    a, b = AdamW(ours, lr=2e-3, weight_decay=0.0), torch.optim.AdamW(theirs, lr=2e-3, weight_decay=0.0)
    _train(b, theirs, 3, seed=5)
    a.load_state_dict(b.state_dict())  # a checkpoint written before this class
    with torch.no_grad():
        for p, q in zip(ours, theirs):
            p.copy_(q)
    _train(a, ours, 4, seed=5)
    _train(b, theirs, 4, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(ours, theirs))
    c_params = _parameters(4)
    c = torch.optim.AdamW(c_params, lr=1.0)
    c.load_state_dict(a.state_dict())  # and back
    assert c.param_groups[0]["lr"] == 2e-3 and c.param_groups[0]["weight_decay"] == 0.0
    assert all(torch.equal(c.state[r]["exp_avg"], a.state[p]["exp_avg"]) for r, p in zip(c_params, ours))
    with pytest.raises(ValueError, match="other parameter groups"):
        AdamW(ours[:2]).load_state_dict(a.state_dict())


def test_a_state_without_graphs_continues_with_them():
    """A CPU checkpoint continued on a GPU (or with graphs switched on): step counts move to the device."""
    params = _parameters(6)
    a = AdamW(params, lr=1e-3)
    _train(a, params, 2, seed=7)
    a.param_groups[0]["capturable"] = True
    a.param_groups[0]["lr"] = torch.tensor(1e-3)
    _train(a, params, 1, seed=7)
    assert float(a.state[params[0]]["step"]) == 3


def test_sparse_gradients_are_refused():
    table = torch.nn.Embedding(4, 2, sparse=True)
    a = AdamW(table.parameters())
    table(torch.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match="dense gradients"):
        a.step()


def test_training_does_not_import_torch_dynamo():
    """The import that torch.optim's optimisers make costs seconds; a default run need not pay it, nor
    one with per-particle tables (an autodecoder's latents, ab initio's poses)."""
    script = textwrap.dedent("""
        import sys
        from cryonb.core.simulate import simulate
        from cryonb.core.training import Trainer, TrainConfig
        particles = simulate("hinge", 64, D=16, apix=8.0, snr=1.0, seed=1, progress=False).particles
        Trainer(particles, TrainConfig(zdim=2, enc_width=16, dec_width=16, batch_size=16)).fit(1, progress=False)
        Trainer(particles, TrainConfig(zdim=2, dec_width=16, batch_size=16, latents="table", poses="table")).fit(1, progress=False)
        print("torch._dynamo" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_without_weight_decay_it_is_torch_optim_adam():
    """cryonb's other fits (latent refinement, the map regression, the mixture's neutral fit) use it as Adam."""
    ours, theirs = _parameters(8), _parameters(8)
    _train(AdamW(ours, lr=5e-3, weight_decay=0.0), ours, 6, seed=9)
    _train(torch.optim.Adam(theirs, lr=5e-3), theirs, 6, seed=9)
    assert all(torch.equal(p, q) for p, q in zip(ours, theirs))
