"""The decoder as one Function (nets.DecoderStack) against its layers, and its fused backward kernel."""

import warnings

import pytest
import torch

from cryonb.core import kernels
from cryonb.core.model import FourierDecoder
from cryonb.core.nets import DecoderStack, EncodedInputReLU

gpu = pytest.mark.skipif(not kernels.available(), reason="needs a CUDA device and Triton")
hopper = pytest.mark.skipif(not kernels.available() or torch.cuda.get_device_capability() < (9, 0),
                            reason="needs Hopper's tensor memory accelerator")


def decoder(residual: bool, zdim: int, width: int = 16, device="cpu", dtype=torch.float64):
    torch.manual_seed(0)
    return FourierDecoder(12, zdim, width=width, depth=3, residual=residual).to(device, dtype)


def inputs(dec, B=3, P=10, device="cpu", dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    phase = torch.randn(B, P, dec.encoding.phase(torch.zeros(1, 3, dtype=dtype, device=device)).shape[-1], generator=g,
                        dtype=dtype).to(device)
    z = torch.randn(B, dec.zdim, generator=g, dtype=dtype).to(device) if dec.zdim else None
    return phase, z


def first_layer(dec, phase, z):
    return (phase, z, dec.coords_in.weight, None if dec.latent_in is None else dec.latent_in.weight,
            dec.coords_in.bias, True)


def outputs_and_gradients(dec, phase, z, stacked: bool):
    phase = phase.clone().requires_grad_()
    z = None if z is None else z.clone().requires_grad_()
    dec.zero_grad()
    if stacked:
        residual, params = dec._hidden_layers()
        out = DecoderStack.apply(*first_layer(dec, phase, z), residual, *params)
    else:
        out = dec.net(EncodedInputReLU.apply(*first_layer(dec, phase, z)))
    weight = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).view(out.shape)
    (out.float() * weight).sum().backward()
    grads = [phase.grad] + ([] if z is None else [z.grad]) + [p.grad for p in dec.parameters()]
    return out.detach(), grads


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("zdim", [0, 3])
def test_stack_computes_what_its_layers_compute(residual, zdim):
    dec = decoder(residual, zdim)
    phase, z = inputs(dec)
    out, grads = outputs_and_gradients(dec, phase, z, stacked=True)
    expected, expected_grads = outputs_and_gradients(dec, phase, z, stacked=False)
    torch.testing.assert_close(out, expected)
    assert len(grads) == len(expected_grads)
    for ours, theirs in zip(grads, expected_grads):
        torch.testing.assert_close(ours, theirs)


def test_stack_gradients_are_exact():
    dec = decoder(True, 2, width=6)
    phase, z = inputs(dec, B=2, P=3)
    residual, params = dec._hidden_layers()
    args = (*first_layer(dec, phase.requires_grad_(), z.requires_grad_()), residual, *params)
    assert torch.autograd.gradcheck(DecoderStack.apply, args)


def test_decoder_uses_the_stack_only_where_the_kernel_runs():
    dec = decoder(True, 3, dtype=torch.float32)
    assert not dec._fuse_backward(torch.zeros(2, 5, 3))  # a CPU: the layers, as before


def test_a_kernel_that_cannot_run_here_falls_back_to_torch_once_with_a_warning(monkeypatch):
    def broken(*args):
        raise RuntimeError("PTX too new for this driver")

    monkeypatch.setattr(kernels, "_usable", lambda grad: True)
    monkeypatch.setattr(kernels, "_launch", broken)
    monkeypatch.setattr(kernels, "failed", set())
    torch.manual_seed(5)
    grad, weight, activations = torch.randn(9, 4), torch.randn(4, 6), torch.relu(torch.randn(9, 6))
    expected = torch.ops.aten.threshold_backward(grad @ weight, activations, 0)
    with pytest.warns(RuntimeWarning, match="PTX too new"):
        out, sums = kernels.relu_grad_matmul(grad, weight, activations, config=kernels.PLAIN)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(sums, expected.sum(0))
    assert kernels.failed == {kernels.PLAIN}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning: the failed configuration is not tried again
        kernels.relu_grad_matmul(grad, weight, activations, config=kernels.PLAIN)


@gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("M, N, K", [(1000, 256, 256), (777, 1024, 1024), (3001, 2, 256), (50, 96, 200)])
@pytest.mark.parametrize("config", [kernels.PLAIN, pytest.param(kernels.TMA, marks=hopper), None])
def test_kernel_matches_torch(M, N, K, dtype, config):
    torch.manual_seed(3)
    grad = torch.randn(M, N, device="cuda", dtype=dtype)
    weight = (torch.randn(N, K, device="cuda") / N**0.5).to(dtype)
    activations = torch.relu(torch.randn(M, K, device="cuda")).to(dtype)
    if config == kernels.TMA and N % 8:
        pytest.skip("rows of N = 2 are too short for the tensor memory accelerator")
    out, bias_grad = kernels.relu_grad_matmul(grad, weight, activations, config)
    expected = torch.ops.aten.threshold_backward(grad @ weight, activations, 0)
    assert out.dtype == dtype and bias_grad.dtype == torch.float32
    assert torch.equal(out == 0, expected == 0) or ((out == 0) != (expected == 0)).float().mean() < 1e-4
    torch.testing.assert_close(out, expected, rtol=0.02, atol=0.02)
    torch.testing.assert_close(bias_grad, expected.float().sum(0), rtol=0.01, atol=0.05)


@gpu
@pytest.mark.parametrize("residual", [True, False])
def test_stack_on_the_gpu_is_as_close_to_float32_as_its_layers(residual):
    """In bfloat16 the two differ by rounding (and the ReLU units it tips over), each about as far
    from the float32 layers."""
    dec = decoder(residual, 8, width=256, device="cuda", dtype=torch.float32)
    phase, z = inputs(dec, B=4, P=700, device="cuda", dtype=torch.float32)
    assert dec._fuse_backward(torch.zeros(1, 3, device="cuda")) is False  # only under autocast
    reference, reference_grads = outputs_and_gradients(dec, phase, z, stacked=False)
    errors = {}
    for stacked in (True, False):
        with torch.autocast("cuda", torch.bfloat16):
            out, grads = outputs_and_gradients(dec, phase, z, stacked)
        errors[stacked] = [(a.float() - b).norm() / b.norm() for a, b in zip([out] + grads, [reference] + reference_grads)]
    for ours, layers in zip(errors[True], errors[False]):
        assert ours < 0.2 and ours < 1.5 * layers + 1e-3, (ours, layers)
